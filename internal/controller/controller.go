// Package controller owns the cluster metadata: it validates changes,
// appends them as records to the metadata log (fsynced before they take
// effect) and applies them to the image. On one node the metadata log is a
// local partition log; a cluster will replicate the same records.
package controller

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/internal/batch"
	"github.com/weir-broker/weir/internal/config"
	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/metadata"
)

// LogDirName is the metadata log's directory inside the data directory.
const LogDirName = "__cluster_metadata-0"

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
// controller's lock is held; it must not call back into the controller.
type Listener func(im *metadata.Image, recs []metadata.Record)

// Controller applies metadata changes. Its mutex guards the image and the
// metadata log; readers use View.
type Controller struct {
	mu       sync.RWMutex
	log      *wlog.Log
	image    *metadata.Image
	nodeID   int32
	cfg      *config.Broker
	listener Listener
}

// Open replays the metadata log under dataDir and returns a controller
// holding the image it describes.
func Open(dataDir string, nodeID int32, cfg *config.Broker) (*Controller, error) {
	lc := wlog.DefaultConfig()
	lc.RetentionMs = -1
	l, err := wlog.Open(filepath.Join(dataDir, LogDirName), lc)
	if err != nil {
		return nil, fmt.Errorf("open metadata log: %w", err)
	}
	c := &Controller{log: l, image: metadata.NewImage(), nodeID: nodeID, cfg: cfg}
	if err := c.replay(); err != nil {
		l.Close()
		return nil, err
	}
	return c, nil
}

func (c *Controller) replay() error {
	for off := c.log.StartOffset(); off < c.log.EndOffset(); {
		data, err := c.log.Read(off, c.log.EndOffset(), 1<<20)
		if err != nil {
			return fmt.Errorf("read metadata log at %d: %w", off, err)
		}
		for len(data) > 0 {
			h, err := batch.ParseHeader(data)
			if err != nil {
				return fmt.Errorf("metadata log at %d: %w", off, err)
			}
			recs, err := batch.Records(data[:h.Size()])
			if err != nil {
				return fmt.Errorf("metadata log at %d: %w", h.BaseOffset, err)
			}
			for i, r := range recs {
				mr, err := metadata.DecodeRecord(r.Value)
				if err == nil {
					err = c.image.Apply(mr)
				}
				if err != nil {
					return fmt.Errorf("metadata record at %d: %w", h.BaseOffset+int64(i), err)
				}
			}
			c.image.Offset = h.LastOffset()
			off = h.NextOffset()
			data = data[h.Size():]
		}
	}
	return nil
}

// SetListener installs the listener for records applied from now on.
func (c *Controller) SetListener(l Listener) {
	c.mu.Lock()
	c.listener = l
	c.mu.Unlock()
}

// View runs fn with the current image under a read lock. fn must not keep
// references into the image.
func (c *Controller) View(fn func(im *metadata.Image)) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	fn(c.image)
}

// Close closes the metadata log.
func (c *Controller) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.log.Close()
}

