package broker

// The log cleaner: every log.cleaner.backoff.ms it compacts the partitions
// of topics whose cleanup.policy includes compact (__consumer_offsets
// among them), one partition at a time, each with its topic's
// delete.retention.ms.

import (
	"errors"
	"strconv"
	"strings"
	"time"

	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/partition"
)

func (b *Broker) cleanerLoop() {
	defer b.wg.Done()
	if !b.settings.Bool("log.cleaner.enable") {
		return
	}
	t := time.NewTicker(time.Duration(b.settings.Int("log.cleaner.backoff.ms")) * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		for _, c := range b.compactedPartitions() {
			select {
			case <-b.stop:
				return
			default:
			}
			stats, err := c.part.Compact(time.Now(), c.deleteRetentionMs)
			switch {
			case errors.Is(err, wlog.ErrClosed):
				// The topic was deleted meanwhile.
			case err != nil:
				b.logger.Error("log cleaner", "topic", c.part.Topic, "partition", c.part.Index, "err", err)
			case stats.Segments > 0:
				b.logger.Info("log cleaner compacted", "topic", c.part.Topic, "partition", c.part.Index,
					"segments", stats.Segments, "bytes_before", stats.BytesBefore, "bytes_after", stats.BytesAfter,
					"records_removed", stats.RecordsRemoved, "tombstones_removed", stats.TombstonesRemoved)
			}
		}
	}
}

type compactTarget struct {
	part              *partition.Partition
	deleteRetentionMs int64
}

// compactedPartitions lists the partitions of compacted topics.
func (b *Broker) compactedPartitions() []compactTarget {
	b.pmu.RLock()
	names := make([]string, 0, len(b.topics))
	for name := range b.topics {
		names = append(names, name)
	}
	b.pmu.RUnlock()
	var out []compactTarget
	for _, name := range names {
		tc := b.topicConfig(name)
		if !strings.Contains(tc["cleanup.policy"], "compact") {
			continue
		}
		ms, _ := strconv.ParseInt(tc["delete.retention.ms"], 10, 64)
		b.pmu.RLock()
		if ts := b.topics[name]; ts != nil {
			for _, p := range ts.parts {
				if p != nil {
					out = append(out, compactTarget{part: p, deleteRetentionMs: ms})
				}
			}
		}
		b.pmu.RUnlock()
	}
	return out
}
