// Package controller owns the cluster metadata: it validates changes,
// commits them as records to the metadata log (durable before they take
// effect) and applies them to the image. On one node the metadata log is a
// local partition log (local.go); in a cluster the same records are
// replicated by a Raft quorum of the voters (quorum.go), and only the
// quorum's leader, the active controller, writes.
package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"regexp"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/internal/config"
	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/security"
)

// maxPartitions bounds the partitions of one topic.
const maxPartitions = 10000

// Error is a failure with the Kafka error code a client should see.
type Error struct {
	Code *kerr.Error
	Msg  string
}

func (e *Error) Error() string { return e.Code.Message + ": " + e.Msg }

// Unwrap lets errors.Is match the kerr error.
func (e *Error) Unwrap() error { return e.Code }

func fail(code *kerr.Error, format string, args ...any) error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Listener is told of every applied record batch, in order, while the
// controller's image lock is held (so View waits for it); it must not call
// back into the controller. The lock is one only metadata readers take:
// produce and fetch never wait for it.
type Listener func(im *metadata.Image, recs []metadata.Record)

// Controller applies metadata changes.
//
// Lock order: writeMu, then mu, then live.liveMu. writeMu serialises changes from their
// validation to their commit, and may be held across an fsync or a wait
// for the quorum; mu guards the image and is held only while records are
// applied in memory and the listener runs. Readers use View.
type Controller struct {
	writeMu  sync.Mutex
	mu       sync.RWMutex
	image    *metadata.Image
	listener Listener
	nodeID   int32
	cfg      *config.Broker
	logger   *slog.Logger
	store    store
	// placeNext is where the next partition placement starts among the
	// unfenced brokers; guarded by writeMu.
	placeNext int
	// live is the active controller's liveness table (heartbeats.go).
	live livenessState
	// transportTLS secures the quorum's listener when it is SSL;
	// stopTLSWatch stops reloading its files. Both nil otherwise.
	transportTLS *TransportTLS
	stopTLSWatch context.CancelFunc
}

// store is where committed records come from: the local metadata log of
// a single node, or the Raft quorum of a cluster.
type store interface {
	// commit makes recs durable (for a quorum: committed by a majority)
	// and applied to the image before it returns, or fails.
	commit(recs []metadata.Record) error
	// start begins applying records committed after Open.
	start()
	// controllerID is the active controller as this node knows it, or -1.
	controllerID() int32
	close() error
}

// Open opens the metadata under dataDir and returns a controller holding
// the image it describes. With no quorum configured
// (controller.quorum.voters empty) the metadata log is the local log
// LogDirName; otherwise the node joins the Raft quorum (quorum.go) and
// replays its own durable part of the replicated log before it returns.
func Open(dataDir string, nodeID int32, cfg *config.Broker, logger *slog.Logger) (*Controller, error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	q, err := cfg.Quorum()
	if err != nil {
		return nil, err
	}
	c := &Controller{image: metadata.NewImage(), nodeID: nodeID, cfg: cfg, logger: logger}
	if q.Enabled() && q.Protocol == config.SSL {
		if err := c.secureTransport(); err != nil {
			return nil, err
		}
	}
	if q.Enabled() {
		c.store, err = openQuorum(c, dataDir, q)
	} else {
		c.store, err = openLocal(c, dataDir)
	}
	if err != nil {
		if c.stopTLSWatch != nil {
			c.stopTLSWatch()
		}
		return nil, err
	}
	return c, nil
}

// SetListener installs the listener for records applied from now on. In a
// quorum it also starts applying what the quorum commits after Open, so a
// caller reads the image Open left (with View) before it calls this.
func (c *Controller) SetListener(l Listener) {
	c.mu.Lock()
	c.listener = l
	c.mu.Unlock()
	c.store.start()
}

// View runs fn with the current image under a read lock. fn must not keep
// references into the image.
func (c *Controller) View(fn func(im *metadata.Image)) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	fn(c.image)
}

// ControllerID is the node id of the active controller as this node knows
// it: this node when it runs alone, the quorum's leader in a cluster, and
// -1 when the quorum has no leader this node knows of.
func (c *Controller) ControllerID() int32 { return c.store.controllerID() }

