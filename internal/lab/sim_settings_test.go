package lab

import (
	"reflect"
	"testing"
)

// The simulator refuses what Kafka's producer refuses.
func TestSimSettingsRefuseWhatKafkaRefuses(t *testing.T) {
	ok := SimSettings{Acks: "all", Retries: true, Idempotent: true, MaxInFlight: 5, Commit: "after"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid settings refused: %v", err)
	}
	cluster := ok
	cluster.Cluster = 3
	if err := cluster.Validate(); err != nil {
		t.Errorf("a 3-node cluster refused: %v", err)
	}
	for name, mut := range map[string]func(*SimSettings){
		"idempotence with acks=1":     func(s *SimSettings) { s.Acks = "1" },
		"idempotence without retries": func(s *SimSettings) { s.Retries = false },
		"transactions without idempotence": func(s *SimSettings) {
			s.Idempotent, s.Transactions = false, true
		},
		"max.in.flight 6":  func(s *SimSettings) { s.MaxInFlight = 6 },
		"acks=2":           func(s *SimSettings) { s.Acks = "2" },
		"commit sometimes": func(s *SimSettings) { s.Commit = "sometimes" },
		"a 2-node cluster": func(s *SimSettings) { s.Cluster = 2 },
	} {
		s := ok
		mut(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

// Each side is judged as the lab's rows judge it; a side that may lose
// with one that may duplicate claims nothing.
func TestSimClaimCombinesTheLabsJudgements(t *testing.T) {
	for _, c := range []struct {
		s    SimSettings
		want Guarantee
	}{
		{SimSettings{Acks: "1", Retries: true, Commit: "after"}, NoGuarantee},
		{SimSettings{Acks: "0", Commit: "before"}, AtMostOnce},
		{SimSettings{Acks: "0", Commit: "after"}, NoGuarantee},
		{SimSettings{Acks: "all", Retries: true, Commit: "after"}, AtLeastOnce},
		{SimSettings{Acks: "all", Retries: true, Idempotent: true, Commit: "auto"}, AtLeastOnce},
		{SimSettings{Acks: "all", Retries: true, Idempotent: true, Dedup: true}, ExactlyOnce},
		{SimSettings{Acks: "all", Retries: true, Idempotent: true, Transactions: true, Dedup: true}, AtLeastOnce},
		{SimSettings{Acks: "all", Retries: true, Idempotent: true, Transactions: true, Dedup: true, ReadCommitted: true}, ExactlyOnce},
	} {
		if got := c.s.Claim(); got != c.want {
			t.Errorf("%+v claims %v, want %v", c.s, got, c.want)
		}
	}
}

// A seed fixes the pacing and the broker's fault seed; another seed
// draws another schedule.
func TestSimScheduleIsFixedBySeed(t *testing.T) {
	a, b, c := newSimSchedule(42, 200), newSimSchedule(42, 200), newSimSchedule(43, 200)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("one seed gave two schedules")
	}
	if reflect.DeepEqual(a, c) {
		t.Fatal("two seeds gave one schedule")
	}
	for i, g := range a.gaps {
		if g < simInterval/2 || g >= simInterval*3/2 {
			t.Fatalf("gap %d is %v, outside [%v, %v)", i, g, simInterval/2, simInterval*3/2)
		}
	}
}
