package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestRequestsAreCountedByAPIWithFollowersFetchesApart(t *testing.T) {
	m := New()
	m.Request(0, false, time.Millisecond, 100, 50)
	m.Request(1, false, time.Millisecond, 10, 500)
	m.Request(1, true, time.Millisecond, 10, 700)
	m.Request(999, false, time.Millisecond, 1, 1) // no such API: ignored
	for api, want := range map[string]float64{"Produce": 1, "Fetch": 1, "FetchFollower": 1} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(api)); got != want {
			t.Errorf("%s: %v, want %v", api, got, want)
		}
	}
	if got := testutil.ToFloat64(m.bytesOut); got != 1250 {
		t.Errorf("response bytes %v, want 1250", got)
	}
}

// BenchmarkObserveRequest is what metrics add to every request.
func BenchmarkObserveRequest(b *testing.B) {
	m := New()
	for b.Loop() {
		m.Request(0, false, time.Millisecond, 1000, 100)
	}
}

// Every error code an answer carries counts once under its API, top
// level and nested alike, as Kafka's ErrorsPerSec counts them.
func TestErrorCodesInAnswersAreCountedByAPIAndCode(t *testing.T) {
	m := New()
	produce := kmsg.NewPtrProduceResponse()
	pt := kmsg.NewProduceResponseTopic()
	for _, code := range []int16{0, kerr.NotLeaderForPartition.Code, kerr.NotLeaderForPartition.Code, kerr.MessageTooLarge.Code} {
		pp := kmsg.NewProduceResponseTopicPartition()
		pp.ErrorCode = code
		pt.Partitions = append(pt.Partitions, pp)
	}
	produce.Topics = append(produce.Topics, pt)
	m.Errors(0, false, produce)

	fetch := kmsg.NewPtrFetchResponse()
	ft := kmsg.NewFetchResponseTopic()
	fp := kmsg.NewFetchResponseTopicPartition()
	fp.ErrorCode = kerr.OffsetOutOfRange.Code
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	m.Errors(1, true, fetch)

	// Another API, walked by its ErrorCode fields: a top-level code and
	// one per topic.
	create := kmsg.NewPtrCreateTopicsResponse()
	for _, code := range []int16{kerr.TopicAlreadyExists.Code, 0, 9999} {
		ct := kmsg.NewCreateTopicsResponseTopic()
		ct.ErrorCode = code
		create.Topics = append(create.Topics, ct)
	}
	m.Errors(19, false, create)
	hb := kmsg.NewPtrHeartbeatResponse()
	hb.ErrorCode = kerr.RebalanceInProgress.Code
	m.Errors(12, false, hb)

	for _, c := range []struct {
		api, code string
		want      float64
	}{
		{"Produce", "NOT_LEADER_FOR_PARTITION", 2},
		{"Produce", "MESSAGE_TOO_LARGE", 1},
		{"FetchFollower", "OFFSET_OUT_OF_RANGE", 1},
		{"Fetch", "OFFSET_OUT_OF_RANGE", 0},
		{"CreateTopics", "TOPIC_ALREADY_EXISTS", 1},
		{"CreateTopics", "9999", 1},
		{"Heartbeat", "REBALANCE_IN_PROGRESS", 1},
	} {
		if got := testutil.ToFloat64(m.errors.WithLabelValues(c.api, c.code)); got != c.want {
			t.Errorf("%s %s: %v, want %v", c.api, c.code, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.errors); n != 7 {
		t.Errorf("%d error series, want 7 (no NONE series)", n)
	}
}

// BenchmarkObserveProduceErrors is what counting errors adds to a clean
// produce answer of six partitions.
func BenchmarkObserveProduceErrors(b *testing.B) {
	m := New()
	produce := kmsg.NewPtrProduceResponse()
	pt := kmsg.NewProduceResponseTopic()
	for range 6 {
		pt.Partitions = append(pt.Partitions, kmsg.NewProduceResponseTopicPartition())
	}
	produce.Topics = append(produce.Topics, pt)
	for b.Loop() {
		m.Errors(0, false, produce)
	}
}