// Close stops the controller and closes its storage.
func (c *Controller) Close() error {
	if c.stopTLSWatch != nil {
		c.stopTLSWatch()
	}
	return c.store.close()
}

// errConflict marks a batch that did not fit the image when its turn to
// be applied came: another change got in first (possible only in a quorum,
// after a change of leader). The change is planned again.
type errConflict struct{ err error }

func (e *errConflict) Error() string {
	return "metadata change conflicts with an earlier one: " + e.err.Error()
}

// change plans records against the current image and commits them. plan
// returns no records when there is nothing to write. A change that lost a
// race with one committed before it is planned again, against the image
// that now includes the winner, so its answer (TOPIC_ALREADY_EXISTS, …) is
// the one a client expects.
func (c *Controller) change(plan func(im *metadata.Image) ([]metadata.Record, error)) error {
	return c.changeVia(plan, c.store.commit)
}

// changeVia is change with the records committed by commit.
func (c *Controller) changeVia(plan func(im *metadata.Image) ([]metadata.Record, error), commit func([]metadata.Record) error) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	for attempt := 1; ; attempt++ {
		c.mu.RLock()
		recs, err := plan(c.image)
		c.mu.RUnlock()
		if err != nil || len(recs) == 0 {
			return err
		}
		err = commit(recs)
		var conflict *errConflict
		if errors.As(err, &conflict) {
			if attempt < 3 {
				continue
			}
			return fail(kerr.RequestTimedOut, "%v", err)
		}
		return err
	}
}

// apply applies one committed batch at offset and tells the listener.
// With atomic, a batch that does not fit is skipped whole and reported as
// a conflict (every node of a quorum skips it alike); without, it cannot
// fail, because the single writer validated it against this very image.
func (c *Controller) apply(recs []metadata.Record, offset int64, atomic bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if atomic {
		if err := c.image.ApplyBatchAt(recs, offset); err != nil {
			c.image.Offset = offset
			return &errConflict{err}
		}
	} else {
		for _, r := range recs {
			if err := c.image.Apply(r); err != nil {
				// The record is durable but does not apply: the image and
				// the log disagree, which only a bug can cause.
				panic(fmt.Sprintf("metadata record does not apply after validation: %v", err))
			}
		}
	}
	c.image.Offset = offset
	if c.listener != nil && len(recs) > 0 {
		c.listener(c.image, recs)
	}
	return nil
}

// replace installs an image restored from a snapshot and tells the
// listener what changed, as records.
func (c *Controller) replace(im *metadata.Image) {
	c.mu.Lock()
	defer c.mu.Unlock()
	recs := metadata.Diff(c.image, im)
	c.image = im
	if c.listener != nil && len(recs) > 0 {
		c.listener(c.image, recs)
	}
}

// setOffset records that the entry at offset, which carries no records,
// is applied.
func (c *Controller) setOffset(offset int64) {
	c.mu.Lock()
	c.image.Offset = offset
	c.mu.Unlock()
}

// addLearner records, at offset, that node id is a learner of the
// metadata quorum reachable at addr.
func (c *Controller) addLearner(id int32, addr string, offset int64) {
	c.mu.Lock()
	c.image.Learners[id] = addr
	c.image.Offset = offset
	c.mu.Unlock()
}

// reservedTopics are the internal topics the coordinators keep their state
// in (Kafka's names); only the coordinators create them.
var reservedTopics = map[string]bool{"__consumer_offsets": true, "__transaction_state": true}

var legalTopicName = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// ValidTopicName reports why name cannot be a topic, as Kafka checks it.
func ValidTopicName(name string) error {
	switch {
	case name == "":
		return fail(kerr.InvalidTopicException, "topic name is empty")
	case name == "." || name == "..":
		return fail(kerr.InvalidTopicException, "topic name cannot be %q", name)
	case len(name) > 249:
		return fail(kerr.InvalidTopicException, "topic name is longer than 249 characters")
	case !legalTopicName.MatchString(name):
		return fail(kerr.InvalidTopicException, "topic name %q has characters other than ASCII alphanumerics, '.', '_' and '-'", name)
	}
	return nil
}

