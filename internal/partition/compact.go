package partition

import (
	"time"

	wlog "github.com/weir-broker/weir/internal/log"
)

// Compact runs one log compaction pass (cleanup.policy=compact); see
// wlog.Log.Compact. Offsets, the high watermark and the producer state
// are unaffected: compaction keeps every batch's offsets and every batch
// of an idempotent producer.
func (p *Partition) Compact(now time.Time, deleteRetentionMs int64) (wlog.CompactStats, error) {
	return p.log.Compact(now, deleteRetentionMs)
}
