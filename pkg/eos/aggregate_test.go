package eos

import (
	"errors"
	"math"
	"testing"
)

// CheckedAdd returns the sum whenever it is an int64, and ErrOverflow
// exactly when it is not, in both directions.
func TestCheckedAddRefusesSumsOutsideInt64(t *testing.T) {
	for _, c := range []struct {
		a, b     int64
		sum      int64
		overflow bool
	}{
		{1, 2, 3, false},
		{-5, 3, -2, false},
		{math.MaxInt64, 0, math.MaxInt64, false},
		{math.MaxInt64 - 1, 1, math.MaxInt64, false},
		{math.MaxInt64, 1, 0, true},
		{1, math.MaxInt64, 0, true},
		{math.MinInt64 + 1, -1, math.MinInt64, false},
		{math.MinInt64, -1, 0, true},
		{-1000, math.MinInt64, 0, true},
		{math.MinInt64, math.MaxInt64, -1, false},
	} {
		got, err := CheckedAdd(c.a, c.b)
		if c.overflow {
			if !errors.Is(err, ErrOverflow) {
				t.Errorf("%d + %d: %d, %v; want ErrOverflow", c.a, c.b, got, err)
			}
			continue
		}
		if err != nil || got != c.sum {
			t.Errorf("%d + %d: %d, %v; want %d", c.a, c.b, got, err, c.sum)
		}
	}
}
