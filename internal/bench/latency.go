package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// subBucketBits sets the histogram's precision: every power-of-two range of
// values is split into 1<<subBucketBits equal buckets, so a reported quantile
// is within 1/64 (about 1.6%) of the true value.
const (
	subBucketBits = 6
	subBuckets    = 1 << subBucketBits
	// Group 0 holds the values below subBuckets exactly; groups 1..58
	// hold the power-of-two ranges [2^6, 2^7) ... [2^63, 2^64).
	histogramBuckets = (64 - subBucketBits + 1) * subBuckets
)

// latencyHistogram records durations in nanoseconds in fixed memory (about
// 30 KiB) however many values it sees, so a benchmark of a billion records
// costs no more memory than one of a thousand. Record is safe for concurrent
// use; Quantile must not race with Record.
type latencyHistogram struct {
	counts [histogramBuckets]atomic.Uint64
	total  atomic.Uint64
}

func bucketOf(v uint64) int {
	if v < subBuckets {
		return int(v)
	}
	top := bits.Len64(v) - 1 // index of the highest set bit, >= subBucketBits
	shift := top - subBucketBits
	sub := int(v>>shift) - subBuckets
	return (shift+1)*subBuckets + sub
}

// bucketMid returns the middle of the values that fall into bucket i.
func bucketMid(i int) uint64 {
	group, sub := i/subBuckets, uint64(i%subBuckets)
	if group == 0 {
		return sub
	}
	shift := group - 1
	low := (subBuckets + sub) << shift
	return low + (uint64(1)<<shift)/2
}

// Record adds one observation; negative durations count as zero.
func (h *latencyHistogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))].Add(1)
	h.total.Add(1)
}

// Count returns how many observations were recorded.
func (h *latencyHistogram) Count() uint64 { return h.total.Load() }

// Quantile returns the value at quantile q in [0, 1], or 0 if nothing was
// recorded.
func (h *latencyHistogram) Quantile(q float64) time.Duration {
	total := h.total.Load()
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	rank = max(rank, 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return time.Duration(bucketMid(i))
		}
	}
	return time.Duration(bucketMid(histogramBuckets - 1))
}
