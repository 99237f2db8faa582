package controller

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/metadata"
)

// LogDirName is the local metadata log's directory inside the data
// directory of a node that runs alone.
const LogDirName = "__cluster_metadata-0"

// localLog is the metadata log of a single node: a partition log whose
// record values are metadata records, fsynced before they are applied.
type localLog struct {
	c   *Controller
	log *wlog.Log
}

func openLocal(c *Controller, dataDir string) (*localLog, error) {
	if _, err := os.Stat(filepath.Join(dataDir, QuorumDirName)); err == nil {
		return nil, fmt.Errorf("%s holds the metadata of a cluster node (%s): start it with its --node-id, --controller-listen and --voters", dataDir, QuorumDirName)
	}
	lc := wlog.DefaultConfig()
	lc.RetentionMs = -1
	l, err := wlog.Open(filepath.Join(dataDir, LogDirName), lc)
	if err != nil {
		return nil, fmt.Errorf("open metadata log: %w", err)
	}
	s := &localLog{c: c, log: l}
	if err := s.replay(); err != nil {
		l.Close()
		return nil, err
	}
	return s, nil
}

func (s *localLog) replay() error {
	im := s.c.image
	for off := s.log.StartOffset(); off < s.log.EndOffset(); {
		data, err := s.log.Read(off, s.log.EndOffset(), 1<<20)
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
					err = im.Apply(mr)
				}
				if err != nil {
					return fmt.Errorf("metadata record at %d: %w", h.BaseOffset+int64(i), err)
				}
			}
			im.Offset = h.LastOffset()
			off = h.NextOffset()
			data = data[h.Size():]
		}
	}
	return nil
}

// commit appends recs as one batch, fsyncs it and applies it. The caller
// holds the controller's writeMu, not its image lock: readers of the image
// do not wait for the disk.
func (s *localLog) commit(recs []metadata.Record) error {
	brecs := make([]batch.Record, len(recs))
	for i, r := range recs {
		brecs[i] = batch.Record{Value: r.Encode()}
	}
	b := batch.Build(batch.Spec{Timestamp: time.Now().UnixMilli(), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, brecs)
	base, err := s.log.Append(b)
	if err != nil {
		return fail(kerr.KafkaStorageError, "append metadata: %v", err)
	}
	if _, err := s.log.Sync(); err != nil {
		return fail(kerr.KafkaStorageError, "sync metadata: %v", err)
	}
	return s.c.apply(recs, base+int64(len(recs))-1, false)
}

func (s *localLog) start()              {}
func (s *localLog) controllerID() int32 { return s.c.nodeID }

func (s *localLog) close() error {
	s.c.writeMu.Lock()
	defer s.c.writeMu.Unlock()
	return s.log.Close()
}
