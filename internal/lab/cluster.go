package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/testsvc"
)

// clusterSettings make the lab's cluster react within seconds: a node
// whose heartbeats stop is fenced after two, a follower that stops
// fetching leaves the ISR after one and a half.
var clusterSettings = []string{
	"broker.session.timeout.ms=2000",
	"broker.heartbeat.interval.ms=300",
	"replica.lag.time.max.ms=1500",
	"group.initial.rebalance.delay.ms=0",
}

// clusterSession is broker.session.timeout.ms above.
const clusterSession = 2 * time.Second

// labCluster is a cluster of `weir serve` processes (testsvc.Cluster),
// each behind a proxy it advertises to clients and to the other nodes.
type labCluster struct {
	c       *testsvc.Cluster
	proxies []*proxy
	tally   *errorTally
	frozen  []bool
	admin   []*kgo.Client // one per node, talking to that node only
}

// startCluster starts n nodes of exe under dir, with extra added to each
// node's arguments. The nodes are started through a small script that
// adds each node's advertised listener (its proxy) to the arguments the
// cluster starter gives it.
func startCluster(ctx context.Context, exe, dir string, n int, tally *errorTally, extra ...string) (*labCluster, error) {
	lc := &labCluster{tally: tally, frozen: make([]bool, n)}
	var proxyAddrs []string
	for range n {
		port, err := freePort()
		if err != nil {
			lc.stop()
			return nil, err
		}
		p, err := newProxy(net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), tally)
		if err != nil {
			lc.stop()
			return nil, err
		}
		lc.proxies = append(lc.proxies, p)
		proxyAddrs = append(proxyAddrs, p.addr())
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		lc.stop()
		return nil, err
	}
	script, err := writeNodeScript(dir, exe, proxyAddrs)
	if err != nil {
		lc.stop()
		return nil, err
	}
	args := []string{"--log-level", "warn"}
	for _, s := range append(slices.Clone(brokerSettings), clusterSettings...) {
		args = append(args, "--set", s)
	}
	c, err := testsvc.StartCluster(script, dir, n, append(args, extra...)...)
	if err != nil {
		lc.stop()
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	lc.c = c
	for i, nd := range c.Nodes {
		lc.proxies[i].setTarget(nd.Addr)
		cl, err := kgo.NewClient(kgo.SeedBrokers(nd.Addr), kgo.RequestRetries(0), kgo.DialTimeout(time.Second))
		if err != nil {
			lc.stop()
			return nil, err
		}
		lc.admin = append(lc.admin, cl)
	}
	if err := lc.waitRegistered(ctx, 30*time.Second); err != nil {
		lc.stop()
		return nil, err
	}
	return lc, nil
}

// writeNodeScript writes the script the cluster starter runs as each
// node: it finds the node id among the arguments and runs exe with them
// and that node's proxy as its advertised listener.
func writeNodeScript(dir, exe string, proxies []string) (string, error) {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n# One node of the weir lab's cluster, advertising the lab's proxy in front of it.\n")
	b.WriteString("node=\nprev=\nfor a in \"$@\"; do\n  if [ \"$prev\" = --node-id ]; then node=$a; fi\n  prev=$a\ndone\ncase \"$node\" in\n")
	for i, a := range proxies {
		fmt.Fprintf(&b, "%d) adv=%s ;;\n", i+1, a)
	}
	b.WriteString("*) echo \"weir lab: no proxy for node $node\" >&2; exit 2 ;;\nesac\n")
	fmt.Fprintf(&b, "exec %s \"$@\" --set advertised.listeners=PLAINTEXT://$adv\n", shellQuote(exe))
	path := filepath.Join(dir, "weir-node.sh")
	if err := os.WriteFile(path, []byte(b.String()), 0o755); err != nil {
		return "", fmt.Errorf("write node script: %w", err)
	}
	return path, nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// seeds are the proxies' addresses: what clients bootstrap from.
func (lc *labCluster) seeds() []string {
	var out []string
	for _, p := range lc.proxies {
		out = append(out, p.addr())
	}
	return out
}

// stop ends every node and proxy.
func (lc *labCluster) stop() {
	for i := range lc.frozen {
		if lc.frozen[i] {
			lc.thaw(i)
		}
	}
	if lc.c != nil {
		lc.c.Stop()
	}
	for _, cl := range lc.admin {
		cl.Close()
	}
	for _, p := range lc.proxies {
		p.close()
	}
}

// nodeIndex is the index of node id.
func nodeIndex(id int32) int { return int(id - 1) }

// kill SIGKILLs node i; its proxy stops listening with it.
func (lc *labCluster) kill(i int) {
	lc.c.Kill(i)
	lc.proxies[i].down()
}

// restart starts node i again on its directory and ports, its proxy
// first.
func (lc *labCluster) restart(i int) error {
	if err := lc.proxies[i].up(); err != nil {
		return err
	}
	return lc.c.Start(i)
}

// freeze stops node i with SIGSTOP: alive to the kernel, silent to
// everyone else, as a long pause would make it.
func (lc *labCluster) freeze(i int) error {
	pid, err := pidServing(lc.c.Nodes[i].DataDir)
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("freeze node %d: %w", i+1, err)
	}
	lc.frozen[i] = true
	return nil
}

// thaw resumes node i with SIGCONT.
func (lc *labCluster) thaw(i int) error {
	pid, err := pidServing(lc.c.Nodes[i].DataDir)
	if err != nil {
		return err
	}
	lc.frozen[i] = false
	return syscall.Kill(pid, syscall.SIGCONT)
}

