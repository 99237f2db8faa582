package broker

// The broker's metrics, read when Prometheus scrapes (internal/metrics):
// partition health as Kafka's ReplicaManager and controller report it,
// each led partition's offsets, and the open transactions that hold a
// read_committed consumer back. Nothing here runs on a request's path.

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/group"
	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/metrics"
	"github.com/weir-broker/weir/internal/partition"
	"github.com/weir-broker/weir/internal/txn"
)

// metricNames are the names of the collector's metrics, for the checks
// of dashboards against them.
var metricNames []string

func desc(name, help string, labels ...string) *prometheus.Desc {
	fq := prometheus.BuildFQName(metrics.Namespace, "", name)
	metricNames = append(metricNames, fq)
	return prometheus.NewDesc(fq, help, labels, nil)
}

var (
	descActiveController = desc("active_controller", "1 on the node that is the metadata quorum's leader (Kafka's ActiveControllerCount); a single node is its own.")
	descUnderReplicated  = desc("under_replicated_partitions", "Partitions this node leads whose ISR is smaller than their replicas (Kafka's UnderReplicatedPartitions).")
	descUnderMinISR      = desc("under_min_isr_partitions", "Partitions this node leads whose ISR is below min.insync.replicas: acks=all writes to them fail (UnderMinIsrPartitionCount).")
	descAtMinISR         = desc("at_min_isr_partitions", "Partitions this node leads whose ISR is exactly min.insync.replicas: one more lost replica stops acks=all writes (AtMinIsrPartitionCount).")
	descOffline          = desc("offline_partitions", "Partitions without a leader, reported by the active controller only (OfflinePartitionsCount).")
	descUnclean          = desc("unclean_leader_elections", "Unclean leader elections the cluster has committed, counted from the metadata log (UncleanLeaderElectionsPerSec as a total).")
	descElections        = desc("leader_elections", "Leader changes the cluster has committed, unclean ones included, counted from the metadata log (LeaderElectionRateAndTimeMs's count).")
	descISRShrinks       = desc("isr_shrinks", "ISR changes the cluster has committed that took replicas out, counted from the metadata log (IsrShrinksPerSec as a total).")
	descISRExpands       = desc("isr_expands", "ISR changes the cluster has committed that put replicas in, counted from the metadata log (IsrExpandsPerSec as a total).")
	descLeaderPartitions = desc("leader_partitions", "Partitions this node leads (LeaderCount).")
	descLogStart         = desc("partition_log_start_offset", "A led partition's log start offset.", "topic", "partition")
	descLogEnd           = desc("partition_log_end_offset", "A led partition's log end offset.", "topic", "partition")
	descHW               = desc("partition_high_watermark", "A led partition's high watermark: what read_uncommitted consumers may read.", "topic", "partition")
	descLSO              = desc("partition_last_stable_offset", "A led partition's last stable offset: what read_committed consumers may read.", "topic", "partition")
	descLSOLag           = desc("partition_lso_lag", "High watermark minus last stable offset: records an open transaction holds back from read_committed consumers.", "topic", "partition")
	descProducers        = desc("partition_producers", "Producer ids whose state a led partition keeps.", "topic", "partition")
	descOpenTxns         = desc("open_transactions", "Ongoing transactions this node coordinates.")
	descOldestTxn        = desc("oldest_open_transaction_age_seconds", "Age of the oldest ongoing transaction this node coordinates: a hanging one holds read_committed consumers back.")
)

// collector reads the broker's state at scrape time.
type collector struct {
	b            *Broker
	perPartition bool
}

// Collector is the broker's Prometheus collector; perPartition adds the
// per-partition series (off for clusters with many partitions).
func (b *Broker) Collector(perPartition bool) prometheus.Collector {
	return &collector{b: b, perPartition: perPartition}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descActiveController, descUnderReplicated, descUnderMinISR, descAtMinISR, descOffline,
		descUnclean, descElections, descISRShrinks, descISRExpands, descLeaderPartitions, descOpenTxns, descOldestTxn} {
		ch <- d
	}
	if c.perPartition {
		for _, d := range []*prometheus.Desc{descLogStart, descLogEnd, descHW, descLSO, descLSOLag, descProducers, descGroupCommitted, descGroupLag} {
			ch <- d
		}
	}
}

