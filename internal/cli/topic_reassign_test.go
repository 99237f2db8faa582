package cli

import (
	"slices"
	"strings"
	"testing"
)

func TestReassignArgumentsParseOrFailClearly(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		cancel  bool
		want    []partitionMove
		wantErr string
	}{
		{args: []string{"orders:0=2,3"}, want: []partitionMove{{topicPartition{"orders", 0}, []int32{2, 3}}}},
		{args: []string{"a.b_c-d:12=1", "x:0=3, 2"}, want: []partitionMove{
			{topicPartition{"a.b_c-d", 12}, []int32{1}}, {topicPartition{"x", 0}, []int32{3, 2}}}},
		{args: []string{"orders:1"}, cancel: true, want: []partitionMove{{topicPartition: topicPartition{"orders", 1}}}},
		{args: []string{"orders:0"}, wantErr: "want TOPIC:PARTITION=BROKER"},
		{args: []string{"orders=1,2"}, wantErr: "want TOPIC:PARTITION"},
		{args: []string{":0=1"}, wantErr: "want TOPIC:PARTITION"},
		{args: []string{"orders:x=1"}, wantErr: `"x" is not a partition number`},
		{args: []string{"orders:-1=1"}, wantErr: "not a partition number"},
		{args: []string{"orders:0="}, wantErr: `"" is not a broker id`},
		{args: []string{"orders:0=1,,2"}, wantErr: "is not a broker id"},
		{args: []string{"orders:0=1,b"}, wantErr: `"b" is not a broker id`},
		{args: []string{"orders:0=-2"}, wantErr: "is not a broker id"},
		{args: []string{"orders:0=1,2,1"}, wantErr: "broker 1 is listed twice"},
		{args: []string{"orders:0=1", "orders:0=2"}, wantErr: "named more than once"},
		{args: []string{"orders:0=1"}, cancel: true, wantErr: "without replicas"},
		{args: []string{"orders:0", "orders:0"}, cancel: true, wantErr: "named more than once"},
	} {
		parse := parseMoves
		if tc.cancel {
			parse = parseCancels
		}
		got, err := parse(tc.args)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q (cancel %v): %v, want an error saying %q", tc.args, tc.cancel, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.EqualFunc(got, tc.want, func(a, b partitionMove) bool {
			return a.topicPartition == b.topicPartition && slices.Equal(a.replicas, b.replicas)
		}) {
			t.Errorf("%q (cancel %v): %+v, %v; want %+v", tc.args, tc.cancel, got, err, tc.want)
		}
	}
}

// On a single node the only assignment is the node itself: reassigning
// to it is a move done at once, anything else is refused with Kafka's
// error, and there is never a move to cancel or list.
func TestTopicReassignOnASingleNode(t *testing.T) {
	b := startCluster(t)
	mustRun(t, b, "", "topic", "create", "orders", "--partitions", "2")
	out := mustRun(t, b, "", "topic", "reassign", "--wait", "orders:0=1", "orders:1=1")
	for _, want := range []string{"reassigning orders-0 to 1", "reassignment of orders-0 done: replicas 1", "reassignment of orders-1 done: replicas 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("reassign to the node itself printed %q; want %q", out, want)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"orders:0=2"}, "INVALID_REPLICA_ASSIGNMENT"},
		{[]string{"orders:7=1"}, "UNKNOWN_TOPIC_OR_PARTITION"},
		{[]string{"missing:0=1"}, "UNKNOWN_TOPIC_OR_PARTITION"},
		{[]string{"--cancel", "orders:0"}, "NO_REASSIGNMENT_IN_PROGRESS"},
		{[]string{"orders:0"}, "want TOPIC:PARTITION=BROKER"},
		{[]string{}, "want at least one"},
		{[]string{"--list", "--cancel"}, "cannot be combined"},
	} {
		r := run(t, b, "", append([]string{"topic", "reassign"}, tc.args...)...)
		if r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
			t.Errorf("reassign %q: %v, want %s", tc.args, r.err, tc.want)
		}
	}
	if out := mustRun(t, b, "", "topic", "reassign", "--list"); strings.TrimSpace(out) != "TOPIC  PARTITION  REPLICAS  ADDING  REMOVING" {
		t.Errorf("--list with nothing in progress printed %q", out)
	}
}
