package lab

import "time"

// Record fates as the simulator draws them, one letter per record.
const (
	FateSent       = 's' // sent, no answer yet
	FateAcked      = 'a' // acknowledged, not yet seen in the log
	FateStored     = 't' // in the log, not yet processed by the consumer
	FateDelivered  = 'd' // processed once
	FateDuplicated = 'D' // processed more than once
	FateLost       = 'l' // acknowledged and, once the session is done, never processed
	FateFailed     = 'f' // the producer gave up on it
)

// SimState is a session as the page draws it.
type SimState struct {
	State    string      `json:"state"`
	Error    string      `json:"error,omitempty"`
	Settings SimSettings `json:"settings"`
	Claim    string      `json:"claim"`
	Elapsed  float64     `json:"elapsedSec"`
	// Records holds one fate letter per record sent, in id order.
	Records string `json:"records"`
	// Stored counts records in the log (duplicates included).
	Stored int `json:"stored"`
	// Tally is the lab's checker over what the session has followed so
	// far; Lost counts what is acknowledged and not yet processed until
	// the session is done.
	Tally Result `json:"tally"`
	// Final is set once the session is done.
	Final    *SimFinal `json:"final,omitempty"`
	Verdict  string    `json:"verdict"`
	BrokerUp bool      `json:"brokerUp"`
	// Nodes, Partition and Refused describe a cluster session: each
	// node, the partition's leader and ISR as last polled, and the error
	// codes the nodes answered the producer with ("NOT_ENOUGH_REPLICAS
	// ×4, ..."), as the lab's proxies count them.
	Nodes     []SimNode `json:"nodes,omitempty"`
	Partition string    `json:"partition,omitempty"`
	Refused   string    `json:"refused,omitempty"`
	WorkerGen int       `json:"consumerWorker"`
	Events    []string  `json:"events"`
}

// Snapshot returns the session's state now.
func (ss *Session) Snapshot() SimState {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	st := SimState{State: ss.state, Error: ss.err, Settings: ss.settings, Claim: ss.settings.Claim().String(),
		Elapsed: time.Since(ss.started).Seconds(), Final: ss.final, BrokerUp: ss.brokerUp, WorkerGen: ss.workerGen,
		Events: append([]string(nil), ss.events...)}
	ss.clusterSnapshot(&st)
	if ss.err != "" && ss.state == SimRunning {
		st.State = SimFailed
	}
	seen := make([]int, ss.sent)
	for _, d := range ss.delivered {
		if d.ID >= 0 && d.ID < int64(ss.sent) {
			seen[d.ID]++
		}
	}
	done := ss.final != nil // judged; the processes may still be stopping
	rec := make([]byte, ss.sent)
	for id := range rec {
		st.Stored += ss.stored[id]
		switch {
		case seen[id] > 1:
			rec[id] = FateDuplicated
		case seen[id] == 1:
			rec[id] = FateDelivered
		case done && ss.acked[id]:
			rec[id] = FateLost
		case ss.stored[id] > 0:
			rec[id] = FateStored
		case ss.acked[id]:
			rec[id] = FateAcked
		case ss.failed[id]:
			rec[id] = FateFailed
		default:
			rec[id] = FateSent
		}
	}
	st.Records = string(rec)
	if done {
		st.Tally = ss.final.Tally
		if len(ss.final.Violations) == 0 {
			st.Verdict = "held: " + ss.settings.Claim().String()
			if ss.settings.Claim() == NoGuarantee {
				st.Verdict = "nothing claimed; measured only"
			}
		} else {
			st.Verdict = "broken: " + joinComma(ss.final.Violations)
		}
	} else {
		st.Tally = Check(History{Sent: ss.sent, Acked: ss.acked[:ss.sent], Delivered: ss.delivered})
		st.Verdict = "pending: judged when the session stops"
	}
	return st
}

func joinComma(v []string) string {
	out := ""
	for i, s := range v {
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out
}