// CreateTopic describes a topic to create. Partitions or ReplicationFactor
// of -1 take the broker defaults. Assignment, when given, lists each
// partition's replicas by partition index; Partitions and
// ReplicationFactor must then be -1, as Kafka requires.
type CreateTopic struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	Assignment        [][]int32
	Configs           map[string]string
	Internal          bool
	ValidateOnly      bool
	// AnyNode lets a node that is not the controller propose the topic,
	// as auto-creation by a Metadata request to any broker needs (Kafka
	// forwards it to the controller); internal topics always may.
	AnyNode bool
}

// CreateTopic creates a topic with its partitions, placed as its
// Assignment says or else by partitionRecords.
func (c *Controller) CreateTopic(req CreateTopic) (metadata.TopicID, int32, error) {
	if err := ValidTopicName(req.Name); err != nil {
		return metadata.TopicID{}, 0, err
	}
	if reservedTopics[req.Name] && !req.Internal {
		return metadata.TopicID{}, 0, fail(kerr.InvalidRequest, "topic %q is reserved for the broker's coordinators", req.Name)
	}
	assigned := len(req.Assignment) > 0
	if assigned && (req.Partitions != -1 || req.ReplicationFactor != -1) {
		return metadata.TopicID{}, 0, fail(kerr.InvalidRequest, "a replica assignment was given, so the partition count and replication factor must be -1, not %d and %d", req.Partitions, req.ReplicationFactor)
	}
	parts := req.Partitions
	if assigned {
		parts = int32(len(req.Assignment))
	}
	if parts == -1 {
		parts = int32(c.cfg.Int("num.partitions"))
	}
	if parts <= 0 || parts > maxPartitions {
		return metadata.TopicID{}, 0, fail(kerr.InvalidPartitions, "partition count %d must be between 1 and %d", parts, maxPartitions)
	}
	rf := req.ReplicationFactor
	if assigned {
		rf = int16(min(len(req.Assignment[0]), 1<<15-1)) // checkAssignment holds every list to it
	}
	if rf == -1 {
		rf = int16(c.cfg.Int("default.replication.factor"))
	}
	if req.Internal && !c.Clustered() {
		rf = 1 // the coordinators' topics follow the brokers there are
	}
	if !c.Clustered() && rf != 1 && !assigned {
		return metadata.TopicID{}, 0, fail(kerr.InvalidReplicationFactor, "replication factor %d is larger than the 1 available broker", rf)
	}
	for k, v := range req.Configs {
		if err := config.CheckTopic(k, v); err != nil {
			return metadata.TopicID{}, 0, fail(kerr.InvalidConfig, "%v", err)
		}
	}
	// A coordinator creates its internal topic, and a Metadata request its
	// topic, from whichever node a client asked: in a quorum that node proposes the topic itself (the
	// Raft library forwards a follower's proposal to the leader), and a
	// topic another node created first makes the batch not apply, so the
	// change is planned again and finds it (TOPIC_ALREADY_EXISTS).
	commit := c.store.commit
	if q, ok := c.store.(*quorum); ok && (req.Internal || req.AnyNode) {
		commit = func(recs []metadata.Record) error { return q.propose(recs, true, nil) }
	}
	var id metadata.TopicID
	err := c.changeVia(func(im *metadata.Image) ([]metadata.Record, error) {
		if _, ok := im.Topics[req.Name]; ok {
			return nil, fail(kerr.TopicAlreadyExists, "topic %q already exists", req.Name)
		}
		switch {
		case assigned:
			if err := c.checkAssignment(im, req.Assignment, 0, 0); err != nil {
				return nil, err
			}
		case c.Clustered():
			if n := int16(len(im.UnfencedBrokerIDs())); req.Internal && rf > n && n > 0 {
				rf = n
			}
			if err := c.checkReplicationFactor(im, rf); err != nil {
				return nil, err
			}
		}
		if req.ValidateOnly {
			return nil, nil
		}
		configs := req.Configs
		if req.Internal {
			configs = clampMinISR(configs, rf)
		}
		id = metadata.NewTopicID()
		recs := []metadata.Record{{Topic: &metadata.TopicRecord{Name: req.Name, ID: id, Configs: configs, Internal: req.Internal}}}
		if assigned {
			return append(recs, c.assignedRecords(im, id, 0, req.Assignment)...), nil
		}
		return append(recs, c.partitionRecords(im, id, rf, 0, parts)...), nil
	}, commit)
	if err != nil {
		return metadata.TopicID{}, 0, err
	}
	return id, parts, nil
}

