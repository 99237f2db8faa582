package sim

import (
	"fmt"
	"math/rand/v2"
)

// kind is what an action does.
type kind int

const (
	actPlain     kind = iota // a batch from a producer without an id
	actIdem                  // the next batch of an idempotent producer
	actRetry                 // a retry of one of an idempotent producer's last batches
	actTxn                   // a batch of a transactional producer (opening its transaction)
	actEnd                   // the COMMIT or ABORT marker of a transactional producer
	actFlush                 // one round of the flusher (fsync, HW, snapshot when due)
	actSync                  // fsync and HW only
	actDelete                // DeleteRecords
	actRetention             // retention by size
	actRestart               // clean close and reopen
	actCrash                 // power loss and reopen
	actFetch                 // a follower fetch (replicated runs)
	actDiverge               // the follower takes batches the leader never had (replicated runs)
)

var kindNames = [...]string{"plain", "idem", "retry", "txn", "end", "flush", "sync", "delete", "retention", "restart", "crash", "fetch", "diverge"}

// weights are how often each kind is drawn; a run of one replica draws
// no fetch or divergence, so its schedules are what they always were.
var (
	weights           = [...]int{8, 12, 5, 14, 8, 14, 4, 3, 2, 2, 3, 0, 0}
	replicatedWeights = [...]int{8, 12, 5, 14, 8, 14, 4, 3, 2, 2, 3, 16, 2}
)

// Producer ids of the simulated clients.
var (
	idemPIDs = []int64{1, 2}
	txnPIDs  = []int64{7, 8}
)

// action is one step of a run. Everything a step decides is drawn when
// the run is generated, so a list of actions replays exactly and can be
// shrunk by removing some.
type action struct {
	kind    kind
	pid     int64
	records int     // records in a batch
	commit  bool    // actEnd
	back    int     // actRetry: 0 is the producer's newest batch
	frac    float64 // actDelete: where in [log start, HW]; actRetention: the share of the log kept
	syncMid bool    // flush at the point where the batch is in the log and the producer state not yet updated
	crashAt int     // lose power at the action's crashAt-th file-system operation (0: never)
	keep    uint64  // how much of each unsynced tail a power loss keeps
}

func (a action) String() string {
	s := kindNames[a.kind]
	switch a.kind {
	case actIdem, actTxn, actPlain:
		s += fmt.Sprintf(" pid=%d records=%d", a.pid, a.records)
	case actRetry:
		s += fmt.Sprintf(" pid=%d back=%d", a.pid, a.back)
	case actEnd:
		s += fmt.Sprintf(" pid=%d commit=%v durable-now=%v", a.pid, a.commit, a.frac < 0.5)
	case actDelete, actRetention:
		s += fmt.Sprintf(" frac=%.2f", a.frac)
	case actCrash:
		s += fmt.Sprintf(" keep=%d", a.keep%1000)
	case actFetch:
		s += fmt.Sprintf(" max-bytes=%d", fetchBytes(a))
	case actDiverge:
		s += fmt.Sprintf(" batches=%d", a.records)
	}
	if a.syncMid {
		s += " sync-mid-append"
	}
	if a.crashAt > 0 {
		s += fmt.Sprintf(" crash-at-op=%d keep=%d", a.crashAt, a.keep%1000)
	}
	return s
}

// generate draws a run of n actions from seed, for a leader with a
// follower when replicated.
func generate(seed uint64, n int, replicated bool) []action {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	weights := weights
	if replicated {
		weights = replicatedWeights
	}
	total := 0
	for _, w := range weights {
		total += w
	}
	out := make([]action, n)
	for i := range out {
		r := rng.IntN(total)
		k := kind(0)
		for r >= weights[k] {
			r -= weights[k]
			k++
		}
		a := action{kind: k, records: 1 + rng.IntN(3), frac: rng.Float64(), keep: rng.Uint64()}
		switch k {
		case actPlain:
			a.pid = -1
		case actIdem, actRetry:
			a.pid = idemPIDs[rng.IntN(len(idemPIDs))]
			a.back = rng.IntN(6)
		case actTxn, actEnd:
			a.pid = txnPIDs[rng.IntN(len(txnPIDs))]
			a.commit = rng.IntN(3) > 0
		}
		switch k {
		case actPlain, actIdem, actRetry, actTxn, actEnd, actDelete, actRetention:
			a.syncMid = rng.IntN(3) == 0
		}
		if k != actCrash && k != actFetch && rng.IntN(12) == 0 {
			a.crashAt = 1 + rng.IntN(10)
		}
		out[i] = a
	}
	return out
}
