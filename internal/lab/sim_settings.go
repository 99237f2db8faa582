package lab

import (
	"errors"
	"fmt"
	"math/rand"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// SimSettings are what a person picks in the delivery simulator: the
// producer's and the consumer's settings under Kafka's names, and a seed.
type SimSettings struct {
	// Acks is "0", "1" or "all".
	Acks string `json:"acks"`
	// Retries off sends each record once (retries=0).
	Retries bool `json:"retries"`
	// Idempotent is enable.idempotence; it needs acks=all and retries,
	// as Kafka's producer requires.
	Idempotent bool `json:"idempotence"`
	// MaxInFlight is max.in.flight.requests.per.connection (1 to 5).
	MaxInFlight int `json:"maxInFlight"`
	// Transactions sends the records in transactions of simTxnRecords.
	Transactions bool `json:"transactions"`
	// Commit is when the consumer commits: "auto" (enable.auto.commit),
	// "before" (before processing a batch) or "after" (after it).
	Commit string `json:"commit"`
	// ReadCommitted is isolation.level=read_committed.
	ReadCommitted bool `json:"readCommitted"`
	// Dedup makes the consumer apply each record through the dedup store
	// (pkg/dedup), committing after processing.
	Dedup bool `json:"dedup"`
	// Seed fixes the record pacing and the fault draws.
	Seed int64 `json:"seed"`
	// Cluster is how many nodes the session runs: 0 for one broker, 3
	// for a cluster with a topic of replication factor 3 and
	// min.insync.replicas=2. The server chooses it (`weir lab --ui
	// --cluster 3`), not the page's form.
	Cluster int `json:"cluster"`
}

// Validate refuses the combinations Kafka's producer refuses, with its
// reasons.
func (s SimSettings) Validate() error {
	switch s.Acks {
	case "0", "1", "all":
	default:
		return fmt.Errorf("acks %q: use 0, 1 or all", s.Acks)
	}
	switch s.Commit {
	case "auto", "before", "after":
	default:
		return fmt.Errorf("commit %q: use auto, before or after", s.Commit)
	}
	if s.Cluster != 0 && s.Cluster != simClusterNodes {
		return fmt.Errorf("cluster of %d nodes: a session runs one broker or %d nodes (replication factor %d)", s.Cluster, simClusterNodes, simClusterNodes)
	}
	if s.MaxInFlight < 1 || s.MaxInFlight > 5 {
		return errors.New("max.in.flight.requests.per.connection must be between 1 and 5")
	}
	if s.Transactions && !s.Idempotent {
		return errors.New("transactions need enable.idempotence=true")
	}
	if s.Idempotent && s.Acks != "all" {
		return errors.New("must set acks to all in order to use the idempotent producer")
	}
	if s.Idempotent && !s.Retries {
		return errors.New("must set retries to non-zero when using the idempotent producer")
	}
	return nil
}

// Claim is the end-to-end guarantee the settings claim, judged as the lab
// judges each side (producerModes, consumerModes) and combined: the
// weaker side wins, and a side that may lose with a side that may
// duplicate claims nothing.
func (s SimSettings) Claim() Guarantee {
	return combine(s.producerClaim(), s.consumerClaim())
}

func (s SimSettings) producerClaim() Guarantee {
	switch {
	case s.Acks == "0":
		return AtMostOnce
	case s.Acks == "1":
		// As the lab's acks=1 row: neither guarantee.
		return NoGuarantee
	case s.Idempotent:
		return ExactlyOnce
	case !s.Retries:
		// A record whose answer is lost is given up on, never sent twice.
		return AtMostOnce
	}
	return AtLeastOnce
}

func (s SimSettings) consumerClaim() Guarantee {
	var g Guarantee
	switch {
	case s.Dedup:
		g = ExactlyOnce
	case s.Commit == "before":
		g = AtMostOnce
	default:
		// kgo's auto-commit commits what earlier polls returned, as the
		// lab's auto-commit row: at least once.
		g = AtLeastOnce
	}
	if g == ExactlyOnce && s.Transactions && !s.ReadCommitted {
		// Records of aborted transactions reach a read_uncommitted reader.
		g = AtLeastOnce
	}
	return g
}

func combine(a, b Guarantee) Guarantee {
	if a == NoGuarantee || b == NoGuarantee || a == AtMostOnce && b == AtLeastOnce || a == AtLeastOnce && b == AtMostOnce {
		return NoGuarantee
	}
	return min(a, b)
}

// workerRole is the lab worker role of the consumer settings.
func (s SimSettings) workerRole() string {
	switch {
	case s.Dedup:
		return workerDedup
	case s.Commit == "before":
		return workerCommitBefore
	case s.Commit == "after":
		return workerCommitAfter
	}
	return workerAutoCommit
}

// producerOpts are the kgo options of the settings.
func (s SimSettings) producerOpts() []kgo.Opt {
	var opts []kgo.Opt
	switch s.Acks {
	case "0":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()))
	case "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
	default:
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	}
	if !s.Idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(s.MaxInFlight))
	}
	if !s.Retries {
		opts = append(opts, kgo.RecordRetries(0))
	}
	return opts
}

// simInterval is the producer's pace: a record every simInterval on
// average, each gap drawn from the seed between half and one and a half
// times that, so a seed repeats the same rhythm.
const simInterval = 40 * time.Millisecond

// simSchedule is what a seed fixes in a session.
type simSchedule struct {
	gaps      []time.Duration // before each record
	faultSeed int64           // the broker's fault draws
}

func newSimSchedule(seed int64, records int) simSchedule {
	rng := rand.New(rand.NewSource(seed))
	sc := simSchedule{faultSeed: rng.Int63n(1 << 31)}
	for range records {
		sc.gaps = append(sc.gaps, simInterval/2+time.Duration(rng.Int63n(int64(simInterval))))
	}
	return sc
}
