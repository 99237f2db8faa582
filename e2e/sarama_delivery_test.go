package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
)

// sarama's delivery guarantees against Weir, each with sarama's own
// machinery: the idempotent SyncProducer, the transactional producer,
// consume-transform-produce with AddMessageToTxn inside a consumer group,
// and the ReadCommitted consumer. (Its consumer group is in
// group_clients_test.go.)

// saramaConfig is sarama's configuration at the protocol of Kafka 3.6.
func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	return cfg
}

// saramaTxnConfig is what sarama requires of a transactional producer.
func saramaTxnConfig(id string) *sarama.Config {
	cfg := saramaConfig()
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Transaction.ID = id
	cfg.Net.MaxOpenRequests = 1
	return cfg
}

// saramaReadPartition reads partition 0 of topic from the oldest offset
// with sarama at the given isolation until it has seen last, and returns
// every value before it and last.
func saramaReadPartition(t *testing.T, addr, topic string, isolation sarama.IsolationLevel, last string) []string {
	t.Helper()
	cfg := saramaConfig()
	cfg.Consumer.IsolationLevel = isolation
	cons, err := sarama.NewConsumer([]string{addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	pc, err := cons.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ctx := testCtx(t)
	var vals []string
	for {
		select {
		case m := <-pc.Messages():
			vals = append(vals, string(m.Value))
			if string(m.Value) == last {
				return vals
			}
		case err := <-pc.Errors():
			t.Fatalf("sarama consumer: %v", err)
		case <-ctx.Done():
			t.Fatalf("sarama consumer (isolation %d) never reached %q; saw %v", isolation, last, vals)
		}
	}
}

// sarama's idempotent SyncProducer, whose acknowledgements the broker
// loses (it appends, then drops the response and the connection), stores
// every record exactly once: its retries are recognised by producer id
// and sequence.
func TestSaramaIdempotentSyncProducerStoresEachRecordOnceDespiteLostAcks(t *testing.T) {
	b, inj := startFaultyBroker(t, "produce.response=drop@0.2")
	createTopic(t, newAdmin(t, b.Addr()), "si", 1, nil)
	cfg := saramaConfig()
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Retry.Max = 50
	cfg.Producer.Retry.Backoff = 10 * time.Millisecond
	cfg.Net.MaxOpenRequests = 1
	prod, err := sarama.NewSyncProducer([]string{b.Addr()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	const n = 200
	for i := range n {
		if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: "si", Value: sarama.StringEncoder(fmt.Sprint(i))}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if inj.Fired("produce.response") == 0 {
		t.Fatal("the lost-ack fault never fired")
	}
	vals := saramaReadPartition(t, b.Addr(), "si", sarama.ReadUncommitted, fmt.Sprint(n-1))
	if len(vals) != n {
		t.Fatalf("%d acknowledgements lost: %d records stored up to the last, want %d", inj.Fired("produce.response"), len(vals), n)
	}
	for i, v := range vals {
		if v != fmt.Sprint(i) {
			t.Fatalf("%d acknowledgements lost: record %d is %q, want %d (a duplicate or a gap)", inj.Fired("produce.response"), i, v, i)
		}
	}
}

// sarama's transactional producer commits and aborts; its ReadCommitted
// consumer sees every committed record once, in order, and never an
// aborted one, which a ReadUncommitted consumer does see.
func TestSaramaTransactionsAreAtomicForItsReadCommittedConsumer(t *testing.T) {
	b, _ := startBroker(t, nil)
	createTopic(t, newAdmin(t, b.Addr()), "st", 1, nil)
	prod, err := sarama.NewSyncProducer([]string{b.Addr()}, saramaTxnConfig("sarama-txn"))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var committed []string
	for round, commit := range []bool{true, false, true, false, true} {
		if err := prod.BeginTxn(); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			v := fmt.Sprintf("r%d-%d-%v", round, i, commit)
			if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: "st", Value: sarama.StringEncoder(v)}); err != nil {
				t.Fatalf("send %s: %v", v, err)
			}
			if commit {
				committed = append(committed, v)
			}
		}
		end := prod.CommitTxn
		if !commit {
			end = prod.AbortTxn
		}
		if err := end(); err != nil {
			t.Fatalf("round %d (commit %v): %v", round, commit, err)
		}
	}
	last := committed[len(committed)-1]
	got := saramaReadPartition(t, b.Addr(), "st", sarama.ReadCommitted, last)
	if fmt.Sprint(got) != fmt.Sprint(committed) {
		t.Fatalf("read_committed sarama consumer saw %v, want exactly %v", got, committed)
	}
	if all := saramaReadPartition(t, b.Addr(), "st", sarama.ReadUncommitted, last); len(all) != 25 {
		t.Fatalf("read_uncommitted saw %d records, want all 25 written (the aborted ones among them)", len(all))
	}
}

// ctpHandler transforms each record of its claims in a transaction of its
// own: the output record and the input's offset (AddMessageToTxn, which
// names no member) commit together.
type ctpHandler struct {
	prod     sarama.SyncProducer
	group    string
	want     int
	mu       sync.Mutex
	done     int
	failures []error
	cancel   context.CancelFunc
}

func (h *ctpHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *ctpHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *ctpHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		if err := h.transform(m); err != nil {
			return err
		}
	}
	return nil
}

