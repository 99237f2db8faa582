package lab

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"
)

// A cluster session (SimSettings.Cluster) runs the lab's cluster instead
// of one broker: `weir serve` nodes, each behind a proxy of the lab's
// that counts the error codes the producer is answered with, and a topic
// of one partition with replication factor 3, min.insync.replicas=2 and
// unclean leader election off, the configuration the lab's broker-layer
// rows judge. Two faults act on its nodes, through the same Inject as the
// others: "kill the leader" SIGKILLs the partition's leader, waits for
// another replica to lead and restarts it; "kill two nodes" SIGKILLs both
// followers (the metadata quorum goes with them), keeps them down for
// simTwoDown and restarts them. The acknowledgement and connection
// faults go to the leader's injector, as the leader answers the
// producer.

// simClusterNodes is a cluster session's node count, and its topic's
// replication factor.
const simClusterNodes = 3

// simClusterMinISR is its topic's min.insync.replicas: an acks=all write
// needs a follower besides the leader.
const simClusterMinISR = 2

// simTwoDown is how long "kill two nodes" keeps them down: longer than
// the producer's delivery timeout in a cluster (clusterDeliveryTimeout),
// so that records the partition refuses all along are given up, drawn
// as not acknowledged.
const simTwoDown = 6 * time.Second

// simProducerID is the session producer's client id, whose produce
// responses the cluster's proxies count.
const simProducerID = "weir-sim-producer"

// SimNode is one node of a cluster session as the page draws it.
type SimNode struct {
	ID     int32 `json:"id"`
	Up     bool  `json:"up"`
	Leader bool  `json:"leader"`
	InSync bool  `json:"inSync"`
}

// startNodes starts a cluster session's nodes and topic.
func (ss *Session) startNodes(ctx context.Context) error {
	n := ss.settings.Cluster
	ss.tally = newErrorTally(simProducerID)
	lc, err := startCluster(ctx, ss.exe, filepath.Join(ss.dir, "cluster"), n, ss.tally,
		"--unsafe-faults", "none", "--unsafe-faults-seed", strconv.FormatInt(ss.sched.faultSeed, 10))
	if err != nil {
		return err
	}
	ss.cluster, ss.partitions, ss.bk = lc, 1, brokers{addrs: lc.seeds()}
	ss.nodeUp = make([]bool, n)
	for i := range ss.nodeUp {
		ss.nodeUp[i] = true
	}
	ss.brokerUp = true
	if err := lc.createTopic(ctx, ss.topic, simClusterMinISR, false); err != nil {
		return err
	}
	ss.event("cluster of %d nodes started with --unsafe-faults none --unsafe-faults-seed %d; topic %s, 1 partition, replication factor %d, min.insync.replicas=%d, unclean election off",
		n, ss.sched.faultSeed, ss.topic, n, simClusterMinISR)
	ss.watchDone = make(chan struct{})
	go ss.watchPartition()
	return nil
}

// watchPartition polls the partition's leader and ISR for the page,
// asking the nodes that are up.
func (ss *Session) watchPartition() {
	defer close(ss.watchDone)
	for ss.ctx.Err() == nil {
		st, ok := ss.cluster.stateFrom(ss.ctx, ss.topic, ss.upNodes())
		if ok {
			ss.mu.Lock()
			ss.part, ss.partSeen = st, true
			ss.mu.Unlock()
		}
		sleepCtx(ss.ctx, 300*time.Millisecond)
	}
}

// upNodes are the indexes of the nodes not killed by a fault.
func (ss *Session) upNodes() []int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var out []int
	for i, up := range ss.nodeUp {
		if up {
			out = append(out, i)
		}
	}
	return out
}

// leaderNow asks the nodes for the partition's leader, by index.
func (ss *Session) leaderNow(ctx context.Context) (int, error) {
	st, ok := ss.cluster.stateFrom(ctx, ss.topic, ss.upNodes())
	if !ok || st.Leader < 0 {
		return -1, errors.New("the partition has no leader right now; try again in a moment")
	}
	return nodeIndex(st.Leader), nil
}