// clampMinISR lowers an internal topic's min.insync.replicas to its
// replication factor, which may itself have been lowered to the brokers
// there are: a coordinator whose topic could never take a write would
// serve nothing, where Kafka refuses to create the topic at all.
func clampMinISR(configs map[string]string, rf int16) map[string]string {
	v, ok := configs["min.insync.replicas"]
	if n, err := strconv.Atoi(v); !ok || err != nil || n <= int(rf) {
		return configs
	}
	out := maps.Clone(configs)
	out["min.insync.replicas"] = strconv.Itoa(int(rf))
	return out
}

// DeleteTopic removes a topic by name.
func (c *Controller) DeleteTopic(name string) (metadata.TopicID, error) {
	var id metadata.TopicID
	err := c.change(func(im *metadata.Image) ([]metadata.Record, error) {
		t, ok := im.Topics[name]
		if !ok {
			return nil, fail(kerr.UnknownTopicOrPartition, "topic %q does not exist", name)
		}
		id = t.ID
		return c.deleteRecords(t)
	})
	return id, err
}

// DeleteTopicByID removes a topic by id.
func (c *Controller) DeleteTopicByID(id metadata.TopicID) (string, error) {
	var name string
	err := c.change(func(im *metadata.Image) ([]metadata.Record, error) {
		t, ok := im.TopicByID(id)
		if !ok {
			return nil, fail(kerr.UnknownTopicID, "topic id %s does not exist", id)
		}
		name = t.Name
		return c.deleteRecords(t)
	})
	return name, err
}

func (c *Controller) deleteRecords(t *metadata.Topic) ([]metadata.Record, error) {
	if !c.cfg.Bool("delete.topic.enable") {
		return nil, fail(kerr.TopicDeletionDisabled, "delete.topic.enable is false")
	}
	if t.Internal {
		return nil, fail(kerr.InvalidTopicException, "internal topic %q cannot be deleted", t.Name)
	}
	return []metadata.Record{{RemoveTopic: &metadata.RemoveTopicRecord{TopicID: t.ID}}}, nil
}

// CreatePartitions grows a topic to count partitions. assignment, when
// given, lists the replicas of each new partition in order; it must name
// exactly the partitions added, each with the topic's replication factor.
func (c *Controller) CreatePartitions(name string, count int32, assignment [][]int32, validateOnly bool) error {
	return c.change(func(im *metadata.Image) ([]metadata.Record, error) {
		t, ok := im.Topics[name]
		if !ok {
			return nil, fail(kerr.UnknownTopicOrPartition, "topic %q does not exist", name)
		}
		if t.Internal {
			// Group and transaction state is placed by hashing over the
			// partition count: growing it would strand that state.
			return nil, fail(kerr.InvalidPartitions, "internal topic %q cannot be given more partitions", name)
		}
		have := int32(len(t.Partitions))
		if count <= have {
			return nil, fail(kerr.InvalidPartitions, "topic %q has %d partitions; the new count %d must be larger", name, have, count)
		}
		if count > maxPartitions {
			return nil, fail(kerr.InvalidPartitions, "partition count %d is above %d", count, maxPartitions)
		}
		// The replication factor is the target's while partition 0 is
		// being moved (KIP-455), not that of the grown assignment.
		rf := int16(len(t.Partitions[0].Replicas) - len(t.Partitions[0].RemovingReplicas))
		switch {
		case len(assignment) > 0:
			if added := count - have; int32(len(assignment)) != added {
				return nil, fail(kerr.InvalidReplicaAssignment, "%d partitions are added to topic %q, but %d are assigned", added, name, len(assignment))
			}
			if err := c.checkAssignment(im, assignment, have, int(rf)); err != nil {
				return nil, err
			}
		case c.Clustered():
			if err := c.checkReplicationFactor(im, rf); err != nil {
				return nil, err
			}
		}
		if validateOnly {
			return nil, nil
		}
		if len(assignment) > 0 {
			return c.assignedRecords(im, t.ID, have, assignment), nil
		}
		return c.partitionRecords(im, t.ID, rf, have, count), nil
	})
}

