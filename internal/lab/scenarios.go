package lab

import (
	"context"
	"fmt"
	"math/rand"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Fault specs for the embedded broker. The first rule makes sure even a
// short run sees one fault (at the third produce response); the second
// adds more at random, a handful per run with small batches.
const (
	lostAcksSpec  = "produce.response=drop#1+2,produce.response=drop@0.04"
	connDropsSpec = "produce.response=close#1+2,produce.response=close@0.04"
)

// Fault names as the report shows them.
const (
	faultNone      = "no fault"
	faultLostAcks  = "lost acks"
	faultConnDrops = "connection drops"
	faultKill      = "broker killed"
)

// producerMode is one producer configuration.
type producerMode struct {
	name          string
	acks          kgo.Acks
	idempotent    bool
	transactional bool
	guarantee     Guarantee
}

var producerModes = []producerMode{
	{name: "acks=0", acks: kgo.NoAck(), guarantee: AtMostOnce},
	// acks=1 answers before the write is durable: a broker that dies
	// right after answering may lose the record (Kafka documents the
	// same), and retries after a lost answer duplicate it. It claims
	// neither guarantee; the lab measures what happens.
	{name: "acks=1", acks: kgo.LeaderAck(), guarantee: NoGuarantee},
	{name: "acks=all", acks: kgo.AllISRAcks(), guarantee: AtLeastOnce},
	{name: "acks=all idempotent", acks: kgo.AllISRAcks(), idempotent: true, guarantee: ExactlyOnce},
	{name: "transactional", acks: kgo.AllISRAcks(), idempotent: true, transactional: true, guarantee: ExactlyOnce},
}

// consumerMode is one consumer commit strategy.
type consumerMode struct {
	name, worker string
	guarantee    Guarantee
}

var consumerModes = []consumerMode{
	// kgo's default auto-commit commits, on a timer, what earlier polls
	// returned (kgo consumer_group.go: the one-poll lag "is what makes
	// default autocommit at-least-once"): a worker that processes each
	// poll before the next loses nothing; a kill redelivers what was
	// processed since the last commit.
	{name: "auto-commit", worker: workerAutoCommit, guarantee: AtLeastOnce},
	// GreedyAutoCommit commits everything polled, processed or not, as
	// librdkafka does with enable.auto.offset.store=true: a kill can lose
	// records and redeliver others.
	{name: "greedy auto-commit", worker: workerGreedyCommit, guarantee: NoGuarantee},
	{name: "commit before processing", worker: workerCommitBefore, guarantee: AtMostOnce},
	{name: "process then commit", worker: workerCommitAfter, guarantee: AtLeastOnce},
	{name: "idempotent (dedup store)", worker: workerDedup, guarantee: ExactlyOnce},
}

// scenarios lists every scenario in report order.
func scenarios(cfg *Config) []*scenario {
	var out []*scenario
	for _, m := range producerModes {
		for _, f := range []struct {
			name, spec string
			client     clientFault
			kill       bool
		}{
			{faultNone, "", noClientFault, false},
			{faultLostAcks, lostAcksSpec, clientLostAck, false},
			{faultConnDrops, connDropsSpec, clientConnDrop, false},
			{faultKill, "", noClientFault, true},
		} {
			s := &scenario{
				side: "producer", config: m.name, fault: f.name, guarantee: m.guarantee,
				embeddedOnly: f.kill, spec: f.spec, clientFault: f.client,
				run: func(ctx context.Context, e *env) (*measure, error) { return runProducer(ctx, e, m) },
			}
			if f.kill {
				// Kill the broker twice, when the acknowledged count passes
				// two points in the first two thirds of the run.
				s.killUnit = "acknowledged records"
				s.kills = func(c *Config, rng *rand.Rand) []int {
					n := c.Records
					k1 := n/5 + rng.Intn(n/5+1)
					return []int{k1, k1 + n/5 + rng.Intn(n/5+1)}
				}
			}
			out = append(out, s)
		}
	}
	for _, m := range consumerModes {
		out = append(out, &scenario{
			side: "consumer", config: m.name, fault: "consumer killed mid-batch", guarantee: m.guarantee,
			killUnit: "records processed", kills: consumerKills,
			run: func(ctx context.Context, e *env) (*measure, error) { return runConsumer(ctx, e, m) },
		})
	}
	out = append(out,
		&scenario{
			side: "end to end", config: "consume-transform-produce", fault: "worker killed mid-transaction", guarantee: ExactlyOnce,
			// Kill points count produce batches: a transaction of 50
			// records over three partitions writes a few.
			killUnit: "produce batches",
			kills: func(_ *Config, rng *rand.Rand) []int {
				return []int{3 + rng.Intn(20), 3 + rng.Intn(20)}
			},
			run: func(ctx context.Context, e *env) (*measure, error) { return runEOS(ctx, e, false) },
		},
		&scenario{
			side: "end to end", config: "consume-transform-produce", fault: "zombie resumed", guarantee: ExactlyOnce,
			killUnit: "produce batches (SIGSTOP, then SIGCONT)",
			kills:    func(_ *Config, rng *rand.Rand) []int { return []int{3 + rng.Intn(15)} },
			run:      func(ctx context.Context, e *env) (*measure, error) { return runEOS(ctx, e, true) },
		},
		&scenario{
			side: "end to end", config: "stateful processor (count per key)", fault: "workers and broker killed", guarantee: ExactlyOnce,
			embeddedOnly: true, // the broker kill
			killUnit:     "produce batches (workers), then committed inputs (broker)",
			kills:        statefulKills,
			run:          runStateful,
		},
		&scenario{
			side: "end to end", config: "order saga (orders + inventory + payment)", fault: "workers and broker killed", guarantee: ExactlyOnce,
			embeddedOnly: true, // the broker kill
			killUnit:     "produce batches (order, inventory, payment worker), then ms after the first order (broker)",
			kills:        sagaKills,
			run:          runSaga,
		},
	)
	return out
}

// joinSpec joins fault specs, skipping empty ones.
func joinSpec(specs ...string) string {
	var parts []string
	for _, s := range specs {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ",")
}

// cluster gives the scenario its brokers: a fresh Weir child with spec
// (plus the configured extra faults), or the external cluster (b nil).
func (e *env) cluster(ctx context.Context, spec string) (bk brokers, b *brokerProc, err error) {
	if len(e.cfg.Brokers) > 0 {
		return brokers{addrs: e.cfg.Brokers, sec: e.cfg.ClientOpts}, nil, nil
	}
	b, err = startBroker(ctx, e.cfg.Exe, e.workDir+"/broker", joinSpec(spec, e.cfg.ExtraFaults), e.faultSeed)
	if err != nil {
		return brokers{}, nil, err
	}
	return brokers{addrs: []string{b.addr}}, b, nil
}

// consumerKills draws where the first two worker generations die: after
// a number of records that falls inside a poll batch, not on its edge.
func consumerKills(c *Config, rng *rand.Rand) []int {
	batches := max(1, c.ConsumerRecords/pollRecords/4)
	var ks []int
	for range 2 {
		ks = append(ks, rng.Intn(batches)*pollRecords+10+rng.Intn(pollRecords-20))
	}
	return ks
}

// describe is a scenario's fault schedule in words: the same seed gives
// the same text.
func (s *scenario) describe(e *env) string {
	var parts []string
	if spec := joinSpec(s.spec, e.cfg.ExtraFaults); spec != "" && len(e.cfg.Brokers) == 0 {
		parts = append(parts, fmt.Sprintf("--unsafe-faults %s --unsafe-faults-seed %d", spec, e.faultSeed))
	}
	if e.clientFault != noClientFault {
		what := "lose the response"
		if e.clientFault == clientConnDrop {
			what = "close the connection instead"
		}
		parts = append(parts, fmt.Sprintf("client side: %s of the 3rd produce request, then of each with probability %g (seed %d)", what, clientFaultProb, e.faultSeed))
	}
	switch {
	case s.side == sideCluster && len(e.kills) > 0:
		parts = append(parts, fmt.Sprintf("after %d ms of writes: %s", e.kills[0], faultScript[s.fault]))
	case len(e.kills) > 0:
		parts = append(parts, fmt.Sprintf("kill at %v %s", e.kills, s.killUnit))
	}
	if len(parts) == 0 {
		return "no fault"
	}
	return strings.Join(parts, "; ")
}