// transform runs one record's transaction. Claims are consumed
// concurrently and share the one producer, whose transactions follow one
// another.
func (h *ctpHandler) transform(m *sarama.ConsumerMessage) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	err := h.prod.BeginTxn()
	if err == nil {
		_, _, err = h.prod.SendMessage(&sarama.ProducerMessage{Topic: "ctp-out", Value: sarama.StringEncoder("x" + string(m.Value))})
	}
	if err == nil {
		err = h.prod.AddMessageToTxn(m, h.group, nil)
	}
	if err == nil {
		err = h.prod.CommitTxn()
	}
	if err != nil {
		h.failures = append(h.failures, fmt.Errorf("record %s-%d@%d: %w", m.Topic, m.Partition, m.Offset, err))
		h.cancel()
		return err
	}
	if h.done++; h.done == h.want {
		h.cancel()
	}
	return nil
}

// sarama's consume-transform-produce (AddMessageToTxn, as its
// exactly-once example does it) inside a consumer group commits each
// input offset together with its output while the group's member is
// live: every output appears exactly once to a read_committed reader, and
// the group's committed offsets reach the input's end, so a restart
// would reprocess nothing.
func TestSaramaConsumeTransformProduceCommitsExactlyOnceWithALiveMember(t *testing.T) {
	b, _ := startBroker(t, groupSettings)
	adm := newAdmin(t, b.Addr())
	createTopic(t, adm, "ctp-in", 2, nil)
	createTopic(t, adm, "ctp-out", 1, nil)
	const n = 30
	produceSpread(t, b.Addr(), "ctp-in", 0, n)

	prod, err := sarama.NewSyncProducer([]string{b.Addr()}, saramaTxnConfig("sarama-ctp"))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	cfg := saramaConfig()
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = false // the transactions commit the offsets
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	const group = "sarama-ctp"
	cg, err := sarama.NewConsumerGroup([]string{b.Addr()}, group, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	h := &ctpHandler{prod: prod, group: group, want: n, cancel: cancel}
	for ctx.Err() == nil {
		if err := cg.Consume(ctx, []string{"ctp-in"}, h); err != nil && ctx.Err() == nil {
			t.Fatalf("sarama consume: %v", err)
		}
	}
	if err := cg.Close(); err != nil {
		t.Fatalf("sarama close: %v", err)
	}
	if len(h.failures) > 0 {
		t.Fatalf("consume-transform-produce failed with the group's member live: %v", h.failures)
	}

	out := readAll(t, b.Addr(), "ctp-out", true)
	for i := range n {
		if c := count(out, "x"+value(i)); c != 1 {
			t.Errorf("output of input %d appears %d times, want once", i, c)
		}
	}
	if len(out) != n {
		t.Errorf("%d outputs, want %d", len(out), n)
	}
	eventually(t, "the transactions' offsets are the group's", func() bool { return committedEqualsEnd(t, adm, group, "ctp-in") })
	offs, err := adm.FetchOffsets(testCtx(t), group)
	if err != nil {
		t.Fatal(err)
	}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Err != nil {
			t.Errorf("committed offset of %s-%d: %v", o.Topic, o.Partition, o.Err)
		}
	})
}