// commitLocked makes recs durable in the metadata log, then applies them.
func (c *Controller) commitLocked(recs []metadata.Record) error {
	// Check first on a throwaway copy? Records are validated by the caller
	// against the current image, so applying cannot fail here.
	brecs := make([]batch.Record, len(recs))
	for i, r := range recs {
		brecs[i] = batch.Record{Value: r.Encode()}
	}
	b := batch.Build(batch.Spec{Timestamp: time.Now().UnixMilli(), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, brecs)
	base, err := c.log.Append(b)
	if err != nil {
		return fail(kerr.KafkaStorageError, "append metadata: %v", err)
	}
	if _, err := c.log.Sync(); err != nil {
		return fail(kerr.KafkaStorageError, "sync metadata: %v", err)
	}
	for _, r := range recs {
		if err := c.image.Apply(r); err != nil {
			// The record is durable but does not apply: the image and the
			// log disagree, which only a bug can cause.
			panic(fmt.Sprintf("metadata record does not apply after validation: %v", err))
		}
	}
	c.image.Offset = base + int64(len(recs)) - 1
	if c.listener != nil {
		c.listener(c.image, recs)
	}
	return nil
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
// of -1 take the broker defaults.
type CreateTopic struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	Configs           map[string]string
	Internal          bool
	ValidateOnly      bool
}

// CreateTopic creates a topic with its partitions, all led by this node.
func (c *Controller) CreateTopic(req CreateTopic) (metadata.TopicID, int32, error) {
	if err := ValidTopicName(req.Name); err != nil {
		return metadata.TopicID{}, 0, err
	}
	if reservedTopics[req.Name] && !req.Internal {
		return metadata.TopicID{}, 0, fail(kerr.InvalidRequest, "topic %q is reserved for the broker's coordinators", req.Name)
	}
	parts := req.Partitions
	if parts == -1 {
		parts = int32(c.cfg.Int("num.partitions"))
	}
	if parts <= 0 || parts > maxPartitions {
		return metadata.TopicID{}, 0, fail(kerr.InvalidPartitions, "partition count %d must be between 1 and %d", parts, maxPartitions)
	}
	rf := req.ReplicationFactor
	if rf == -1 {
		rf = int16(c.cfg.Int("default.replication.factor"))
	}
	if rf != 1 {
		return metadata.TopicID{}, 0, fail(kerr.InvalidReplicationFactor, "replication factor %d is larger than the 1 available broker", rf)
	}
	for k, v := range req.Configs {
		if err := config.CheckTopic(k, v); err != nil {
			return metadata.TopicID{}, 0, fail(kerr.InvalidConfig, "%v", err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.image.Topics[req.Name]; ok {
		return metadata.TopicID{}, 0, fail(kerr.TopicAlreadyExists, "topic %q already exists", req.Name)
	}
	if req.ValidateOnly {
		return metadata.TopicID{}, parts, nil
	}
	id := metadata.NewTopicID()
	recs := []metadata.Record{{Topic: &metadata.TopicRecord{Name: req.Name, ID: id, Configs: req.Configs, Internal: req.Internal}}}
	recs = append(recs, c.partitionRecords(id, 0, parts)...)
	return id, parts, c.commitLocked(recs)
}

func (c *Controller) partitionRecords(id metadata.TopicID, from, to int32) []metadata.Record {
	var recs []metadata.Record
	for i := from; i < to; i++ {
		recs = append(recs, metadata.Record{Partition: &metadata.PartitionRecord{
			TopicID: id, Index: i, Leader: c.nodeID, LeaderEpoch: 0,
			Replicas: []int32{c.nodeID}, ISR: []int32{c.nodeID},
		}})
	}
	return recs
}

// DeleteTopic removes a topic by name.
func (c *Controller) DeleteTopic(name string) (metadata.TopicID, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.image.Topics[name]
	if !ok {
		return metadata.TopicID{}, fail(kerr.UnknownTopicOrPartition, "topic %q does not exist", name)
	}
	return t.ID, c.deleteLocked(t)
}

// DeleteTopicByID removes a topic by id.
func (c *Controller) DeleteTopicByID(id metadata.TopicID) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.image.TopicByID(id)
	if !ok {
		return "", fail(kerr.UnknownTopicID, "topic id %s does not exist", id)
	}
	return t.Name, c.deleteLocked(t)
}

func (c *Controller) deleteLocked(t *metadata.Topic) error {
	if !c.cfg.Bool("delete.topic.enable") {
		return fail(kerr.TopicDeletionDisabled, "delete.topic.enable is false")
	}
	if t.Internal {
		return fail(kerr.InvalidTopicException, "internal topic %q cannot be deleted", t.Name)
	}
	return c.commitLocked([]metadata.Record{{RemoveTopic: &metadata.RemoveTopicRecord{TopicID: t.ID}}})
}

// CreatePartitions grows a topic to count partitions.
func (c *Controller) CreatePartitions(name string, count int32, validateOnly bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.image.Topics[name]
	if !ok {
		return fail(kerr.UnknownTopicOrPartition, "topic %q does not exist", name)
	}
	if t.Internal {
		// Group and transaction state is placed by hashing over the
		// partition count: growing it would strand that state.
		return fail(kerr.InvalidPartitions, "internal topic %q cannot be given more partitions", name)
	}
	have := int32(len(t.Partitions))
	if count <= have {
		return fail(kerr.InvalidPartitions, "topic %q has %d partitions; the new count %d must be larger", name, have, count)
	}
	if count > maxPartitions {
		return fail(kerr.InvalidPartitions, "partition count %d is above %d", count, maxPartitions)
	}
	if validateOnly {
		return nil
	}
	return c.commitLocked(c.partitionRecords(t.ID, have, count))
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
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.image.Topics[name]
	if !ok {
		return fail(kerr.UnknownTopicOrPartition, "topic %q does not exist", name)
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
	if validateOnly || len(recs) == 0 {
		return nil
	}
	return c.commitLocked(recs)
}

// AllocateProducerIDs durably reserves a block of size producer ids and
// returns its first id.
func (c *Controller) AllocateProducerIDs(size int64) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	start := c.image.NextProducerID
	if err := c.commitLocked([]metadata.Record{{ProducerIDs: &metadata.ProducerIDsRecord{Start: start, Size: size}}}); err != nil {
		return 0, err
	}
	return start, nil
}

// IsCode reports whether err carries the Kafka error code.
func IsCode(err error, code *kerr.Error) bool { return errors.Is(err, code) }
