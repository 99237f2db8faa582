package e2e

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/internal/explain"
)

// labLine runs one `weir lab` scenario and returns its progress line.
func labLine(t *testing.T, scenario string, args ...string) string {
	t.Helper()
	out, err := runWeir(t, "", append([]string{"lab", "--only", scenario, "--report", ""}, args...)...)
	if err != nil {
		t.Fatalf("weir lab --only %q: %v\n%s", scenario, err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "[") && strings.Contains(line, scenario) {
			return line
		}
	}
	t.Fatalf("weir lab --only %q printed no progress line:\n%s", scenario, out)
	return ""
}

var lostDup = regexp.MustCompile(`lost (\d+) dup (\d+)`)

// lostAndDuplicated reads "lost N dup M" from a lab progress line.
func lostAndDuplicated(t *testing.T, line string) (lost, dup int) {
	t.Helper()
	m := lostDup.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no lost/dup counts in %q", line)
	}
	lost, _ = strconv.Atoi(m[1])
	dup, _ = strconv.Atoi(m[2])
	return lost, dup
}

// franz-go's default auto-commit (go.mod: franz-go v1.22.3) commits only
// what earlier polls returned: PollFetches records the new offsets as
// "dirty" and promotes them to committable at the start of the next poll
// (kgo consumer_group.go updateUncommitted / undirtyUncommitted, "this
// one-poll lag is INTENTIONAL and is what makes default autocommit
// at-least-once"). Committing what was just polled is the opt-in
// GreedyAutoCommit, documented as "may result in message loss if your
// application crashes". So a franz-go consumer that processes each poll
// before the next is at-least-once, as the Java one is.
//
// The lab's own auto-commit worker (franz-go defaults, processing in the
// poll loop, SIGKILLed twice mid-batch per run) measures no loss; explain
// must not predict loss for franz-go's default auto-commit, and must not
// ignore GreedyAutoCommit as having "no bearing on the guarantee".
func TestFranzGoDefaultAutoCommitIsNotSaidToLoseRecordsAsTheLabMeasures(t *testing.T) {
	const scenario = "consumer / auto-commit / consumer killed mid-batch"
	lost, dup := 0, 0
	for _, seed := range []string{"1", "2", "3"} {
		l, d := lostAndDuplicated(t, labLine(t, scenario, "--seed", seed, "--consumer-records", "600"))
		lost, dup = lost+l, dup+d
	}
	if lost != 0 {
		t.Fatalf("premise: the lab's franz-go auto-commit worker lost %d records over three runs", lost)
	}
	t.Logf("franz-go default auto-commit, 6 kills mid-batch: lost %d, duplicated %d", lost, dup)

	safe := map[string]string{"replication.factor": "3", "min.insync.replicas": "2"}
	ex, err := explain.Explain(explain.Input{Client: explain.FranzGo, Topic: safe})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ex.Failures {
		if r.Layer == explain.Consumer && r.Harm == explain.Loss {
			t.Errorf("franz-go default auto-commit: explain predicts loss (%s: %s); the client commits only polls already processed and the lab lost 0 of 1800 over 6 kills", r.ID, r.Cause)
		}
	}
	greedy, err := explain.Explain(explain.Input{Client: explain.FranzGo, Consumer: map[string]string{"GreedyAutoCommit": "true"}, Topic: safe})
	if err != nil {
		t.Fatal(err)
	}
	for _, ig := range greedy.Config.Ignored {
		if strings.Contains(ig, "GreedyAutoCommit") {
			t.Errorf("GreedyAutoCommit, the franz-go option that makes auto-commit lose records, is ignored as having no bearing on the guarantee")
		}
	}
}

