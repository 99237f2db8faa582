package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// benchLoadResult is the part of `weir bench --json` the tests read.
type benchLoadResult struct {
	Options struct {
		Producers int     `json:"producers"`
		Rate      float64 `json:"rate"`
		Duration  int64   `json:"duration_ns"`
		Acks      string  `json:"acks"`
	} `json:"options"`
	Produced      int64             `json:"produced"`
	Consumed      int64             `json:"consumed"`
	Missing       int64             `json:"missing"`
	Duplicates    int64             `json:"duplicates"`
	ProduceErrors int64             `json:"produce_errors"`
	EndToEnd      benchPercentiles  `json:"end_to_end"`
	Ack           benchPercentiles  `json:"ack"`
	Commits       *benchPercentiles `json:"commits"`
	SendDelay     *benchPercentiles `json:"send_delay"`
	BrokerPID     int               `json:"broker_pid"`
	CPUPerRecord  float64           `json:"broker_cpu_ns_per_record"`
	Timeline      []benchLoadSecond `json:"timeline"`
}

type benchPercentiles struct {
	Count uint64 `json:"count"`
	P50   int64  `json:"p50_ns"`
	P99   int64  `json:"p99_ns"`
	P999  int64  `json:"p999_ns"`
	Max   int64  `json:"max_ns"`
}

type benchLoadSecond struct {
	Second   int   `json:"second"`
	Warmup   bool  `json:"warmup"`
	Acked    int64 `json:"acked"`
	Consumed int64 `json:"consumed"`
}

// checkOrdered fails t unless every percentile is positive and they rise:
// p50 ≤ p99 ≤ p99.9 ≤ max.
func checkOrdered(t *testing.T, name string, p benchPercentiles) {
	t.Helper()
	if p.P50 <= 0 || p.P50 > p.P99 || p.P99 > p.P999 || p.P999 > p.Max {
		t.Errorf("%s percentiles not positive and ordered: %+v", name, p)
	}
}

// runBenchJSON runs `weir bench --json` with args and decodes the result.
func runBenchJSON(t *testing.T, args ...string) benchLoadResult {
	t.Helper()
	out, err := runWeir(t, "", append([]string{"bench", "--json"}, args...)...)
	if err != nil {
		t.Fatalf("weir bench: %v\n%s", err, out)
	}
	var res benchLoadResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, out)
	}
	return res
}

func TestBenchLoadConsumesEveryRecordProducedAfterTheWarmup(t *testing.T) {
	p := startProc(t, "127.0.0.1:0", t.TempDir())
	res := runBenchJSON(t, "--brokers", p.addr, "--producers", "2", "--consumers", "2",
		"--rate", "500", "--duration", "2s", "--warmup", "1s", "--partitions", "4")

	if res.Produced == 0 || res.Consumed != res.Produced || res.Missing != 0 || res.Duplicates != 0 || res.ProduceErrors != 0 {
		t.Fatalf("produced %d, consumed %d, missing %d, duplicates %d, errors %d: want every record of the window consumed once",
			res.Produced, res.Consumed, res.Missing, res.Duplicates, res.ProduceErrors)
	}
	// The producers keep to a schedule and catch up when late, so the
	// window holds about rate × duration records however slow the
	// machine; the band allows for a stall at the warmup's edge.
	if want := 500 * 2; res.Produced < int64(want)*3/4 || res.Produced > int64(want)*5/4 {
		t.Errorf("produced %d records in a 2 s window at 500/s: want about %d", res.Produced, want)
	}
	if res.EndToEnd.Count != uint64(res.Consumed) || res.Ack.Count != uint64(res.Produced) {
		t.Errorf("latency counts: end-to-end %d for %d consumed, ack %d for %d produced",
			res.EndToEnd.Count, res.Consumed, res.Ack.Count, res.Produced)
	}
	checkOrdered(t, "end-to-end", res.EndToEnd)
	checkOrdered(t, "ack", res.Ack)
	if res.Commits != nil {
		t.Errorf("commit latency reported for an idempotent run: %+v", res.Commits)
	}
	// At a fixed rate the generator reports its own lag for every record
	// it sent in the window.
	if res.SendDelay == nil || res.SendDelay.Count != uint64(res.Produced) || res.SendDelay.P50 > res.SendDelay.Max {
		t.Errorf("send delay %+v: want one per record of the window (%d), ordered", res.SendDelay, res.Produced)
	}
	// The broker runs on this machine, so bench finds it by its port.
	if res.BrokerPID != p.cmd.Process.Pid || res.CPUPerRecord <= 0 {
		t.Errorf("broker pid %d (want %d), CPU per record %v", res.BrokerPID, p.cmd.Process.Pid, res.CPUPerRecord)
	}
	// The timeline marks the warmup second and counts every record.
	var warm, acked, consumed int64
	for _, s := range res.Timeline {
		if s.Warmup {
			warm++
		}
		acked += s.Acked
		consumed += s.Consumed
	}
	if warm != 1 || acked < res.Produced || consumed < res.Consumed {
		t.Errorf("timeline: %d warmup seconds (want 1), %d acked, %d consumed: %+v", warm, acked, consumed, res.Timeline)
	}
}

