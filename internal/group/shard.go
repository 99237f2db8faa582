package group

import (
	"fmt"
	"regexp"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Config holds the coordinator's settings, named after the Kafka configs
// they come from.
type Config struct {
	InitialRebalanceDelayMs int64 // group.initial.rebalance.delay.ms
	MinSessionTimeoutMs     int32 // group.min.session.timeout.ms
	MaxSessionTimeoutMs     int32 // group.max.session.timeout.ms
	MaxGroupSize            int   // group.max.size
	OffsetsRetentionMs      int64 // offsets.retention.minutes, in ms
	RetentionCheckMs        int64 // offsets.retention.check.interval.ms
	MaxMetadataBytes        int   // offset.metadata.max.bytes
	// The consumer group protocol (KIP-848).
	ConsumerSessionTimeoutMs    int64    // group.consumer.session.timeout.ms
	ConsumerHeartbeatIntervalMs int64    // group.consumer.heartbeat.interval.ms
	ConsumerAssignors           []string // group.consumer.assignors, short names; the first is the default
	// NewID returns a fresh unique suffix for a member id. The driver
	// passes random UUIDs; tests pass a counter.
	NewID func() string
}

// DefaultConfig returns Kafka's defaults with a counter for member ids.
func DefaultConfig() Config {
	n := 0
	return Config{
		InitialRebalanceDelayMs: 3000,
		MinSessionTimeoutMs:     6000,
		MaxSessionTimeoutMs:     1800000,
		MaxGroupSize:            1<<31 - 1,
		OffsetsRetentionMs:      7 * 24 * 60 * 60 * 1000,
		RetentionCheckMs:        600000,
		MaxMetadataBytes:        4096,

		ConsumerSessionTimeoutMs:    45000,
		ConsumerHeartbeatIntervalMs: 5000,
		ConsumerAssignors:           []string{AssignorUniform, AssignorRange},
		NewID:                       func() string { n++; return fmt.Sprint(n) },
	}
}

// Input is one request to the coordinator.
type Input struct {
	Token      uint64 // chosen by the driver; comes back with the response
	ClientID   string // of the connection, for new member ids and DescribeGroups
	ClientHost string
	Req        kmsg.Request
	// Topics are the cluster's topics by name, for the requests of the
	// consumer group protocol (assignments name topics by id, and
	// subscriptions are resolved against them); nil for the others.
	Topics map[string]TopicInfo
}

// Response is a response to send for the request that carried Token.
type Response struct {
	Token uint64
	Msg   kmsg.Response
}

// Record is one record to append to the shard's partition; a nil Value is
// a tombstone.
type Record struct {
	Key, Value []byte
}

// Append asks the driver to append Records, in one batch, after every
// earlier Append, and to report with AppendDone(ID) once they are durable
// or have failed.
type Append struct {
	ID      uint64
	Records []Record
	// Txn, when set, makes the batch transactional for that producer: the
	// records are a TxnOffsetCommit's, pending until the transaction's
	// marker reaches this partition.
	Txn *TxnProducer
}

// TxnProducer is the producer id and epoch of a transactional append.
type TxnProducer struct {
	ID    int64
	Epoch int16
}

// Ready is what one call produced for the driver to carry out, in order:
// appends first (so that responses waiting on them are correctly ordered),
// then responses. Deadline is when Tick must next be called (Unix ms), or
// 0 when nothing is timed.
type Ready struct {
	Appends   []Append
	Responses []Response
	Deadline  int64
}

// Shard is the coordinator of the groups whose id hashes to one
// __consumer_offsets partition. It is not safe for concurrent use: the
// driver serialises calls.
type Shard struct {
	cfg    Config
	groups map[string]*group

	nextAppend      uint64
	lastSeq         uint64            // the seq of the newest offset record written or replayed
	inflight        []*inflightAppend // in append order
	nextRetentionMs int64

	// topics are the cluster's topics as the latest consumer group
	// request brought them; regexes caches compiled subscriptions.
	topics  map[string]TopicInfo
	regexes map[string]*regexp.Regexp

	out Ready
}

type inflightAppend struct {
	id     uint64
	done   bool
	err    error
	onDone func(nowMs int64, err error)
}

// NewShard returns an empty shard; Replay loads it, Loaded starts it.
func NewShard(cfg Config) *Shard {
	if len(cfg.ConsumerAssignors) == 0 {
		cfg.ConsumerAssignors = []string{AssignorUniform, AssignorRange}
	}
	return &Shard{cfg: cfg, groups: map[string]*group{}, regexes: map[string]*regexp.Regexp{}}
}

// Step handles one request.
func (s *Shard) Step(nowMs int64, in Input) Ready {
	switch r := in.Req.(type) {
	case *kmsg.JoinGroupRequest:
		s.joinGroup(nowMs, in, r)
	case *kmsg.SyncGroupRequest:
		s.syncGroup(nowMs, in, r)
	case *kmsg.HeartbeatRequest:
		s.heartbeat(nowMs, in, r)
	case *kmsg.LeaveGroupRequest:
		s.leaveGroup(nowMs, in, r)
	case *kmsg.OffsetCommitRequest:
		s.commitOffsets(nowMs, in, r)
	case *kmsg.TxnOffsetCommitRequest:
		s.txnCommitOffsets(nowMs, in, r)
	case *kmsg.OffsetFetchRequest:
		s.fetchOffsets(in, r)
	case *kmsg.OffsetDeleteRequest:
		s.deleteOffsets(in, r)
	case *kmsg.DescribeGroupsRequest:
		s.describeGroups(in, r)
	case *kmsg.ListGroupsRequest:
		s.listGroups(in, r)
	case *kmsg.DeleteGroupsRequest:
		s.deleteGroups(in, r)
	case *kmsg.ConsumerGroupHeartbeatRequest:
		s.consumerGroupHeartbeat(nowMs, in, r)
	case *kmsg.ConsumerGroupDescribeRequest:
		s.consumerGroupDescribe(in, r)
	default:
		panic(fmt.Sprintf("group: %s is not a group request", kmsg.NameForKey(in.Req.Key())))
	}
	return s.ready()
}

// Tick runs what is due at nowMs: initial-delay and rebalance timeouts,
// session expiry, and offset expiration.
func (s *Shard) Tick(nowMs int64) Ready {
	for _, id := range s.groupIDs() {
		if g := s.groups[id]; g.cg != nil {
			s.expireConsumerMembers(nowMs, g)
		} else {
			s.expireMembers(nowMs, g)
		}
	}
	switch {
	case s.nextRetentionMs == 0: // not Loaded: start the clock now
		s.nextRetentionMs = nowMs + s.cfg.RetentionCheckMs
	case nowMs >= s.nextRetentionMs:
		s.expireOffsets(nowMs)
		s.nextRetentionMs = nowMs + s.cfg.RetentionCheckMs
	}
	return s.ready()
}

// AppendDone reports that the Append with id is durable (err nil) or will
// never be. Appends complete in order: a report that arrives early is held
// until those before it are in.
func (s *Shard) AppendDone(nowMs int64, id uint64, err error) Ready {
	for _, a := range s.inflight {
		if a.id == id {
			a.done, a.err = true, err
		}
	}
	for len(s.inflight) > 0 && s.inflight[0].done {
		a := s.inflight[0]
		s.inflight = s.inflight[1:]
		a.onDone(nowMs, a.err)
	}
	return s.ready()
}

// Loaded ends the replay: members of a stored group are back as they were,
// with fresh sessions from nowMs. A group known only by its offsets has no
// state time; its offsets expire by their commit times.
func (s *Shard) Loaded(nowMs int64) Ready {
	for _, g := range s.groups {
		if len(g.members) == 0 {
			g.state = Empty
		} else {
			g.state = Stable
		}
		g.each(func(m *member) { m.deadline = nowMs + m.sessionTimeoutMs })
		if g.cg != nil {
			for _, m := range g.cg.members {
				m.deadline = nowMs + s.cfg.ConsumerSessionTimeoutMs
				if m.state == memberUnrevokedPartitions {
					m.revokeDeadline = nowMs + m.rebalanceTimeoutMs
				}
			}
		}
	}
	s.nextRetentionMs = nowMs + s.cfg.RetentionCheckMs
	return s.ready()
}

// append queues records and calls onDone once they are durable or failed.
func (s *Shard) append(recs []Record, onDone func(nowMs int64, err error)) {
	s.appendAs(nil, recs, onDone)
}

// appendAs is append with the batch written for a transactional producer.
// nextSeq numbers the next offset record in log order.
func (s *Shard) nextSeq() uint64 {
	s.lastSeq++
	return s.lastSeq
}

func (s *Shard) appendAs(txn *TxnProducer, recs []Record, onDone func(nowMs int64, err error)) {
	s.nextAppend++
	s.out.Appends = append(s.out.Appends, Append{ID: s.nextAppend, Records: recs, Txn: txn})
	s.inflight = append(s.inflight, &inflightAppend{id: s.nextAppend, onDone: onDone})
}

func (s *Shard) respond(token uint64, msg kmsg.Response) {
	s.out.Responses = append(s.out.Responses, Response{Token: token, Msg: msg})
}

func (s *Shard) ready() Ready {
	rd := s.out
	s.out = Ready{}
	rd.Deadline = s.deadline()
	return rd
}

// deadline is the earliest time a Tick has work to do.
func (s *Shard) deadline() int64 {
	var d int64
	consider := func(t int64) {
		if t > 0 && (d == 0 || t < d) {
			d = t
		}
	}
	for _, g := range s.groups {
		switch g.state {
		case PreparingRebalance:
			consider(g.delayUntil)
			consider(g.joinDeadline)
		case CompletingRebalance:
			if !g.storing {
				consider(g.syncDeadline)
			}
		}
		g.each(func(m *member) {
			if !m.keptAlive() {
				consider(m.deadline)
			}
		})
		for _, exp := range g.pending {
			consider(exp)
		}
		if g.cg != nil {
			for _, m := range g.cg.members {
				consider(m.deadline)
				consider(m.revokeDeadline)
			}
		}
	}
	if len(s.groups) > 0 {
		consider(s.nextRetentionMs)
	}
	return d
}

// groupIDs lists the groups in order, for deterministic iteration.
func (s *Shard) groupIDs() []string {
	ids := make([]string, 0, len(s.groups))
	for id := range s.groups {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