// ConfigChange sets (Value non-nil) or removes one topic config override.
type ConfigChange struct {
	Name  string
	Value *string
}

// AlterTopicConfigs applies changes to a topic's overrides. With replace,
// every override not named in changes is removed (the legacy AlterConfigs).
func (c *Controller) AlterTopicConfigs(name string, changes []ConfigChange, replace, validateOnly bool) error {
	for _, ch := range changes {
		if ch.Value == nil {
			if _, ok := config.LookupTopic(ch.Name); !ok {
				return fail(kerr.InvalidConfig, "unknown topic config %q", ch.Name)
			}
			continue
		}
		if err := config.CheckTopic(ch.Name, *ch.Value); err != nil {
			return fail(kerr.InvalidConfig, "%v", err)
		}
	}
	return c.change(func(im *metadata.Image) ([]metadata.Record, error) {
		t, ok := im.Topics[name]
		if !ok {
			return nil, fail(kerr.UnknownTopicOrPartition, "topic %q does not exist", name)
		}
		var recs []metadata.Record
		named := make(map[string]bool)
		for _, ch := range changes {
			named[ch.Name] = true
			recs = append(recs, metadata.Record{Config: &metadata.ConfigRecord{TopicID: t.ID, Name: ch.Name, Value: ch.Value}})
		}
		if replace {
			for k := range t.Configs {
				if !named[k] {
					recs = append(recs, metadata.Record{Config: &metadata.ConfigRecord{TopicID: t.ID, Name: k}})
				}
			}
		}
		if t.Internal {
			// The coordinators' state lives in these topics: retention or
			// a delete policy would remove records they replay.
			policy := t.Configs["cleanup.policy"]
			if replace {
				policy = ""
			}
			for _, ch := range changes {
				if ch.Name == "cleanup.policy" {
					policy = ""
					if ch.Value != nil {
						policy = *ch.Value
					}
				}
			}
			if policy != "compact" {
				return nil, fail(kerr.InvalidConfig, "internal topic %q must keep cleanup.policy=compact: the coordinators replay their state from it", name)
			}
		}
		if validateOnly {
			return nil, nil
		}
		return recs, nil
	})
}

// AllocateProducerIDs durably reserves a block of size producer ids and
// returns its first id. In a cluster any node may ask: a follower's
// proposal is forwarded to the leader, and one planned on an image that
// missed another block does not apply and is planned again.
func (c *Controller) AllocateProducerIDs(size int64) (int64, error) {
	var start int64
	commit := c.store.commit
	if q, ok := c.store.(*quorum); ok {
		commit = func(recs []metadata.Record) error { return q.propose(recs, true, nil) }
	}
	err := c.changeVia(func(im *metadata.Image) ([]metadata.Record, error) {
		start = im.NextProducerID
		return []metadata.Record{{ProducerIDs: &metadata.ProducerIDsRecord{Start: start, Size: size}}}, nil
	}, commit)
	if err != nil {
		return 0, err
	}
	return start, nil
}

// IsCode reports whether err carries the Kafka error code.
func IsCode(err error, code *kerr.Error) bool { return errors.Is(err, code) }

// secureTransport makes the quorum's listener and its connections to the
// peers mutual TLS, from the node's ssl.* files, reloaded when they
// change.
func (c *Controller) secureTransport() error {
	t, err := security.NewTLS(c.cfg, c.logger)
	if err != nil {
		return fmt.Errorf("controller listener: %w", err)
	}
	server, err := t.MutualServer()
	if err != nil {
		return fmt.Errorf("controller listener: %w", err)
	}
	c.transportTLS = &TransportTLS{Server: server, Dial: t.Dialer(c.cfg.Get("ssl.endpoint.identification.algorithm") == "https")}
	ctx, stop := context.WithCancel(context.Background())
	c.stopTLSWatch = stop
	go t.Watch(ctx)
	return nil
}
