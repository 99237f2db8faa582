package controller

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/internal/config"
	"github.com/weir-broker/weir/internal/metadata"
)

// racingStore commits like a quorum whose previous leader got a change in
// first: before each batch it applies the batches in ahead, so the
// planned batch may no longer fit.
type racingStore struct {
	c      *Controller
	ahead  [][]metadata.Record
	offset int64
}

func (s *racingStore) commit(recs []metadata.Record) error {
	for _, a := range s.ahead {
		s.offset++
		if err := s.c.apply(a, s.offset, true); err != nil {
			return err
		}
	}
	s.ahead = nil
	s.offset++
	return s.c.apply(recs, s.offset, true)
}
func (s *racingStore) start()              {}
func (s *racingStore) controllerID() int32 { return 1 }
func (s *racingStore) close() error        { return nil }

func TestChangePlannedOnAStaleImageIsPlannedAgain(t *testing.T) {
	c := &Controller{image: metadata.NewImage(), nodeID: 1, cfg: config.NewBroker()}
	rs := &racingStore{c: c}
	c.store = rs

	// Another leader's entry creates the same topic first: the retry
	// answers as Kafka would.
	other := metadata.NewTopicID()
	rs.ahead = [][]metadata.Record{{{Topic: &metadata.TopicRecord{Name: "t", ID: other}}}}
	_, _, err := c.CreateTopic(CreateTopic{Name: "t", Partitions: 1, ReplicationFactor: 1})
	if !IsCode(err, kerr.TopicAlreadyExists) {
		t.Fatalf("create that lost the race: %v, want TOPIC_ALREADY_EXISTS", err)
	}
	if got, _ := c.image.TopicByID(other); got == nil || len(got.Partitions) != 0 {
		t.Fatalf("the winner's topic was changed by the loser's batch: %+v", got)
	}

	// A producer-id block planned before another was handed out is
	// planned again after it, never overlapping it.
	rs.ahead = [][]metadata.Record{{{ProducerIDs: &metadata.ProducerIDsRecord{Start: 0, Size: 1000}}}}
	start, err := c.AllocateProducerIDs(1000)
	if err != nil {
		t.Fatal(err)
	}
	if start != 1000 || c.image.NextProducerID != 2000 {
		t.Fatalf("block starts at %d (next %d); want 1000, after the block handed out first", start, c.image.NextProducerID)
	}
}
