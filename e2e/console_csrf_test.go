package e2e

import (
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// openConsoleTxn starts a console broker and leaves a transaction of id
// open; it returns the broker's Kafka and admin addresses and the abort
// form (confirmed) of that transaction.
func openConsoleTxn(t *testing.T, id string) (addr, admin string, form url.Values) {
	t.Helper()
	addr, admin = startConsoleBroker(t)
	ctx := testCtx(t)
	adm := newAdmin(t, addr)
	createTopic(t, adm, id, 1, nil)
	prod := newClient(t, addr, kgo.TransactionalID(id), kgo.DefaultProduceTopic(id))
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("held")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	d, err := adm.DescribeTransactions(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return addr, admin, url.Values{"id": {id}, "producer_id": {strconv.FormatInt(d[id].ProducerID, 10)},
		"epoch": {strconv.Itoa(int(d[id].ProducerEpoch))}, "start": {strconv.FormatInt(d[id].StartTimestamp, 10)}, "confirm": {"yes"}}
}

func txnStateOf(t *testing.T, addr, id string) string {
	t.Helper()
	d, err := newAdmin(t, addr).DescribeTransactions(testCtx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	return d[id].State
}

// A form posted to the console without an Origin header but with a
// Referer naming another site was submitted from that site (browsers
// that send no Origin on a form post still send the Referer). It must be
// refused like one whose Origin names another site: the correct outcome
// is 403 and the transaction still Ongoing.
func TestConsoleRefusesAFormPostedFromAnotherSiteWithoutAnOrigin(t *testing.T) {
	addr, admin, form := openConsoleTxn(t, "csrf-referer")
	code, body := consolePost(t, admin, "/transactions/abort", form, map[string]string{"Referer": "http://elsewhere.example/trap.html"})
	if code != http.StatusForbidden {
		t.Errorf("abort posted with no Origin and Referer http://elsewhere.example/trap.html answered %d, want 403:\n%s", code, body)
	}
	if st := txnStateOf(t, addr, "csrf-referer"); st != "Ongoing" {
		t.Errorf("after the cross-site post the transaction is %s, want Ongoing", st)
	}
}

// DNS rebinding: a page at http://rebind.example:PORT whose name is made
// to resolve to the console's address posts to it; the browser sends
// Origin and Host both naming rebind.example:PORT, so they match, though
// the console's listener is 127.0.0.1. The console must not act on a
// request for a host name that is not its own: the correct outcome is
// 403 (or 421) and the transaction still Ongoing.
func TestConsoleRefusesAFormPostedThroughARebindingHostName(t *testing.T) {
	addr, admin, form := openConsoleTxn(t, "csrf-rebind")
	_, port, _ := net.SplitHostPort(admin)
	host := "rebind.example:" + port
	code, body := consolePostHost(t, admin, host, "/transactions/abort", form, map[string]string{"Origin": "http://" + host})
	if code != http.StatusForbidden && code != http.StatusMisdirectedRequest {
		t.Errorf("abort posted for Host %s with a matching Origin answered %d, want 403 or 421:\n%s", host, code, body)
	}
	if st := txnStateOf(t, addr, "csrf-rebind"); st != "Ongoing" {
		t.Errorf("after the rebinding post the transaction is %s, want Ongoing", st)
	}
}
