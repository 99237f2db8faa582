package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// startConsoleBroker runs `weir serve` with its admin listener (and so
// the console) on test ports, and returns the Kafka and admin addresses.
func startConsoleBroker(t *testing.T) (addr, admin string) {
	t.Helper()
	base := freePortRange(t, 1)
	admin = "127.0.0.1:" + strconv.Itoa(base+100)
	p := startProc(t, "127.0.0.1:"+strconv.Itoa(base), t.TempDir(), "--admin-listen", admin)
	return p.addr, admin
}

// The web console, in real Chromium against a real broker, shows what
// Kafka's own tools report: a new topic's partitions with their high
// watermarks, a group's lag as `weir group describe` prints it, an open
// transaction with its age until the abort button (after its
// confirmation) aborts it, an offset reset after its confirmation, a
// partition as read_committed and read_uncommitted consumers see it,
// aborted records in the second only, and a transaction its coordinator
// holds refused by the partition-level abort, which is for hanging ones
// (TestConsolePartitionAbortEndsATransactionNoCoordinatorHolds). No page
// writes to the browser console or asks another host for anything.
func TestConsoleShowsTheClusterAsKafkaToolsReportIt(t *testing.T) {
	addr, admin := startConsoleBroker(t)
	ctx := testCtx(t)
	adm := newAdmin(t, addr)
	b := newConsoleBrowser(t, admin)

	const topic = "console-orders"
	createTopic(t, adm, topic, 3, nil)
	produced := map[int32]int{0: 5, 1: 3}
	prod := newClient(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p, n := range produced {
		for i := range n {
			r := &kgo.Record{Topic: topic, Partition: p, Value: []byte(fmt.Sprintf("order-%d-%d", p, i))}
			if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}

	b.open("/")
	if nodes := eval[int](b, `document.querySelectorAll('#nodes tr[data-node]').length`); nodes != 1 {
		t.Errorf("cluster page lists %d nodes, want 1", nodes)
	}
	if got := healthShown(b, "weir_active_controller"); got != "1" {
		t.Errorf("cluster page shows weir_active_controller %q, want 1", got)
	}

	t.Run("topic lists its partitions and high watermarks", func(t *testing.T) {
		b.open("/topics")
		if got := eval[string](b, `document.querySelector('#topics tr[data-topic="`+topic+`"] .partitions')?.textContent ?? ''`); got != "3" {
			t.Errorf("topics list shows %q partitions for %s, want 3", got, topic)
		}
		b.shot("topics")
		b.do(chromedp.Click(chromedp.CSS(`#topics tr[data-topic="`+topic+`"] a`)), chromedp.WaitVisible(chromedp.ID("partitions")))
		rows := eval[[][]string](b, `[...document.querySelectorAll('#partitions tr[data-partition]')].map(r => [r.dataset.partition, r.querySelector('.hw').textContent, r.querySelector('.leader').textContent, r.querySelector('.isr').textContent])`)
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 3 {
			t.Fatalf("topic page shows %d partitions, want 3: %v", len(rows), rows)
		}
		for _, r := range rows {
			p, _ := strconv.Atoi(r[0])
			end, _ := ends.Lookup(topic, int32(p))
			if r[1] != strconv.Itoa(produced[int32(p)]) || r[1] != strconv.FormatInt(end.Offset, 10) {
				t.Errorf("partition %d: high watermark shown %s, produced %d, ListOffsets says %d", p, r[1], produced[int32(p)], end.Offset)
			}
			if r[2] != "1" || r[3] != "1" {
				t.Errorf("partition %d: leader %s ISR %s, want node 1 for both", p, r[2], r[3])
			}
		}
		b.shot("topic")
	})

	t.Run("group lag equals weir group describe", func(t *testing.T) {
		const group = "console-readers"
		member := newClient(t, addr, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		seen := 0
		for seen < 8 {
			fs := member.PollFetches(ctx)
			if err := fs.Err0(); err != nil {
				t.Fatal(err)
			}
			seen += fs.NumRecords()
		}
		// Commit part of the way: 2 of 5 on partition 0, all 3 on 1.
		commits := map[string]map[int32]kgo.EpochOffset{topic: {0: {Epoch: -1, Offset: 2}, 1: {Epoch: -1, Offset: 3}}}
		var commitErr error
		member.CommitOffsetsSync(ctx, commits, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			commitErr = err
			if err == nil {
				for _, rt := range resp.Topics {
					for _, rp := range rt.Partitions {
						if rp.ErrorCode != 0 {
							commitErr = fmt.Errorf("commit %s-%d: error %d", rt.Topic, rp.Partition, rp.ErrorCode)
						}
					}
				}
			}
		})
		if commitErr != nil {
			t.Fatal(commitErr)
		}
		cli := describeGroupLag(t, addr, group)
		b.open("/group?name=" + group)
		shown := eval[[][]string](b, `[...document.querySelectorAll('#lag tr[data-partition]')].map(r => [r.dataset.topic, r.dataset.partition, r.querySelector('.committed').textContent, r.querySelector('.hw').textContent, r.querySelector('.lag').textContent])`)
		if len(shown) != len(cli) || len(cli) != 3 {
			t.Fatalf("console shows %d lag rows, weir group describe %d, want 3 each:\nconsole %v\ncli %v", len(shown), len(cli), shown, cli)
		}
		for _, row := range shown {
			key := row[0] + "/" + row[1]
			if want := cli[key]; strings.Join(row[2:], " ") != want {
				t.Errorf("%s: console shows committed/hw/lag %v, weir group describe %q", key, row[2:], want)
			}
		}
		if lag0 := cli[topic+"/0"]; lag0 != "2 5 3" {
			t.Errorf("partition 0 by weir group describe: %q, want committed 2, hw 5, lag 3", lag0)
		}
		if members := eval[int](b, `document.querySelectorAll('#members tr').length - 1`); members != 1 {
			t.Errorf("group page shows %d members, want 1", members)
		}
		b.shot("group")
		b.open("/groups")
		if got := eval[string](b, `document.querySelector('#groups tr[data-group="`+group+`"] .lag')?.textContent ?? ''`); got != "3" {
			t.Errorf("groups list shows total lag %q, want 3", got)
		}
		b.shot("groups")

		// Kafka resets only a group without members: with the consumer
		// gone, reset to the start after the confirmation.
		member.LeaveGroup()
		member.Close()
		waitGroupEmpty(t, adm, group)
		b.open("/group?name=" + group)
		b.do(chromedp.SetValue(chromedp.CSS(`#reset-form select[name=to]`), "start"),
			chromedp.Click(chromedp.CSS(`#reset-form button`)), chromedp.WaitVisible(chromedp.ID("confirm")))
		b.shot("group-reset-confirm")
		if fetched, err := adm.FetchOffsets(ctx, group); err != nil {
			t.Fatal(err)
		} else if o, _ := fetched.Lookup(topic, 0); o.At != 2 {
			t.Fatalf("offset of partition 0 is %d before the confirmation, want 2 unchanged", o.At)
		}
		b.do(chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("notice")))
		fetched, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []int32{0, 1} {
			if o, _ := fetched.Lookup(topic, p); o.At != 0 {
				t.Errorf("partition %d committed at %d after the reset to start, want 0", p, o.At)
			}
		}
		if lag0 := describeGroupLag(t, addr, group)[topic+"/0"]; lag0 != "0 5 5" {
			t.Errorf("partition 0 after the reset by weir group describe: %q, want committed 0, hw 5, lag 5", lag0)
		}
	})

	const txnTopic = "console-txn"
	createTopic(t, adm, txnTopic, 1, nil)
	writer := newClient(t, addr, kgo.TransactionalID("console-writer"), kgo.DefaultProduceTopic(txnTopic))
	for _, tx := range []struct {
		value  string
		commit bool
	}{{"kept-1", true}, {"dropped-1", false}, {"kept-2", true}} {
		if err := writer.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := writer.ProduceSync(ctx, &kgo.Record{Value: []byte(tx.value)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := writer.EndTransaction(ctx, kgo.TransactionEndTry(tx.commit)); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("open transaction shows its age and goes on abort", func(t *testing.T) {
		hanging := newClient(t, addr, kgo.TransactionalID("console-hanging"), kgo.DefaultProduceTopic(txnTopic), kgo.TransactionTimeout(60*time.Second))
		if err := hanging.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := hanging.ProduceSync(ctx, &kgo.Record{Value: []byte("held-open")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		row := `#transactions tr[data-txn="console-hanging"]`
		var age int64
		for deadline := time.Now().Add(20 * time.Second); ; {
			b.open("/transactions")
			age = eval[int64](b, `Number(document.querySelector('`+row+` .age')?.dataset.ageMs ?? -1)`)
			if age >= 1000 || time.Now().After(deadline) {
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
		if age < 1000 {
			t.Fatalf("the open transaction's age shown is %d ms after a second or more, want it listed with its age", age)
		}
		if got := eval[string](b, `document.querySelector('`+row+` .age').textContent`); !strings.HasSuffix(got, "s") {
			t.Errorf("age shown as %q, want a duration", got)
		}
		if got := eval[string](b, `document.querySelector('`+row+` .partitions').textContent`); got != txnTopic+":0" {
			t.Errorf("partitions shown %q, want %s:0", got, txnTopic)
		}
		b.shot("transactions")
		b.open("/")
		if got := healthShown(b, "weir_open_transactions"); got != "1" {
			t.Errorf("cluster page shows weir_open_transactions %q while one is held open, want 1", got)
		}
		b.shot("cluster")
		b.open("/transactions")
		b.do(chromedp.Click(chromedp.CSS(row+` button.abort`)), chromedp.WaitVisible(chromedp.ID("confirm")))
		b.shot("transaction-abort-confirm")
		if d, err := adm.DescribeTransactions(ctx, "console-hanging"); err != nil || d["console-hanging"].State != "Ongoing" {
			t.Fatalf("before the confirmation the transaction is %v (%v), want Ongoing", d["console-hanging"].State, err)
		}
		b.do(chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("notice")))
		if n := eval[int](b, `document.querySelectorAll('`+row+`').length`); n != 0 {
			t.Errorf("the aborted transaction is still listed")
		}
		if d, err := adm.DescribeTransactions(ctx, "console-hanging"); err != nil || d["console-hanging"].State != "CompleteAbort" {
			t.Errorf("after the abort the transaction is %v (%v), want CompleteAbort", d["console-hanging"].State, err)
		}
		stable, err1 := adm.ListCommittedOffsets(ctx, txnTopic)
		ends, err2 := adm.ListEndOffsets(ctx, txnTopic)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if s, e := stable[txnTopic][0].Offset, ends[txnTopic][0].Offset; s != e {
			t.Errorf("after the abort the last stable offset is %d, the high watermark %d: want the LSO moved past the transaction", s, e)
		}
		if err := hanging.EndTransaction(ctx, kgo.TryCommit); err == nil {
			t.Errorf("the producer of the aborted transaction committed it: want it fenced")
		}
		b.shot("transactions-after-abort")
	})

	t.Run("record browser shows aborted records only read_uncommitted", func(t *testing.T) {
		b.open("/records?topic=" + txnTopic + "&partition=0&from=0")
		values := func(side string) []string {
			return eval[[]string](b, `[...document.querySelectorAll('#`+side+` tr[data-offset]')].map(r => r.className + ':' + (r.querySelector('.value')?.textContent ?? r.querySelector('.tag').textContent))`)
		}
		committed, uncommitted := values("read-committed"), values("read-uncommitted")
		b.shot("records")
		has := func(rows []string, want string) bool {
			for _, r := range rows {
				if r == want {
					return true
				}
			}
			return false
		}
		for _, v := range []string{"record:kept-1", "record:kept-2"} {
			if !has(committed, v) || !has(uncommitted, v) {
				t.Errorf("committed record %s missing from a column:\nread_committed %v\nread_uncommitted %v", v, committed, uncommitted)
			}
		}
		for _, v := range []string{"dropped-1", "held-open"} {
			if !has(uncommitted, "aborted:"+v) {
				t.Errorf("aborted record %s is not marked aborted in read_uncommitted: %v", v, uncommitted)
			}
			for _, r := range committed {
				if strings.HasSuffix(r, ":"+v) {
					t.Errorf("aborted record %s shown to read_committed: %v", v, committed)
				}
			}
		}
		if !has(uncommitted, "control:ABORT") || !has(uncommitted, "control:COMMIT") || !has(committed, "control:COMMIT") {
			t.Errorf("control markers not shown:\nread_committed %v\nread_uncommitted %v", committed, uncommitted)
		}
	})

	t.Run("a transaction its coordinator holds is not aborted at one partition", func(t *testing.T) {
		const held = "console-held"
		createTopic(t, adm, held, 1, nil)
		prod := newClient(t, addr, kgo.TransactionalID(held), kgo.DefaultProduceTopic(held), kgo.TransactionTimeout(60*time.Second))
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("held")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		b.open("/topic?name=" + held)
		if got := eval[string](b, `document.querySelector('#producers .txn-start')?.textContent ?? ''`); got != "0" {
			t.Fatalf("producers table shows an open transaction from %q, want 0", got)
		}
		b.expectRefusal("/topic/abort")
		b.do(chromedp.Click(chromedp.CSS(`#producers button.abort`)), chromedp.WaitVisible(chromedp.ID("error")))
		b.shot("partition-abort-refused")
		if msg := eval[string](b, `document.getElementById('error').textContent`); !strings.Contains(msg, "not hanging") || !strings.Contains(msg, held) {
			t.Errorf("the refusal does not say the coordinator of %s holds the transaction: %q", held, msg)
		}
		if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Errorf("the producer's commit after the refused partition abort: %v", err)
		}
		// EndTxn answers once the commit is decided; its marker follows.
		var s, e int64
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			stable, err1 := adm.ListCommittedOffsets(ctx, held)
			ends, err2 := adm.ListEndOffsets(ctx, held)
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			if s, e = stable[held][0].Offset, ends[held][0].Offset; s == 2 && e == 2 || time.Now().After(deadline) {
				break
			}
		}
		if s != 2 || e != 2 {
			t.Errorf("after the commit LSO %d and high watermark %d, want 2 and 2 (the record and the marker)", s, e)
		}
	})

	b.assertClean()
}

// healthShown is the value the cluster page shows for one of this node's
// health metrics.
func healthShown(b *consoleBrowser, metric string) string {
	b.t.Helper()
	return eval[string](b, `document.querySelector('#health tr[data-metric="`+metric+`"] td.n')?.textContent ?? ''`)
}

// describeGroupLag runs `weir group describe` and returns its lag table
// as "topic/partition" → "committed hw lag".
func describeGroupLag(t *testing.T, addr, group string) map[string]string {
	t.Helper()
	out, err := runWeir(t, "", "group", "describe", group, "--brokers", addr)
	if err != nil {
		t.Fatalf("weir group describe: %v\n%s", err, out)
	}
	rows := map[string]string{}
	inTable := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "TOPIC" {
			inTable = true
			continue
		}
		if inTable && len(f) >= 5 {
			rows[f[0]+"/"+f[1]] = strings.Join(f[2:5], " ")
		}
	}
	return rows
}

// waitGroupEmpty waits until group has no members.
func waitGroupEmpty(t *testing.T, adm *kadm.Client, group string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		d, err := adm.DescribeGroups(ctx, group)
		cancel()
		if err == nil && d[group].State == "Empty" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s not empty after its member left: %v %v", group, d[group].State, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
