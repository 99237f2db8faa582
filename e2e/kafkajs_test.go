package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaJS (the npm package pinned in testdata/kafkajs, which ./test.sh
// installs) against Weir: its idempotent producer, its transactions read
// by its read_committed consumer, and its sendOffsets consume-transform-
// produce inside a consumer group.

const kafkajsDir = "testdata/kafkajs"

// runKafkaJS runs one mode of testdata/kafkajs/clients.js and decodes the
// JSON object it prints into out.
func runKafkaJS(t *testing.T, out any, args ...string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed; ./test.sh installs it (apt-get install nodejs npm)")
	}
	if _, err := os.Stat(filepath.Join(kafkajsDir, "node_modules", "kafkajs")); err != nil {
		t.Fatalf("kafkajs is not installed; ./test.sh installs it (npm ci --prefix e2e/%s)", kafkajsDir)
	}
	cmd := exec.CommandContext(testCtx(t), node, append([]string{"clients.js"}, args...)...)
	cmd.Dir = kafkajsDir
	cmd.Env = append(os.Environ(), "KAFKAJS_NO_PARTITIONER_WARNING=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kafkajs %v: %v\n%s", args, err, stderr.Bytes())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("kafkajs %v printed %q: %v\n%s", args, stdout.Bytes(), err, stderr.Bytes())
	}
}

// KafkaJS's idempotent producer, whose acknowledgements the broker loses
// (it appends, then drops the response and the connection), stores every
// record exactly once.
func TestKafkaJSIdempotentProducerStoresEachRecordOnceDespiteLostAcks(t *testing.T) {
	b, inj := startFaultyBroker(t, "produce.response=drop@0.2")
	createTopic(t, newAdmin(t, b.Addr()), "ki", 1, nil)
	const n = 60
	var res struct{ Sent int }
	runKafkaJS(t, &res, "idempotent", b.Addr(), "ki", fmt.Sprint(n))
	if res.Sent != n || inj.Fired("produce.response") == 0 {
		t.Fatalf("sent %d of %d; the lost-ack fault fired %d times", res.Sent, n, inj.Fired("produce.response"))
	}
	stored := readAll(t, b.Addr(), "ki", false)
	for i := range n {
		if c := count(stored, fmt.Sprint(i)); c != 1 {
			t.Errorf("%d acknowledgements lost: record %d stored %d times, want once", inj.Fired("produce.response"), i, c)
		}
	}
	if len(stored) != n {
		t.Fatalf("%d records stored, want %d", len(stored), n)
	}
}

// KafkaJS's transactions commit and abort atomically: its consumer, at
// its default isolation (read_committed), sees every committed record
// once, in order, and no aborted one, which a read_uncommitted reader
// does see.
func TestKafkaJSTransactionsAreAtomicForItsReadCommittedConsumer(t *testing.T) {
	b, _ := startBroker(t, groupSettings)
	createTopic(t, newAdmin(t, b.Addr()), "kt", 1, nil)
	var written struct{ Committed []string }
	runKafkaJS(t, &written, "txn", b.Addr(), "kt")
	if len(written.Committed) != 15 {
		t.Fatalf("KafkaJS committed %d records, want 15", len(written.Committed))
	}
	var read struct{ Values []string }
	runKafkaJS(t, &read, "read", b.Addr(), "kt", "kafkajs-reader", written.Committed[14])
	if fmt.Sprint(read.Values) != fmt.Sprint(written.Committed) {
		t.Fatalf("KafkaJS read_committed consumer saw %v, want exactly %v", read.Values, written.Committed)
	}
	if all := readAll(t, b.Addr(), "kt", false); len(all) != 25 {
		t.Fatalf("read_uncommitted saw %d records, want all 25 written (the aborted ones among them)", len(all))
	}
}

// KafkaJS's consume-transform-produce, with sendOffsets (TxnOffsetCommit
// naming no member) to the group its own consumer is a live member of,
// commits each input offset together with its output exactly once: a
// read_committed reader sees each output once and never the aborted
// attempt, and the group's offsets reach the input's end.
func TestKafkaJSSendOffsetsCommitsExactlyOnceWithALiveMember(t *testing.T) {
	b, _ := startBroker(t, groupSettings)
	adm := newAdmin(t, b.Addr())
	createTopic(t, adm, "kctp-in", 2, nil)
	createTopic(t, adm, "kctp-out", 1, nil)
	const n = 20
	// Uncompressed: KafkaJS reads snappy, franz-go's default, only with
	// a codec plugin.
	produceSpread(t, b.Addr(), "kctp-in", 0, n, kgo.ProducerBatchCompression(kgo.NoCompression()))
	const group = "kafkajs-ctp"
	var res struct{ Committed, Aborted int }
	runKafkaJS(t, &res, "ctp", b.Addr(), "kctp-in", "kctp-out", group, fmt.Sprint(n))
	if res.Committed != n || res.Aborted != 1 {
		t.Fatalf("KafkaJS committed %d transactions and aborted %d, want %d and 1", res.Committed, res.Aborted, n)
	}

	out := readAll(t, b.Addr(), "kctp-out", true)
	for i := range n {
		if c := count(out, "x"+value(i)); c != 1 {
			t.Errorf("output of input %d appears %d times, want once", i, c)
		}
	}
	if len(out) != n {
		t.Errorf("read_committed saw %d outputs, want %d (no aborted attempt): %v", len(out), n, out)
	}
	if all := readAll(t, b.Addr(), "kctp-out", false); len(all) != n+1 {
		t.Errorf("read_uncommitted saw %d outputs, want %d with the aborted attempt", len(all), n+1)
	}
	if !committedEqualsEnd(t, adm, group, "kctp-in") {
		offs, _ := adm.FetchOffsets(testCtx(t), group)
		ends, _ := adm.ListEndOffsets(testCtx(t), "kctp-in")
		var got []string
		offs.Each(func(o kadm.OffsetResponse) { got = append(got, fmt.Sprintf("%s-%d=%d", o.Topic, o.Partition, o.At)) })
		ends.Each(func(o kadm.ListedOffset) {
			got = append(got, fmt.Sprintf("end %s-%d=%d", o.Topic, o.Partition, o.Offset))
		})
		t.Fatalf("the group's committed offsets are not the input's end: %v", got)
	}
}