func (ss *Session) setBrokerUp(up bool) {
	ss.mu.Lock()
	ss.brokerUp = up
	ss.mu.Unlock()
}

// injectNodeFault SIGKILLs the partition's leader (SimKillLeader) or its
// two followers (SimKillTwo) now, and restarts them in the background.
// One node fault runs at a time: the process handles of the cluster are
// touched by one goroutine at a time.
func (ss *Session) injectNodeFault(ctx context.Context, kind string, sent int) error {
	if ss.cluster == nil {
		return errors.New("this session runs one broker: kill the broker")
	}
	ss.mu.Lock()
	if !ss.brokerUp {
		ss.mu.Unlock()
		return errors.New("a node fault is under way; wait until its nodes are back")
	}
	ss.brokerUp = false
	ss.mu.Unlock()
	leader, err := ss.leaderNow(ctx)
	if err != nil {
		ss.setBrokerUp(true)
		return err
	}
	lc := ss.cluster
	var victims []int
	for i := range lc.admin {
		if (kind == SimKillLeader) == (i == leader) {
			victims = append(victims, i)
		}
	}
	ss.mu.Lock()
	for _, i := range victims {
		ss.nodeUp[i] = false
	}
	ss.mu.Unlock()
	for _, i := range victims {
		lc.kill(i)
	}
	if kind == SimKillLeader {
		ss.event("kill the leader (at record %d): node %d SIGKILLed", sent, leader+1)
	} else {
		ss.event("kill two nodes (at record %d): nodes %d and %d, the leader's followers, SIGKILLed; the metadata quorum goes with them", sent, victims[0]+1, victims[1]+1)
	}
	ss.bg.Add(1)
	go func() {
		defer ss.bg.Done()
		defer ss.setBrokerUp(true)
		if kind == SimKillLeader {
			st, err := lc.waitPartition(ss.ctx, ss.topic, 10*clusterSession, "another replica leads", newLeader(leader))
			switch {
			case errors.Is(err, errNotReached):
				ss.event("%v", err)
			case err != nil:
				return
			default:
				ss.event("node %d leads (epoch %d), ISR %v", st.Leader, st.LeaderEpoch, st.ISR)
			}
		} else if sleepCtx(ss.ctx, simTwoDown) != nil {
			return
		}
		for _, i := range victims {
			if err := lc.restart(i); err != nil {
				ss.fail(fmt.Errorf("restart node %d: %w", i+1, err))
				return
			}
			ss.mu.Lock()
			ss.nodeUp[i] = true
			ss.mu.Unlock()
			ss.event("node %d restarted on its data directory and port", i+1)
		}
		st, err := lc.waitPartition(ss.ctx, ss.topic, 30*time.Second, "every replica in sync", func(st partState) bool {
			return st.Leader >= 0 && len(st.ISR) == len(lc.admin)
		})
		switch {
		case errors.Is(err, errNotReached):
			ss.event("%v", err)
		case err == nil:
			ss.event("every replica in sync again: %v", st)
		}
	}()
	return nil
}

// clusterSnapshot adds a cluster session's nodes, partition and the
// producer's refusals to st; ss.mu is held.
func (ss *Session) clusterSnapshot(st *SimState) {
	if ss.cluster == nil {
		return
	}
	for i, up := range ss.nodeUp {
		id := int32(i + 1)
		n := SimNode{ID: id, Up: up}
		if ss.partSeen {
			n.Leader = up && ss.part.Leader == id
			for _, r := range ss.part.ISR {
				n.InSync = n.InSync || r == id
			}
		}
		st.Nodes = append(st.Nodes, n)
	}
	if ss.partSeen {
		st.Partition = ss.part.String()
	}
	st.Refused = countsText(ss.tally.snapshot())
}
