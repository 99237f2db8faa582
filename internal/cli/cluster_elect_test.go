package cli

import (
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
)

func TestClusterElectTakesExactlyOneMode(t *testing.T) {
	cases := []struct {
		preferred, unclean bool
		want               kadm.ElectLeadersHow
		err                string
	}{
		{preferred: true, want: kadm.ElectPreferredReplica},
		{unclean: true, want: kadm.ElectLiveReplica},
		{err: "give --preferred or --unclean"},
		{preferred: true, unclean: true, err: "not both"},
	}
	for _, tc := range cases {
		how, err := electionMode(tc.preferred, tc.unclean)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("preferred=%v unclean=%v: err %v; want %q", tc.preferred, tc.unclean, err, tc.err)
			}
			continue
		}
		if err != nil || how != tc.want {
			t.Errorf("preferred=%v unclean=%v: %v, %v; want %v", tc.preferred, tc.unclean, how, err, tc.want)
		}
	}
}

func TestClusterElectParsesTopicAndPartitionArguments(t *testing.T) {
	got, err := parseElectTargets([]string{"orders", "orders:2", "a.b-c_d:0"})
	want := []electTarget{{"orders", -1}, {"orders", 2}, {"a.b-c_d", 0}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("parsed %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"orders:", "orders:x", "orders:-1", ":1", "orders:99999999999"} {
		if _, err := parseElectTargets([]string{bad}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: err %v; want one naming the argument", bad, err)
		}
	}
}

func TestPartitionHealthMatchesKafkaTopicsFilters(t *testing.T) {
	cases := []struct {
		name     string
		leader   int32
		replicas []int32
		isr      []int32
		minISR   int
		want     string
	}{
		{"healthy", 1, []int32{1, 2, 3}, []int32{1, 2, 3}, 2, "-"},
		{"one follower out", 1, []int32{1, 2, 3}, []int32{1, 2}, 2, "under-replicated"},
		{"below min ISR", 1, []int32{1, 2, 3}, []int32{1}, 2, "under-replicated,under-min-isr"},
		{"min ISR unknown", 1, []int32{1, 2, 3}, []int32{1}, 0, "under-replicated"},
		{"no leader", -1, []int32{1, 2, 3}, []int32{1}, 1, "unavailable,under-replicated"},
	}
	for _, tc := range cases {
		if got := healthOf(tc.leader, tc.replicas, tc.isr, tc.minISR).String(); got != tc.want {
			t.Errorf("%s: %s; want %s", tc.name, got, tc.want)
		}
	}
	h := healthOf(1, []int32{1, 2}, []int32{1}, 1)
	if !(partitionFilter{underReplicated: true}).matches(h) || (partitionFilter{underMinISR: true, unavailable: true}).matches(h) {
		t.Fatal("filters select by the wrong condition")
	}
}
