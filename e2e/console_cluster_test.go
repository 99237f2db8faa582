package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// hwCell picks each partition's high watermark out of a topic page.
var hwCell = regexp.MustCompile(`(?s)<tr data-partition="(\d+)">.*?<td class="n hw">([^<]*)</td>`)

// On a cluster, every node's console shows every partition's high
// watermark, whichever node leads it, and lists a transaction another
// node coordinates; the abort of that transaction on a node that does not
// coordinate it says which node does, and the coordinator's console
// aborts it.
func TestConsoleOfEveryClusterNodeShowsTheWholeCluster(t *testing.T) {
	tc := startCluster(t, 3)
	ctrl := tc.waitController(15 * time.Second)
	tc.createReplicated(ctrl, "spread", 3, 3, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newClient(t, tc.c.Nodes[ctrl].Addr, kgo.DefaultProduceTopic("spread"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := range int32(3) {
		for i := range int(p) + 2 { // 2, 3 and 4 records
			if err := cl.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	get := func(node int, path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + tc.c.Nodes[node].AdminAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for node := range tc.c.Nodes {
		_, body := get(node, "/topic?name=spread")
		got := map[string]string{}
		for _, m := range hwCell.FindAllStringSubmatch(body, -1) {
			got[m[1]] = m[2]
		}
		if want := map[string]string{"0": "2", "1": "3", "2": "4"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("node %d's console shows high watermarks %v, want %v", node+1, got, want)
		}
	}

	adm := kadm.NewClient(newClient(t, tc.c.Nodes[ctrl].Addr))
	var id string
	var coordinator int32
	for i := 0; id == "" && ctx.Err() == nil; i++ {
		cand := "console-cluster-" + strconv.Itoa(i)
		if c := adm.FindTxnCoordinators(ctx, cand)[cand]; c.Err == nil {
			id, coordinator = cand, c.NodeID
		}
	}
	txn := newClient(t, tc.c.Nodes[ctrl].Addr, kgo.TransactionalID(id), kgo.DefaultProduceTopic("spread"), kgo.TransactionTimeout(60*time.Second))
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txn.ProduceSync(ctx, &kgo.Record{Partition: 0, Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	elsewhere := int(coordinator) % 3 // node index of a node that does not coordinate it
	if _, body := get(elsewhere, "/transactions"); !strings.Contains(body, `data-txn="`+id+`"`) {
		t.Errorf("node %d's console does not list %s, coordinated by node %d", elsewhere+1, id, coordinator)
	}
	d, err := adm.DescribeTransactions(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"id": {id}, "producer_id": {strconv.FormatInt(d[id].ProducerID, 10)}, "epoch": {strconv.Itoa(int(d[id].ProducerEpoch))},
		"start": {strconv.FormatInt(d[id].StartTimestamp, 10)}, "confirm": {"yes"}}
	post := func(node int) (int, string) {
		t.Helper()
		base := "http://" + tc.c.Nodes[node].AdminAddr
		req, err := http.NewRequest(http.MethodPost, base+"/transactions/abort", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", base) // as the console's own page posts it
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := post(elsewhere); code == http.StatusOK || !strings.Contains(body, fmt.Sprintf("node %d coordinates", coordinator)) {
		t.Errorf("abort on node %d, which does not coordinate %s: %d, want an error naming node %d:\n%s", elsewhere+1, id, code, coordinator, body)
	}
	if code, body := post(int(coordinator) - 1); code != http.StatusOK || !strings.Contains(body, `id="notice"`) {
		t.Errorf("abort on the coordinator, node %d: %d\n%s", coordinator, code, body)
	}
	if d, err := adm.DescribeTransactions(ctx, id); err != nil || d[id].State != "CompleteAbort" {
		t.Errorf("after the coordinator's console aborted it, %s is %v (%v), want CompleteAbort", id, d[id].State, err)
	}
}