// pidServing finds the `weir serve` process on dataDir in /proc.
func pidServing(dataDir string) (int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("freezing a node needs /proc: %w", err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		for k := 0; k+1 < len(args); k++ {
			if args[k] == "--data" && args[k+1] == dataDir && slices.Contains(args, "serve") {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no process serves %s", dataDir)
}

// cutReplication makes the followers' fetches from leader fail (their
// connections to it are closed), while heartbeats, the metadata quorum
// and clients still reach every node.
func (lc *labCluster) cutReplication(leader int, followers ...int) {
	var ids []string
	for _, f := range followers {
		ids = append(ids, replicaClientID(int32(f+1)))
	}
	lc.proxies[leader].cutFetches(ids...)
}

// heal lifts every cut.
func (lc *labCluster) heal() {
	for _, p := range lc.proxies {
		p.cutFetches()
	}
}

// usable reports whether node i runs and is not frozen.
func (lc *labCluster) usable(i int) bool { return lc.c.Running(i) && !lc.frozen[i] }

// waitRegistered waits until a running node names a controller and lists
// every node as a broker.
func (lc *labCluster) waitRegistered(ctx context.Context, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	last := "no node answered"
	for {
		for i := range lc.admin {
			if !lc.usable(i) {
				continue
			}
			req := kmsg.NewPtrMetadataRequest()
			req.Topics = []kmsg.MetadataRequestTopic{}
			resp, err := lc.request(ctx, i, req)
			switch {
			case err != nil:
				last = fmt.Sprintf("node %d: %v", i+1, err)
			case resp.(*kmsg.MetadataResponse).ControllerID < 0:
				last = fmt.Sprintf("node %d knows no controller", i+1)
			case len(resp.(*kmsg.MetadataResponse).Brokers) != len(lc.admin):
				last = fmt.Sprintf("node %d lists %d of %d brokers", i+1, len(resp.(*kmsg.MetadataResponse).Brokers), len(lc.admin))
			default:
				return nil
			}
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("cluster not ready: %s", last)
		}
	}
}

func (lc *labCluster) request(ctx context.Context, i int, req kmsg.Request) (kmsg.Response, error) {
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return lc.admin[i].SeedBrokers()[0].Request(rctx, req)
}

// createTopic creates topic with one partition on every node, with the
// row's min.insync.replicas and unclean.leader.election.enable.
func (lc *labCluster) createTopic(ctx context.Context, topic string, minISR int, unclean bool) error {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 10000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, 1, int16(len(lc.admin))
	for _, kv := range [][2]string{
		{"min.insync.replicas", strconv.Itoa(minISR)},
		{"unclean.leader.election.enable", strconv.FormatBool(unclean)},
	} {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = kv[0], kmsg.StringPtr(kv[1])
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	var last error
	for attempt := 0; attempt < 20; attempt++ {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(lc.seeds()...)}, clientTimeouts()...)...)
		if err != nil {
			return err
		}
		resp, err := req.RequestWith(ctx, cl)
		cl.Close()
		if err == nil {
			err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
		}
		if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
			_, err = lc.waitPartition(ctx, topic, 20*time.Second, "its three replicas in sync", func(st partState) bool {
				return st.Leader >= 0 && len(st.ISR) == len(lc.admin)
			})
			return err
		}
		last = err
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			break
		}
	}
	return fmt.Errorf("create topic %s: %w", topic, last)
}

// partState is partition 0 of a topic as the metadata shows it.
type partState struct {
	Leader, LeaderEpoch int32
	ISR                 []int32
}

func (s partState) String() string {
	if s.Leader < 0 {
		return fmt.Sprintf("no leader, ISR %v", s.ISR)
	}
	return fmt.Sprintf("leader %d (epoch %d), ISR %v", s.Leader, s.LeaderEpoch, s.ISR)
}

// state asks every usable node for partition 0 of topic. The active
// controller's answer wins, as its image holds every committed change
// first; without it, the answer with the newest leader epoch.
func (lc *labCluster) state(ctx context.Context, topic string) (partState, bool) {
	var nodes []int
	for i := range lc.admin {
		if lc.usable(i) {
			nodes = append(nodes, i)
		}
	}
	return lc.stateFrom(ctx, topic, nodes)
}

// stateFrom is state asking only the given nodes. It touches no process
// handle, so it may run beside a kill or restart of another goroutine.
func (lc *labCluster) stateFrom(ctx context.Context, topic string, nodes []int) (partState, bool) {
	best, found, fromController := partState{Leader: -1, LeaderEpoch: -1}, false, false
	for _, i := range nodes {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		kresp, err := lc.request(ctx, i, req)
		if err != nil {
			continue
		}
		resp := kresp.(*kmsg.MetadataResponse)
		isController := resp.ControllerID == int32(i+1)
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.Partition != 0 || fromController {
					continue
				}
				if !found || isController || p.LeaderEpoch > best.LeaderEpoch {
					best = partState{Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, ISR: slices.Clone(p.ISR)}
					found, fromController = true, isController
				}
			}
		}
	}
	return best, found
}

// waitPartition polls the partition's state until cond holds or within
// passes; the error names what was awaited and the last state seen.
func (lc *labCluster) waitPartition(ctx context.Context, topic string, within time.Duration, what string, cond func(partState) bool) (partState, error) {
	deadline := time.Now().Add(within)
	var st partState
	for {
		var ok bool
		if st, ok = lc.state(ctx, topic); ok && cond(st) {
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("%w: %s not reached within %v (last seen: %v)", errNotReached, what, within, st)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return st, err
		}
	}
}

// errNotReached marks a state the partition did not reach in time.
var errNotReached = errors.New("partition state")

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
