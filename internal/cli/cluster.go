package cli

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// newClusterCommand returns `weir cluster` with `describe` and `elect`; the weir
// binary adds `up`, which runs brokers and so is not a client command.
func newClusterCommand(conn *connFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Run a local cluster, and describe any cluster's nodes and metadata quorum",
	}
	describe := newClusterDescribeCommand(conn)
	elect := newClusterElectCommand(conn)
	conn.register(describe)
	conn.register(elect)
	cmd.AddCommand(describe, elect)
	silence(cmd, describe, elect)
	return cmd
}

func newClusterDescribeCommand(conn *connFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "describe",
		Short: "Show the nodes, the active controller, the metadata quorum and partitions in trouble",
		Long: `Show the cluster's nodes with their roles (broker, controller: a voter
of the metadata quorum), the active controller, each voter's metadata
log end offset and lag behind the leader (DescribeQuorum), fenced brokers
where the cluster reports them (DescribeCluster v2+), the partitions
whose leader is unknown (-1 in Metadata: offline), the counts of
under-replicated partitions (fewer in-sync replicas than replicas) and
under-min-ISR partitions (fewer than min.insync.replicas: acks=all writes
are refused), and the unclean leader elections the cluster has made.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := conn.client()
			if err != nil {
				return err
			}
			defer cl.Close()
			d, err := describeCluster(cmd.Context(), cl)
			if err != nil {
				return err
			}
			d.print(cmd.OutOrStdout(), time.Now())
			return nil
		},
	}
}

// clusterDescription is what `cluster describe` prints.
type clusterDescription struct {
	clusterID  string
	controller int32
	brokers    []kmsg.DescribeClusterResponseBroker
	// fencedKnown: the answer was DescribeCluster v2+, which has the flag.
	fencedKnown bool
	quorum      *kmsg.DescribeQuorumResponseTopicPartition
	quorumNodes map[int32]string // controller endpoints (DescribeQuorum v2+)
	quorumErr   error
	leaderless  []string // topic/partition
	metadataErr error
	// underReplicated and underMinISR count partitions (healthOf);
	// minISRErr says why under-min-ISR is unknown.
	underReplicated, underMinISR int
	minISRErr                    error
	// uncleanElections is the cluster's count of unclean leader
	// elections, nil when the answering broker does not report it.
	uncleanElections *int64
}

// uncleanElectionsTag is the tagged field of Weir's DescribeCluster
// response that carries the count of unclean leader elections (a varint;
// internal/broker/cluster.go writes it).
const uncleanElectionsTag = 10001

func describeCluster(ctx context.Context, cl *kgo.Client) (*clusterDescription, error) {
	d := &clusterDescription{controller: -1}
	// Metadata first: it also tells the client every broker's address,
	// which asking a given node below needs.
	md := kmsg.NewPtrMetadataRequest() // nil topics: all of them
	mr, err := md.RequestWith(ctx, cl)
	var topics []kmsg.MetadataResponseTopic
	if err != nil {
		d.metadataErr = err
	} else {
		topics = mr.Topics
	}
	var names []string
	for _, t := range topics {
		if t.Topic != nil && t.ErrorCode == 0 {
			names = append(names, *t.Topic)
		}
	}
	var configs kadm.ResourceConfigs
	if len(names) > 0 {
		configs, d.minISRErr = kadm.NewClient(cl).DescribeTopicConfigs(ctx, names...)
	}
	for _, t := range topics {
		name := ""
		if t.Topic != nil {
			name = *t.Topic
		}
		minISR := minISROf(configs, name)
		if minISR == 0 && d.minISRErr == nil {
			d.minISRErr = fmt.Errorf("min.insync.replicas of %q did not load", name)
		}
		for _, p := range t.Partitions {
			h := healthOf(p.Leader, p.Replicas, p.ISR, minISR)
			if h.unavailable {
				d.leaderless = append(d.leaderless, name+"/"+strconv.Itoa(int(p.Partition)))
			}
			if h.underReplicated {
				d.underReplicated++
			}
			if h.underMinISR {
				d.underMinISR++
			}
		}
	}
	slices.Sort(d.leaderless)
	dreq := kmsg.NewPtrDescribeClusterRequest()
	dreq.IncludeFencedBrokers = true // v2+ (KIP-1073): fenced brokers listed and flagged
	dc, err := dreq.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(dc.ErrorCode)
	}
	if err != nil {
		return nil, fmt.Errorf("describe cluster: %w", err)
	}
	d.clusterID, d.controller, d.brokers = dc.ClusterID, dc.ControllerID, dc.Brokers
	d.fencedKnown = dc.Version >= 2
	dc.UnknownTags.Each(func(key uint32, val []byte) {
		if n, size := binary.Varint(val); key == uncleanElectionsTag && size > 0 {
			d.uncleanElections = &n
		}
	})
	slices.SortFunc(d.brokers, func(a, b kmsg.DescribeClusterResponseBroker) int { return int(a.NodeID) - int(b.NodeID) })

	d.quorum, d.quorumNodes, d.quorumErr = describeQuorum(ctx, cl, d.controller, d.brokers)

	return d, nil
}

// describeQuorum asks the active controller, which leads the metadata
// quorum, and then each broker, until one answers as the quorum's leader.
func describeQuorum(ctx context.Context, cl *kgo.Client, controller int32, brokers []kmsg.DescribeClusterResponseBroker) (*kmsg.DescribeQuorumResponseTopicPartition, map[int32]string, error) {
	order := []int32{controller}
	for _, b := range brokers {
		if b.NodeID != controller {
			order = append(order, b.NodeID)
		}
	}
	var lastErr error = errors.New("no broker to ask")
	for _, id := range order {
		if id < 0 {
			continue
		}
		req := kmsg.NewPtrDescribeQuorumRequest()
		rt := kmsg.NewDescribeQuorumRequestTopic()
		rt.Topic = "__cluster_metadata"
		rt.Partitions = []kmsg.DescribeQuorumRequestTopicPartition{kmsg.NewDescribeQuorumRequestTopicPartition()}
		req.Topics = append(req.Topics, rt)
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := req.RequestWith(rctx, cl.Broker(int(id)))
		cancel()
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		if err == nil && (len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1) {
			err = fmt.Errorf("node %d answered for %d topics", id, len(resp.Topics))
		}
		if err == nil {
			p := resp.Topics[0].Partitions[0]
			if err = kerr.ErrorForCode(p.ErrorCode); err == nil {
				nodes := make(map[int32]string)
				for _, n := range resp.Nodes {
					for _, l := range n.Listeners {
						nodes[n.NodeID] = fmt.Sprintf("%s:%d", l.Host, l.Port)
					}
				}
				return &p, nodes, nil
			}
		}
		lastErr = fmt.Errorf("node %d: %w", id, err)
	}
	return nil, nil, lastErr
}

func (d *clusterDescription) print(w io.Writer, now time.Time) {
	fmt.Fprintf(w, "cluster id: %s\n", d.clusterID)
	if d.controller >= 0 {
		fmt.Fprintf(w, "controller: %d\n", d.controller)
	} else {
		fmt.Fprintln(w, "controller: none (the metadata quorum has no leader the answering broker knows of)")
	}

	voters := map[int32]kmsg.DescribeQuorumResponseTopicPartitionReplicaState{}
	// observers follow the metadata log without voting (broker-only nodes).
	observers := map[int32]kmsg.DescribeQuorumResponseTopicPartitionReplicaState{}
	var leaderEnd int64 = -1
	if q := d.quorum; q != nil {
		for _, v := range q.CurrentVoters {
			voters[v.ReplicaID] = v
			if v.ReplicaID == q.LeaderID {
				leaderEnd = v.LogEndOffset
			}
		}
		for _, o := range q.Observers {
			observers[o.ReplicaID] = o
		}
	}
	ids := make([]int32, 0, len(d.brokers)+len(voters))
	addrs := map[int32]string{}
	isBroker := map[int32]bool{}
	for _, b := range d.brokers {
		ids = append(ids, b.NodeID)
		addrs[b.NodeID] = fmt.Sprintf("%s:%d", b.Host, b.Port)
		isBroker[b.NodeID] = true
	}
	for id := range voters {
		if !isBroker[id] {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tADDRESS\tCONTROLLER-ADDRESS\tROLES\tQUORUM\tMETADATA-OFFSET\tLAG\tLAST-FETCH\tLAST-CAUGHT-UP")
	for _, id := range ids {
		var roles []string
		if isBroker[id] {
			roles = append(roles, "broker")
		}
		status, offset, lag, fetch, caughtUp := "-", "-", "-", "-", "-"
		v, voter := voters[id]
		o, observer := observers[id]
		if voter || observer {
			if voter {
				roles = append(roles, "controller")
				status = "follower"
				if id == d.quorum.LeaderID {
					status = "leader"
				}
			} else {
				v, status = o, "observer"
			}
			if v.LogEndOffset >= 0 {
				offset = strconv.FormatInt(v.LogEndOffset, 10)
				if leaderEnd >= 0 {
					lag = strconv.FormatInt(max(leaderEnd-v.LogEndOffset, 0), 10)
				}
			}
			fetch, caughtUp = ago(now, v.LastFetchTimestamp), ago(now, v.LastCaughtUpTimestamp)
		}
		addr := addrs[id]
		if addr == "" {
			addr = "-"
		}
		ctrlAddr := d.quorumNodes[id]
		if ctrlAddr == "" {
			ctrlAddr = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", id, addr, ctrlAddr, strings.Join(roles, ","), status, offset, lag, fetch, caughtUp)
	}
	tw.Flush()

	if q := d.quorum; q != nil {
		fmt.Fprintf(w, "metadata quorum: leader %d, epoch %d, high watermark %d, %d voters\n", q.LeaderID, q.LeaderEpoch, q.HighWatermark, len(q.CurrentVoters))
	} else {
		fmt.Fprintf(w, "metadata quorum: not described: %v\n", d.quorumErr)
	}

	if d.fencedKnown {
		var fenced []string
		for _, b := range d.brokers {
			if b.IsFenced {
				fenced = append(fenced, strconv.Itoa(int(b.NodeID)))
			}
		}
		fmt.Fprintf(w, "fenced brokers: %d", len(fenced))
		if len(fenced) > 0 {
			fmt.Fprintf(w, " (%s)", strings.Join(fenced, ", "))
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintln(w, "fenced brokers: unknown (DescribeCluster before v2 does not report fencing)")
	}

	d.printUncleanElections(w)

	if d.metadataErr != nil {
		fmt.Fprintf(w, "partitions without a leader: unknown: %v\n", d.metadataErr)
		return
	}
	fmt.Fprintf(w, "partitions without a leader: %d\n", len(d.leaderless))
	for _, p := range d.leaderless {
		fmt.Fprintf(w, "  %s\n", p)
	}
	fmt.Fprintf(w, "under-replicated partitions: %d\n", d.underReplicated)
	if d.minISRErr != nil {
		fmt.Fprintf(w, "under-min-ISR partitions: at least %d (%v)\n", d.underMinISR, d.minISRErr)
	} else {
		fmt.Fprintf(w, "under-min-ISR partitions: %d\n", d.underMinISR)
	}
}

// printUncleanElections prints the count of unclean leader elections.
func (d *clusterDescription) printUncleanElections(w io.Writer) {
	if d.uncleanElections == nil {
		fmt.Fprintln(w, "unclean leader elections: unknown (the cluster does not report them)")
		return
	}
	fmt.Fprintf(w, "unclean leader elections: %d\n", *d.uncleanElections)
}

// ago prints a Unix-millisecond timestamp relative to now; -1 is unknown.
func ago(now time.Time, ms int64) string {
	if ms < 0 {
		return "-"
	}
	d := max(now.Sub(time.UnixMilli(ms)), 0)
	return d.Round(time.Millisecond).String() + " ago"
}
