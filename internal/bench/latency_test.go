package bench

import (
	"math"
	"testing"
	"time"
)

func TestBucketOfIsMonotonicAndInvertible(t *testing.T) {
	values := []uint64{0, 1, 63, 64, 65, 127, 128, 1000, 999_999, 1 << 40, math.MaxInt64, math.MaxUint64}
	prev := -1
	for _, v := range values {
		b := bucketOf(v)
		if b < prev {
			t.Fatalf("bucketOf(%d) = %d, below bucket %d of a smaller value", v, b, prev)
		}
		if b >= histogramBuckets {
			t.Fatalf("bucketOf(%d) = %d, out of range", v, b)
		}
		prev = b
		mid := bucketMid(b)
		if v >= subBuckets {
			if rel := math.Abs(float64(mid)-float64(v)) / float64(v); rel > 1.0/subBuckets {
				t.Errorf("bucketMid(bucketOf(%d)) = %d: relative error %.4f above 1/%d", v, mid, rel, subBuckets)
			}
		} else if mid != v {
			t.Errorf("small value %d lands in bucket with middle %d", v, mid)
		}
	}
}

func TestQuantilesOfUniformLatenciesAreWithinPrecision(t *testing.T) {
	var h latencyHistogram
	for i := 1; i <= 100_000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 50 * time.Millisecond},
		{0.99, 99 * time.Millisecond},
		{0.999, 99900 * time.Microsecond},
		{1, 100 * time.Millisecond},
	} {
		got := h.Quantile(tc.q)
		if rel := math.Abs(float64(got-tc.want)) / float64(tc.want); rel > 1.0/subBuckets {
			t.Errorf("Quantile(%v) = %v, want %v within 1/%d", tc.q, got, tc.want, subBuckets)
		}
	}
}

func TestQuantileOfEmptyHistogramIsZero(t *testing.T) {
	var h latencyHistogram
	if got := h.Quantile(0.99); got != 0 {
		t.Fatalf("Quantile on empty histogram = %v, want 0", got)
	}
}
