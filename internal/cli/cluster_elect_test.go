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

// On a single node every partition is led by its only, preferred,
// replica: an election is never needed, and that is not a failure; a
// missing topic or partition is.
func TestClusterElectOnASingleNodeNeedsNoElection(t *testing.T) {
	b := startCluster(t)
	mustRun(t, b, "", "topic", "create", "orders", "--partitions", "2")
	out := mustRun(t, b, "", "cluster", "elect", "--preferred", "orders")
	for _, want := range []string{"orders  0          1       not needed", "orders  1          1       not needed"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if out := mustRun(t, b, "", "cluster", "elect", "--unclean"); !strings.Contains(out, "no partition needed an election") {
		t.Errorf("elect --unclean of every partition:\n%s", out)
	}
	if r := run(t, b, "", "cluster", "elect", "--preferred", "orders:7"); r.err == nil || !strings.Contains(r.err.Error(), "orders:7") || !strings.Contains(r.stdout, "UNKNOWN_TOPIC_OR_PARTITION") {
		t.Errorf("elect of a missing partition: err %v, out:\n%s", r.err, r.stdout)
	}
	if r := run(t, b, "", "cluster", "elect", "--preferred", "missing"); r.err == nil || !strings.Contains(r.err.Error(), "missing") {
		t.Errorf("elect of a missing topic: err %v", r.err)
	}
	if r := run(t, b, "", "cluster", "elect", "orders"); r.err == nil || !strings.Contains(r.err.Error(), "--preferred or --unclean") {
		t.Errorf("elect without a mode: err %v", r.err)
	}
}

// The describe filters take no topic to mean every topic, and say so when
// no partition matches; without a filter a topic must be named.
func TestTopicDescribeFiltersListNothingOnAHealthyNode(t *testing.T) {
	b := startCluster(t)
	mustRun(t, b, "", "topic", "create", "orders", "--partitions", "2")
	if out := mustRun(t, b, "", "topic", "describe", "--under-replicated"); out != "no under-replicated partitions\n" {
		t.Errorf("--under-replicated printed %q", out)
	}
	if out := mustRun(t, b, "", "topic", "describe", "--under-min-isr-partitions", "--unavailable-partitions", "orders"); out != "no under-min-ISR or unavailable partitions\n" {
		t.Errorf("--under-min-isr-partitions --unavailable-partitions printed %q", out)
	}
	if r := run(t, b, "", "topic", "describe", "--unavailable-partitions", "missing"); r.err == nil || !strings.Contains(r.err.Error(), "missing") {
		t.Errorf("a filter over a missing topic: err %v", r.err)
	}
	if r := run(t, b, "", "topic", "describe"); r.err == nil || !strings.Contains(r.err.Error(), "topic NAME") {
		t.Errorf("describe without a topic or filter: err %v", r.err)
	}
}