type ledPartition struct {
	topic    string
	p        *partition.Partition
	replicas int
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	b := c.b
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	active := b.ctrl.ControllerID() == b.cfg.NodeID
	gauge(descActiveController, boolFloat(active))

	// The image gives replicas and settings; the partitions give ISR and
	// offsets. Neither lock is held while the other is taken.
	replicas := map[partitionKey]int{}
	configs := map[string]map[string]string{}
	offline := 0
	var unclean, elections, shrinks, expands int64
	b.ctrl.View(func(im *metadata.Image) {
		unclean, elections, shrinks, expands = im.UncleanElections, im.LeaderElections, im.ISRShrinks, im.ISRExpands
		for name, t := range im.Topics {
			configs[name] = t.Configs
			for i, p := range t.Partitions {
				replicas[partitionKey{name, int32(i)}] = len(p.Replicas)
				if p.Leader < 0 {
					offline++
				}
			}
		}
	})
	if active {
		gauge(descOffline, float64(offline))
	}
	for d, v := range map[*prometheus.Desc]int64{descUnclean: unclean, descElections: elections, descISRShrinks: shrinks, descISRExpands: expands} {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}

	var led []ledPartition
	b.pmu.RLock()
	for name, ts := range b.topics {
		for i, p := range ts.parts {
			if p != nil && p.IsLeader() {
				led = append(led, ledPartition{topic: name, p: p, replicas: replicas[partitionKey{name, int32(i)}]})
			}
		}
	}
	b.pmu.RUnlock()
	under, underMin, atMin := 0, 0, 0
	hws := make(map[partitionKey]int64, len(led))
	for _, lp := range led {
		hws[partitionKey{lp.topic, lp.p.Index}] = lp.p.HighWatermark()
		isr := len(lp.p.ISR())
		minISR := b.minISR(configs[lp.topic])
		if lp.replicas > 0 && isr < lp.replicas {
			under++
		}
		switch {
		case isr < minISR:
			underMin++
		case isr == minISR:
			atMin++
		}
		if !c.perPartition {
			continue
		}
		labels := []string{lp.topic, strconv.Itoa(int(lp.p.Index))}
		start, lso, hw := lp.p.Offsets()
		gauge(descLogStart, float64(start), labels...)
		gauge(descLogEnd, float64(lp.p.LogEndOffset()), labels...)
		gauge(descHW, float64(hw), labels...)
		gauge(descLSO, float64(lso), labels...)
		gauge(descLSOLag, float64(max(0, hw-lso)), labels...)
		gauge(descProducers, float64(len(lp.p.Producers())), labels...)
	}
	if c.perPartition {
		c.collectGroupLag(ch, hws)
	}
	gauge(descLeaderPartitions, float64(len(led)))
	gauge(descUnderReplicated, float64(under))
	gauge(descUnderMinISR, float64(underMin))
	gauge(descAtMinISR, float64(atMin))

	open, oldest := 0, int64(0)
	now := time.Now().UnixMilli()
	for _, s := range b.txns.set.loaded() {
		for _, m := range s.list() {
			if m.Status == txn.Ongoing {
				open++
				oldest = max(oldest, now-m.StartMs)
			}
		}
	}
	gauge(descOpenTxns, float64(open))
	gauge(descOldestTxn, float64(oldest)/1000)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Ready reports whether the node serves its share of the cluster: a
// single node once it has started; a node of a cluster once its
// registration is in the metadata image, unfenced (it has caught up with
// the metadata and heartbeats). why says what it waits for.
func (b *Broker) Ready() (ready bool, why string) {
	if !b.ctrl.Clustered() {
		return true, ""
	}
	var reg metadata.Broker
	var ok bool
	b.ctrl.View(func(im *metadata.Image) { reg, ok = im.Brokers[b.cfg.NodeID] })
	switch {
	case !ok || reg.Incarnation != b.incarnation:
		return false, "this node is not registered with the metadata quorum yet"
	case reg.Fenced:
		return false, "this node is fenced: it has not caught up with the metadata or its heartbeats lapsed"
	}
	return true, ""
}

var (
	descGroupCommitted = desc("consumer_group_committed_offset", "A group's committed offset of a partition this node leads.", "group", "topic", "partition")
	descGroupLag       = desc("consumer_group_lag", "A group's lag on a partition this node leads: high watermark minus committed offset, as kadm's Lag and `weir group describe` compute it (what Kafka needs Burrow for).", "group", "topic", "partition")
)

// groupLagTimeout bounds the questions a scrape asks the group
// coordinator.
const groupLagTimeout = 2 * time.Second

// collectGroupLag asks each group coordinator shard this node runs for
// its groups and their committed offsets, through the shard's state
// machine like any OffsetFetch, and reports the lag on the partitions
// this node leads (whose high watermark it knows).
func (c *collector) collectGroupLag(ch chan<- prometheus.Metric, hw map[partitionKey]int64) {
	deadline := time.After(groupLagTimeout)
	await := func(rc <-chan kmsg.Response) kmsg.Response {
		select {
		case r := <-rc:
			return r
		case <-deadline:
			return nil
		}
	}
	for _, s := range c.b.groups.set.loaded() {
		lg, ok := await(s.step(group.Input{Req: kmsg.NewPtrListGroupsRequest()})).(*kmsg.ListGroupsResponse)
		if !ok {
			return
		}
		for _, g := range lg.Groups {
			req := kmsg.NewPtrOffsetFetchRequest()
			req.Version, req.Group = 7, g.Group
			of, ok := await(s.step(group.Input{Req: req})).(*kmsg.OffsetFetchResponse)
			if !ok {
				return
			}
			for _, t := range of.Topics {
				for _, p := range t.Partitions {
					high, led := hw[partitionKey{t.Topic, p.Partition}]
					if p.ErrorCode != 0 || p.Offset < 0 || !led {
						continue
					}
					labels := []string{g.Group, t.Topic, strconv.Itoa(int(p.Partition))}
					ch <- prometheus.MustNewConstMetric(descGroupCommitted, prometheus.GaugeValue, float64(p.Offset), labels...)
					ch <- prometheus.MustNewConstMetric(descGroupLag, prometheus.GaugeValue, float64(max(0, high-p.Offset)), labels...)
				}
			}
		}
	}
}
