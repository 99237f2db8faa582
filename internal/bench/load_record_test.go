package bench

import "testing"

func TestLoadHeaderRoundTripsThroughTheValue(t *testing.T) {
	want := loadHeader{sentNanos: 1_764_000_000_123_456_789, run: 0xdeadbeef, producer: 63, seq: 1 << 40}
	v := make([]byte, 100)
	want.put(v)
	got, ok := parseLoadHeader(v)
	if !ok || got != want {
		t.Fatalf("parsed %+v, %v; want %+v", got, ok, want)
	}
	if _, ok := parseLoadHeader(v[:loadHeaderSize-1]); ok {
		t.Fatal("a value shorter than the header parsed")
	}
}

func TestSeenSetCountsEachRecordOnceAndASecondDeliveryAsDuplicate(t *testing.T) {
	s := newSeenSet(2)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seq := range []uint64{0, 63, 64, 100_000} {
		if !s.addLocked(1, seq) {
			t.Fatalf("first delivery of producer 1 seq %d counted as a duplicate", seq)
		}
		if s.addLocked(1, seq) {
			t.Fatalf("second delivery of producer 1 seq %d counted as new", seq)
		}
		if !s.addLocked(0, seq) {
			t.Fatalf("producer 0 seq %d confused with producer 1's", seq)
		}
	}
	if s.addLocked(2, 0) {
		t.Fatal("a producer index beyond the run's counted as a record of it")
	}
}