// A read_uncommitted consumer receives the records of aborted
// transactions (KIP-98; Kafka consumer configuration, isolation.level:
// "in read_uncommitted mode, consumer.poll() will return all messages,
// even transactional messages which have been aborted"). Exactly-once
// with transactions means an aborted write is never seen: that is what
// read_committed is for, and what `weir lab` itself counts against
// exactly-once (Result.RCViolations). A dedup store keyed by event id
// processes the aborted record once, which is once too many: explain
// must not call a transactional producer with a read_uncommitted
// consumer and a dedup store exactly-once.
func TestReadUncommittedConsumerOfAbortedTransactionsIsNotExactlyOnce(t *testing.T) {
	p := startProc(t, "127.0.0.1:0", t.TempDir())
	createTopic(t, newAdmin(t, p.addr), "payments", 1, nil)
	ctx := testCtx(t)
	prod := newClient(t, p.addr, kgo.TransactionalID("payments-writer"), kgo.DefaultProduceTopic("payments"))
	for _, tx := range []struct {
		id  string
		end kgo.TransactionEndTry
	}{{"event-aborted", kgo.TryAbort}, {"event-committed", kgo.TryCommit}} {
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := prod.ProduceSync(ctx, kgo.StringRecord(tx.id)).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := prod.EndTransaction(ctx, tx.end); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for _, r := range consumeAll(t, p.addr, "payments", 2, kgo.FetchIsolationLevel(kgo.ReadUncommitted())) {
		seen[string(r.Value)] = true
	}
	if !seen["event-aborted"] {
		t.Fatalf("premise: a read_uncommitted consumer did not receive the aborted record: %v", seen)
	}

	ex, err := explain.Explain(explain.Input{
		Client:   explain.Java,
		Producer: map[string]string{"transactional.id": "payments-writer"},
		Consumer: map[string]string{"enable.auto.commit": "false", "weir.commit": "after-processing", "weir.dedup": "true", "isolation.level": "read_uncommitted"},
		Topic:    map[string]string{"replication.factor": "3", "min.insync.replicas": "2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if ex.Guarantee == explain.ExactlyOnce {
		t.Errorf("explain says exactly-once, yet this consumer processed %q, written in a transaction that aborted", "event-aborted")
	}
}

// The lab scenario the rule for read_uncommitted consumers of a
// transactional producer names must show its failure: aborted records in
// the log ("log holds N aborted") or duplicates. A producer scenario such
// as 'producer / transactional / connection drops' reads back
// read_committed (internal/lab readback.go) and aborts no transaction, so
// it could show neither.
func TestReadUncommittedRuleNamesALabScenarioThatShowsAbortedRecords(t *testing.T) {
	ex, err := explain.Explain(explain.Input{
		Client:   explain.Java,
		Producer: map[string]string{"transactional.id": "t"},
		Consumer: map[string]string{"enable.auto.commit": "false", "isolation.level": "read_uncommitted"},
		Topic:    map[string]string{"replication.factor": "3", "min.insync.replicas": "2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var scenario string
	for _, r := range ex.Failures {
		if r.ID == "read-uncommitted" {
			if s := r.Lab(&ex.Config.Config); len(s) > 0 {
				scenario = s[0]
			}
		}
	}
	if scenario == "" {
		t.Fatalf("premise: no lab scenario named for read-uncommitted (failures %v)", ex.Failures)
	}
	aborted := regexp.MustCompile(`log holds (\d+) aborted`)
	for _, seed := range []string{"1", "2"} {
		line := labLine(t, scenario, "--seed", seed, "--records", "600")
		_, dup := lostAndDuplicated(t, line)
		n := 0
		if m := aborted.FindStringSubmatch(line); m != nil {
			n, _ = strconv.Atoi(m[1])
		}
		if dup == 0 && n == 0 {
			t.Errorf("seed %s: %q, named to show read_uncommitted duplicates, shows no aborted record and no duplicate: %s", seed, scenario, line)
		}
	}
}

// acks=1 loses a record when the leader dies after answering and before a
// follower copies it (Kafka producer configuration, acks). On one
// replica, "producer / acks=1 / broker killed" cannot show it: with no
// follower, acks=1 waits for exactly what acks=all waits for (the
// leader's own log), and a broker killed and restarted keeps what it
// acknowledged (measured: lost 0 over seeds 1-3, 1000 records, two kills
// each). The rule must name no such scenario and say the failure is not
// shown by the lab, or name one that loses records.
func TestAcksOneOnOneReplicaNamesNoLabScenarioThatCannotShowTheLoss(t *testing.T) {
	ex, err := explain.Explain(explain.Input{Client: explain.Librdkafka, Producer: map[string]string{"acks": "1"}, Consumer: map[string]string{"enable.auto.commit": "false", "weir.dedup": "true"}, Topic: map[string]string{"replication.factor": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	var scenarios []string
	for _, r := range ex.Failures {
		if r.ID == "acks-1" {
			scenarios = r.Lab(&ex.Config.Config)
		}
	}
	if len(scenarios) == 0 {
		// A rule may instead say that no lab row shows its failure.
		requireNotShownByTheLab(t, "producer, loss: acks=1", "--client", "librdkafka", "--producer-set", "acks=1", "--assume", "replication.factor=1")
		return
	}
	if len(scenarios) != 1 || !strings.HasPrefix(scenarios[0], "producer / ") {
		t.Fatalf("premise: acks-1 names %v on a one-replica topic", scenarios)
	}
	lost := 0
	for _, seed := range []string{"1", "2", "3"} {
		l, _ := lostAndDuplicated(t, labLine(t, scenarios[0], "--seed", seed, "--records", "1000"))
		lost += l
	}
	if lost == 0 {
		t.Errorf("%q, named to show acks=1 losing acknowledged records, lost none over three runs (six broker kills)", scenarios[0])
	}
}
