package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/weir-broker/weir/pkg/weir"
)

// scrape reads addr's /metrics into families by name.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// metricValue is the value of the series of name whose labels include
// want (a gauge, a counter, or a histogram's count); ok is false when there
// is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// The admin listener serves /metrics with Kafka's meanings: request
// latency histograms for Produce and for consumers' Fetch, each led
// partition's high watermark as ListOffsets gives it, a group's lag as
// `weir group describe` gives it, and the open
// transaction that holds read_committed consumers back, its age rising
// while it is held open and gone once it aborts; /healthz, /readyz and
// /debug/pprof/ answer.
func TestMetricsShowRequestLatencyPartitionOffsetsAndAHangingTransaction(t *testing.T) {
	b, err := weir.Start(context.Background(), weir.Config{DataDir: t.TempDir(), AdminListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	admin := b.AdminAddr()
	for _, path := range []string{"/healthz", "/readyz", "/debug/pprof/"} {
		if code := httpStatus(t, "http://"+admin+path); code != 200 {
			t.Fatalf("%s: %d", path, code)
		}
	}
	adm := newAdmin(t, b.Addr())
	createTopic(t, adm, "watched", 1, nil)
	cl := newClient(t, b.Addr(), kgo.DefaultProduceTopic("watched"))
	ctx := testCtx(t)
	for i := range 20 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	consumeAll(t, b.Addr(), "watched", 20)

	fams := scrape(t, admin)
	for _, api := range []string{"Produce", "Fetch"} {
		if n, _ := metricValue(fams, "weir_request_duration_seconds", map[string]string{"api": api}); n == 0 {
			t.Errorf("no %s latency observed", api)
		}
	}
	ends, err := adm.ListEndOffsets(ctx, "watched")
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup("watched", 0)
	if hw, ok := metricValue(fams, "weir_partition_high_watermark", map[string]string{"topic": "watched", "partition": "0"}); !ok || int64(hw) != end.Offset {
		t.Fatalf("high watermark metric %v (%v), ListOffsets says %d", hw, ok, end.Offset)
	}
	// Every acks=all write waited for an fsync: the flush histograms
	// saw fsyncs covering at least the 20 records.
	if n, _ := metricValue(fams, "weir_log_flush_duration_seconds", nil); n == 0 {
		t.Errorf("no fsync observed after 20 acks=all writes")
	}
	if f := fams["weir_log_flush_offsets"]; f == nil || len(f.Metric) != 1 || f.Metric[0].GetHistogram().GetSampleSum() < 20 {
		t.Errorf("fsyncs made fewer than the 20 written records durable: %v", f)
	}
	if v, ok := metricValue(fams, "weir_active_controller", nil); !ok || v != 1 {
		t.Fatalf("a single node must report itself the active controller: %v %v", v, ok)
	}

	// A group that consumed and committed the 20 records, then 5 more
	// written: its lag is 5, as `weir group describe` says.
	grp := newClient(t, b.Addr(), kgo.ConsumerGroup("watchers"), kgo.ConsumeTopics("watched"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	for got := 0; got < 20; {
		fs := grp.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		got += fs.NumRecords()
	}
	if err := grp.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint("more", i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	out, err := runWeir(t, "", "group", "describe", "watchers", "--brokers", b.Addr())
	if err != nil {
		t.Fatalf("weir group describe: %v\n%s", err, out)
	}
	cliLag := -1
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 5 && f[0] == "watched" && f[1] == "0" {
			fmt.Sscan(f[4], &cliLag)
		}
	}
	lag, ok := metricValue(scrape(t, admin), "weir_consumer_group_lag", map[string]string{"group": "watchers", "topic": "watched", "partition": "0"})
	if !ok || int(lag) != cliLag || cliLag != 5 {
		t.Fatalf("group lag metric %v (%v), weir group describe says %d, want both 5:\n%s", lag, ok, cliLag, out)
	}

	txn := newClient(t, b.Addr(), kgo.TransactionalID("hanging"), kgo.DefaultProduceTopic("watched"))
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txn.ProduceSync(ctx, &kgo.Record{Value: []byte("held")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	first, _ := metricValue(scrape(t, admin), "weir_oldest_open_transaction_age_seconds", nil)
	time.Sleep(1500 * time.Millisecond)
	fams = scrape(t, admin)
	if open, _ := metricValue(fams, "weir_open_transactions", nil); open != 1 {
		t.Fatalf("open transactions %v while one is held open, want 1", open)
	}
	if age, _ := metricValue(fams, "weir_oldest_open_transaction_age_seconds", nil); age < first+1 {
		t.Fatalf("the open transaction's age went from %v to %v in 1.5 s: it must rise", first, age)
	}
	if lag, _ := metricValue(fams, "weir_partition_lso_lag", map[string]string{"topic": "watched", "partition": "0"}); lag < 1 {
		t.Fatalf("LSO lag %v while a transaction holds a record back, want at least 1", lag)
	}
	if err := txn.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if open, _ := metricValue(scrape(t, admin), "weir_open_transactions", nil); open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the aborted transaction is still counted open")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// On a cluster, the leader of a partition that lost a follower reports it
// under-replicated and at min.insync.replicas, as Kafka's ReplicaManager
// does, until the follower is back in the ISR; each node's /readyz says
// ready once its registration is unfenced.
func TestClusterMetricsReportAPartitionUnderReplicatedWhileAFollowerIsDown(t *testing.T) {
	tc := startCluster(t, 3, "--set", "replica.lag.time.max.ms=2000", "--set", "min.insync.replicas=2")
	for _, nd := range tc.c.Nodes {
		deadline := time.Now().Add(60 * time.Second)
		for httpStatus(t, "http://"+nd.AdminAddr+"/readyz") != 200 {
			if time.Now().After(deadline) {
				t.Fatalf("node %d never ready", nd.ID)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	adm := kadm.NewClient(newClient(t, strings.Join(tc.seeds(), ","), kgo.SeedBrokers(tc.seeds()...)))
	ctx := testCtx(t)
	if _, err := adm.CreateTopic(ctx, 1, 3, nil, "health"); err != nil {
		t.Fatal(err)
	}
	var leader int32 = -1
	deadline := time.Now().Add(30 * time.Second)
	for leader < 0 {
		td, err := adm.ListTopics(ctx, "health")
		if err == nil && len(td["health"].Partitions) == 1 && len(td["health"].Partitions[0].ISR) == 3 {
			leader = td["health"].Partitions[0].Leader
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader with a full ISR: %v %v", td, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	leaderAdmin := tc.c.Nodes[leader-1].AdminAddr
	follower := int(leader) % 3 // index of another node
	wait := func(what string, under, atMin float64) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			fams := scrape(t, leaderAdmin)
			u, _ := metricValue(fams, "weir_under_replicated_partitions", nil)
			a, _ := metricValue(fams, "weir_at_min_isr_partitions", nil)
			if u == under && a == atMin {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the leader reports %v under-replicated and %v at min ISR, want %v and %v", what, u, a, under, atMin)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	counter := func(admin, name string) float64 {
		t.Helper()
		v, ok := metricValue(scrape(t, admin), name, nil)
		if !ok {
			t.Fatalf("no %s metric", name)
		}
		return v
	}
	wait("all in sync", 0, 0)
	shrinks, expands := counter(leaderAdmin, "weir_isr_shrinks"), counter(leaderAdmin, "weir_isr_expands")
	tc.c.Kill(follower)
	wait("a follower killed", 1, 1)
	if v := counter(leaderAdmin, "weir_isr_shrinks"); v <= shrinks {
		t.Errorf("a follower left the ISR, but weir_isr_shrinks stayed at %v (was %v)", v, shrinks)
	}
	if err := tc.c.Start(follower); err != nil {
		t.Fatal(err)
	}
	wait("the follower back", 0, 0)
	if v := counter(leaderAdmin, "weir_isr_expands"); v <= expands {
		t.Errorf("the follower came back into the ISR, but weir_isr_expands stayed at %v (was %v)", v, expands)
	}

	// The leader killed: another node is elected, and the survivors
	// count one more election, none of them unclean.
	other := tc.c.Nodes[follower].AdminAddr
	elections := counter(other, "weir_leader_elections")
	tc.c.Kill(int(leader - 1))
	deadline = time.Now().Add(60 * time.Second)
	for counter(other, "weir_leader_elections") <= elections {
		if time.Now().After(deadline) {
			t.Fatalf("the leader was killed, but weir_leader_elections stayed at %v", elections)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if v := counter(other, "weir_unclean_leader_elections"); v != 0 {
		t.Errorf("a clean election counted as unclean: weir_unclean_leader_elections %v", v)
	}
}

// Answers' error codes are counted by API and code, as Kafka's
// ErrorsPerSec: a fetch past the log end (OFFSET_OUT_OF_RANGE) and a
// write to a partition the topic does not have (UNKNOWN_TOPIC_OR_PARTITION)
// each show up under their API, and clean answers add nothing.
func TestMetricsCountErrorCodesInAnswersByAPI(t *testing.T) {
	b, err := weir.Start(context.Background(), weir.Config{DataDir: t.TempDir(), AdminListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	adm := newAdmin(t, b.Addr())
	createTopic(t, adm, "errs", 1, nil)
	ctx := testCtx(t)
	cl := newClient(t, b.Addr())
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "errs", Value: []byte("ok")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	before := errorCounts(scrape(t, b.AdminAddr()))

	fetch := kmsg.NewPtrFetchRequest()
	fetch.ReplicaID, fetch.MaxWaitMillis, fetch.MaxBytes = -1, 10, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "errs"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.FetchOffset, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = 1000, 1<<20, -1
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	raw := newClient(t, b.Addr(), kgo.MaxVersions(kversion.V2_8_0()))
	fr, err := fetch.RequestWith(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	if code := fr.Topics[0].Partitions[0].ErrorCode; code != kerr.OffsetOutOfRange.Code {
		t.Fatalf("fetch past the end answered %d, want OFFSET_OUT_OF_RANGE", code)
	}
	produce := kmsg.NewPtrProduceRequest()
	produce.Acks, produce.TimeoutMillis = -1, 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "errs"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Partition = 7
	pt.Partitions = append(pt.Partitions, pp)
	produce.Topics = append(produce.Topics, pt)
	pr, err := produce.RequestWith(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	if code := pr.Topics[0].Partitions[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("produce to partition 7 answered %d, want UNKNOWN_TOPIC_OR_PARTITION", code)
	}

	// Nothing else changed, but for the ApiVersions answers: a client
	// that first asks at a version newer than the broker's is answered
	// UNSUPPORTED_VERSION with the versions to use (KIP-511), once per
	// connection.
	after := errorCounts(scrape(t, b.AdminAddr()))
	want := map[string]float64{"Fetch/OFFSET_OUT_OF_RANGE": 1, "Produce/UNKNOWN_TOPIC_OR_PARTITION": 1}
	for k, v := range after {
		if strings.HasPrefix(k, "ApiVersions/") {
			continue
		}
		if got := v - before[k]; got != want[k] {
			t.Errorf("weir_request_errors_total %s rose by %v, want %v", k, got, want[k])
		}
		delete(want, k)
	}
	for k := range want {
		t.Errorf("weir_request_errors_total has no series %s", k)
	}
}

// errorCounts is weir_request_errors_total by "api/error".
func errorCounts(fams map[string]*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	if f := fams["weir_request_errors_total"]; f != nil {
		for _, m := range f.Metric {
			l := map[string]string{}
			for _, p := range m.Label {
				l[p.GetName()] = p.GetValue()
			}
			out[l["api"]+"/"+l["error"]] = m.Counter.GetValue()
		}
	}
	return out
}