func TestBenchLoadTransactionalReportsCommitsAndReadsEveryCommittedRecord(t *testing.T) {
	p := startProc(t, "127.0.0.1:0", t.TempDir())
	res := runBenchJSON(t, "--brokers", p.addr, "--producers", "2", "--consumers", "1",
		"--rate", "400", "--duration", "2s", "--warmup", "500ms", "--transactional", "--commit-interval", "100ms")
	if res.Produced == 0 || res.Consumed != res.Produced || res.Duplicates != 0 {
		t.Fatalf("produced %d, consumed %d, duplicates %d: want every committed record read once", res.Produced, res.Consumed, res.Duplicates)
	}
	if res.Commits == nil || res.Commits.Count == 0 {
		t.Fatalf("no commit latency in a transactional run: %+v", res.Commits)
	}
	checkOrdered(t, "commit", *res.Commits)
	checkOrdered(t, "end-to-end", res.EndToEnd)
	// A read-committed consumer sees a record only after its commit,
	// which comes after its acknowledgement.
	if res.EndToEnd.P50 < res.Ack.P50 {
		t.Errorf("end-to-end p50 %d ns below ack p50 %d ns under read_committed", res.EndToEnd.P50, res.Ack.P50)
	}
}

func TestBenchLoadPrintsPercentilesAndWritesAnHTMLReportWithCharts(t *testing.T) {
	p := startProc(t, "127.0.0.1:0", t.TempDir())
	report := filepath.Join(t.TempDir(), "bench.html")
	out, err := runWeir(t, "", "bench", "--brokers", p.addr, "--rate", "300", "--duration", "1s", "--warmup", "500ms", "--report", report)
	if err != nil {
		t.Fatalf("weir bench: %v\n%s", err, out)
	}
	for _, want := range []string{"end-to-end latency: p50 ", "ack latency:", ", p99 ", ", p99.9 ", ", max ", "produced ", "broker CPU: "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	f, err := os.Open(report)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := html.Parse(f)
	if err != nil {
		t.Fatalf("report does not parse as HTML: %v", err)
	}
	counts := map[string]int{}
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			counts[n.Data]++
			if n.Data == "script" || n.Data == "link" || n.Data == "img" {
				t.Errorf("report loads or runs something: <%s>", n.Data)
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if counts["svg"] < 2 || counts["polyline"] < 2 || counts["table"] != 1 {
		t.Errorf("report holds %d svg charts, %d lines, %d tables: want a latency and a throughput chart and the summary", counts["svg"], counts["polyline"], counts["table"])
	}
}

func TestBenchCompareAgainstTwoBrokersPrintsRatios(t *testing.T) {
	a := startProc(t, "127.0.0.1:0", t.TempDir())
	b := startProc(t, "127.0.0.1:0", t.TempDir())
	out, err := runWeir(t, "", "bench", "compare", a.addr, b.addr, "--rounds", "2", "--rate", "300", "--duration", "1s", "--warmup", "300ms")
	if err != nil {
		t.Fatalf("weir bench compare: %v\n%s", err, out)
	}
	rows := map[string][]string{}
	for _, l := range strings.Split(out, "\n") {
		for _, m := range []string{"produced records/s", "end-to-end p99 ms", "broker CPU ns/record"} {
			if strings.HasPrefix(l, m) {
				rows[m] = strings.Fields(strings.TrimPrefix(l, m))
			}
		}
	}
	for m, f := range rows {
		// median A, median B, B/A, then two rounds of A, "|", two of B.
		if len(f) != 8 || f[5] != "|" {
			t.Errorf("%s row %q: want medians, a ratio and two rounds per side", m, f)
		}
	}
	if len(rows) != 3 || !strings.Contains(out, "B/A") {
		t.Fatalf("compare output lacks ratio rows (found %v):\n%s", rows, out)
	}
}

func TestBenchLoadRefusesBadFlagsWithOneLine(t *testing.T) {
	// Nothing listens here; every case must fail before connecting.
	brokers := "--brokers=127.0.0.1:1"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--rate", "-5"}, "--rate"},
		{[]string{"--producers", "0"}, "--producers"},
		{[]string{"--consumers", "0"}, "--consumers"},
		{[]string{"--acks", "2"}, "acks"},
		{[]string{"--record-size", "8"}, "--record-size"},
		{[]string{"--duration", "0s"}, "--duration"},
		{[]string{"--transactional", "--acks", "1"}, "--transactional"},
		{[]string{"--acks", "1", "--idempotent"}, "--idempotent"},
		{[]string{"compare", "127.0.0.1:1"}, "two cluster addresses"},
		{[]string{"compare", "127.0.0.1:1", "127.0.0.1:2", "--rounds", "0"}, "--rounds"},
	} {
		_, err := runWeir(t, "", append(append([]string{"bench"}, c.args...), brokers)...)
		ce, ok := err.(*cliError)
		if !ok || !strings.Contains(ce.stderr, c.want) {
			t.Errorf("weir bench %s: err %v, want a one-line error naming %s", strings.Join(c.args, " "), err, c.want)
		}
	}
}

func TestBenchLoadFailsNonZeroWhenTheBrokerRefusesItsRecords(t *testing.T) {
	p := startProc(t, "127.0.0.1:0", t.TempDir())
	if _, err := runWeir(t, "", "topic", "create", "small-records", "--partitions", "2", "--config", "max.message.bytes=300", "--brokers", p.addr); err != nil {
		t.Fatal(err)
	}
	out, err := runWeir(t, "", "bench", "--brokers", p.addr, "--topic", "small-records", "--record-size", "1000",
		"--rate", "100", "--duration", "500ms", "--warmup", "0s")
	ce, ok := err.(*cliError)
	if !ok || !strings.Contains(ce.stderr, "MESSAGE_TOO_LARGE") {
		t.Fatalf("a run whose every record was refused: err %v, want a non-zero exit naming MESSAGE_TOO_LARGE\n%s", err, out)
	}
	if !strings.Contains(out, "produced 0 records") || strings.Contains(out, "produce errors 0") {
		t.Errorf("the result printed before the error should count the refused records:\n%s", out)
	}
}
