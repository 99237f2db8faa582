package e2e

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// abortForm picks the hidden fields of a transaction's abort form out of
// the transactions page: id, producer id, epoch and start.
var abortForm = regexp.MustCompile(`name="id" value="([^"]*)"><input type="hidden" name="producer_id" value="(-?\d+)"><input type="hidden" name="epoch" value="(-?\d+)"><input type="hidden" name="start" value="(-?\d+)"`)

// consolePost posts form to the console at admin and returns the status
// and body, following no redirect. Unless header gives an Origin or a
// Referer, the post carries the console's own origin, as a browser
// submitting the console's form does.
func consolePost(t *testing.T, admin, path string, form url.Values, header map[string]string) (int, string) {
	t.Helper()
	return consolePostHost(t, admin, "", path, form, header)
}

// consolePostHost is consolePost with the Host header set to host (the
// admin address when empty).
func consolePostHost(t *testing.T, admin, host, path string, form url.Values, header map[string]string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+admin+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if host != "" {
		req.Host = host
	}
	if header["Origin"] == "" && header["Referer"] == "" {
		req.Header.Set("Origin", "http://"+admin)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// consoleGet fetches a console page.
func consoleGet(t *testing.T, admin, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// An abort posted from a transactions page loaded before the producer
// committed its transaction and began the next one must not abort that
// next one. A transactional producer keeps its producer id and epoch
// from one transaction to the next (KIP-98; the epoch moves only with
// InitProducerId or a fencing abort), so the id, producer id and epoch
// on the stale page also name the new transaction. The operator meant
// the transaction shown (now committed); the correct outcome is an error
// page (the shown transaction is no longer open) with the new
// transaction still Ongoing, its producer not fenced, and its commit
// succeeding, so a read_committed consumer sees both transactions'
// records.
func TestConsoleAbortFromAStalePageLeavesTheNextTransactionOfTheIDAlone(t *testing.T) {
	addr, admin := startConsoleBroker(t)
	ctx := testCtx(t)
	adm := newAdmin(t, addr)
	const topic = "stale-page"
	createTopic(t, adm, topic, 1, nil)
	prod := newClient(t, addr, kgo.TransactionalID("stale-page-txn"), kgo.DefaultProduceTopic(topic))

	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("first")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// The operator loads the page while the first transaction is open.
	_, page := consoleGet(t, admin, "/transactions")
	m := abortForm.FindStringSubmatch(page)
	if m == nil || m[1] != "stale-page-txn" {
		t.Fatalf("the transactions page has no abort form for stale-page-txn:\n%s", page)
	}
	shown := url.Values{"id": {m[1]}, "producer_id": {m[2]}, "epoch": {m[3]}, "start": {m[4]}}

	// Meanwhile the producer commits and opens its next transaction.
	if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("second")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// The operator clicks Abort on the old page, then confirms.
	shown.Set("confirm", "yes")
	code, body := consolePost(t, admin, "/transactions/abort", shown, nil)
	if code == http.StatusSeeOther || code == http.StatusOK {
		t.Errorf("abort of the transaction shown on a stale page (producer %s epoch %s, since committed) answered %d; want an error page saying it is no longer open:\n%s", m[2], m[3], code, body)
	}
	d, err := adm.DescribeTransactions(ctx, "stale-page-txn")
	if err != nil {
		t.Fatal(err)
	}
	if st := d["stale-page-txn"].State; st != "Ongoing" {
		t.Errorf("the producer's next transaction is %s after the stale abort, want Ongoing", st)
	}
	if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Errorf("the producer's commit of its next transaction failed after the stale abort: %v", err)
	}
	got := map[string]bool{}
	for _, r := range consumeQuiet(t, addr, topic, 3*time.Second, kgo.FetchIsolationLevel(kgo.ReadCommitted())) {
		got[string(r.Value)] = true
	}
	if !got["first"] || !got["second"] {
		t.Errorf("read_committed sees %v, want both first and second (both were committed by the producer)", got)
	}
}
