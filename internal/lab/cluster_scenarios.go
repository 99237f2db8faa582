package lab

import (
	"context"
	"fmt"
	"math/rand"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The broker layer's rows (`weir lab --cluster 3`): a three-node cluster,
// a topic with replication factor 3, and a producer whose acks, the
// topic's min.insync.replicas and its unclean.leader.election.enable make
// the configuration; the faults hit the partition's leader or its
// followers. Only acks=all with min.insync.replicas=2 and unclean
// election off claims that no acknowledged record is lost: with
// min.insync.replicas=1 an acknowledged write may rest on one disk alone,
// acks=1 answers before any follower has the write, and unclean election
// gives the partition to a replica that may lack acknowledged writes.
// Those rows claim nothing; the lab measures what they lose and how long
// the partition refuses writes.

// sideCluster is the report's side of the broker-layer rows.
const sideCluster = "cluster"

// Broker-layer faults as the report shows them.
const (
	faultLeaderKilled = "leader killed"
	faultLeaderFrozen = "leader frozen"
	// No fault name holds a comma: `weir lab --only` takes a
	// comma-separated list, and `weir explain` prints --only commands.
	faultFollowersLag = "followers lag then leader killed"
	faultTwoLost      = "two nodes lost"
)

var clusterFaults = []string{faultLeaderKilled, faultLeaderFrozen, faultFollowersLag, faultTwoLost}

// faultScript says in words what each fault does.
var faultScript = map[string]string{
	faultLeaderKilled: "SIGKILL the partition's leader, wait for another replica to lead, restart it and wait until it is back in the ISR",
	faultLeaderFrozen: "SIGSTOP the partition's leader until another replica leads (past broker.session.timeout.ms), then SIGCONT it and wait until it is back in the ISR",
	faultFollowersLag: "cut both followers' replication fetches from the leader (the followers stay up, heartbeat and vote) until they leave the ISR, write to the leader alone, SIGKILL it, wait for an election, then heal, restart it and wait for a full ISR",
	faultTwoLost:      "SIGKILL both followers (the metadata quorum goes with them), write to the survivor for three seconds, restart them and wait for a full ISR",
}

// clusterMode is one broker-layer configuration.
type clusterMode struct {
	acks    kgo.Acks
	all     bool // acks=all rather than acks=1
	minISR  int
	unclean bool
}

func (m clusterMode) name() string {
	acks := "1"
	if m.all {
		acks = "all"
	}
	u := "off"
	if m.unclean {
		u = "on"
	}
	return fmt.Sprintf("acks=%s min.insync=%d unclean=%s", acks, m.minISR, u)
}

// guarantee is what the configuration claims.
func (m clusterMode) guarantee() Guarantee {
	if m.all && m.minISR >= 2 && !m.unclean {
		return AtLeastOnce
	}
	return NoGuarantee
}

// clusterModes is every combination, in report order.
func clusterModes() []clusterMode {
	var out []clusterMode
	for _, all := range []bool{false, true} {
		for _, minISR := range []int{1, 2} {
			for _, unclean := range []bool{false, true} {
				acks := kgo.LeaderAck()
				if all {
					acks = kgo.AllISRAcks()
				}
				out = append(out, clusterMode{acks: acks, all: all, minISR: minISR, unclean: unclean})
			}
		}
	}
	return out
}

// Reasons a combination is not run: it would measure what another row
// already does.
const (
	pruneAcks1MinISR = "min.insync.replicas gates acks=all writes only, as in Kafka: acks=1 with min.insync=2 acknowledges the same writes as with min.insync=1"
	pruneUnclean     = "unclean election acts only when no in-sync replica is left to lead: a killed or frozen leader leaves two, and with two nodes lost no election happens at all (the metadata quorum is gone) until in-sync nodes return"
	pruneMinISR      = "min.insync.replicas 1 and 2 act alike while the ISR keeps two members: a single killed or frozen leader leaves two, and with two nodes lost no ISR change can be committed, so acks=all waits on the lost followers either way"
)

// pruneReason says why a combination is not run, or "".
func pruneReason(m clusterMode, fault string) string {
	switch {
	case !m.all && m.minISR > 1:
		return pruneAcks1MinISR
	case m.unclean && fault != faultFollowersLag:
		return pruneUnclean
	case m.all && m.minISR == 1 && fault != faultFollowersLag:
		return pruneMinISR
	}
	return ""
}

// Pruned is a combination of the broker-layer matrix that was not run,
// and why.
type Pruned struct {
	Name string `json:"name"`
	Why  string `json:"why"`
}

// clusterScenarios lists the broker-layer rows to run, in report order,
// and the combinations pruned.
func clusterScenarios(cfg *Config) ([]*scenario, []Pruned) {
	var out []*scenario
	var pruned []Pruned
	for _, f := range clusterFaults {
		for _, m := range clusterModes() {
			s := &scenario{side: sideCluster, config: m.name(), fault: f, guarantee: m.guarantee(), embeddedOnly: true}
			if why := pruneReason(m, f); why != "" {
				pruned = append(pruned, Pruned{Name: s.name(), Why: why})
				continue
			}
			// The one "kill point" is how long the producer writes before
			// the fault starts.
			s.kills = func(_ *Config, rng *rand.Rand) []int { return []int{1000 + rng.Intn(500)} }
			s.run = func(ctx context.Context, e *env) (*measure, error) { return runClusterRow(ctx, e, m, f) }
			out = append(out, s)
		}
	}
	return out, pruned
}
