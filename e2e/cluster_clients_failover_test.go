package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Other client families through a leader change: librdkafka, as kcat
// and as python's confluent_kafka, produces with acks=all and consumes
// while the partition's leader is killed with SIGKILL (and restarted):
// every record the client reports delivered is read back, by the
// client's own consumer and by franz-go, at the offset the client was
// told.

// clientFailoverCluster starts a cluster that fences a killed node
// within seconds, with topic (one partition, three replicas,
// min.insync.replicas 2) on it.
func clientFailoverCluster(t *testing.T, topic string) *testCluster {
	t.Helper()
	tc := startCluster(t, 3, "--set", "broker.session.timeout.ms=2000",
		"--set", "broker.heartbeat.interval.ms=300", "--set", "replica.lag.time.max.ms=3000")
	ctrl := tc.waitController(15 * time.Second)
	tc.createReplicated(ctrl, topic, 1, 3, 2)
	tc.waitFullISR(ctrl, topic, 0, 15*time.Second)
	return tc
}

// killLeaderOnce kills the leader of topic-0 when ready is closed, and
// restarts it once another node leads; what went wrong, if anything, is
// sent on the channel returned (it runs off the test's goroutine, so it
// cannot fail the test itself).
func (tc *testCluster) killLeaderOnce(topic string, ready <-chan struct{}) <-chan error {
	done := make(chan error, 1)
	go func() {
		<-ready
		victim, epoch := -1, int32(0)
		for i := range tc.c.Nodes {
			if st, ok := tc.partitionState(i, topic, 0); ok && st.Leader > 0 {
				victim, epoch = int(st.Leader-1), st.LeaderEpoch
				break
			}
		}
		if victim < 0 {
			done <- fmt.Errorf("no node names a leader of %s-0", topic)
			return
		}
		tc.t.Logf("killing the leader of %s-0, node %d (epoch %d)", topic, victim+1, epoch)
		tc.c.Kill(victim)
		if _, ok := tc.waitPartition(topic, 0, 30*time.Second, replacedLeader(victim, epoch)); !ok {
			done <- fmt.Errorf("no new leader of %s-0 within 30s of killing node %d", topic, victim+1)
			return
		}
		done <- tc.c.Start(victim)
	}()
	return done
}

// readOffsets reads topic-0 from the start with franz-go until it holds
// every offset in want, and returns the value at each offset read.
func readOffsets(t *testing.T, seeds []string, topic string, want map[int64]string) map[int64]string {
	t.Helper()
	cl := newClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := map[int64]string{}
	missing := len(want)
	for missing > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("franz-go read %d of the %d offsets reported delivered", len(want)-missing, len(want))
		}
		for _, r := range fs.Records() {
			if _, dup := got[r.Offset]; dup {
				continue
			}
			got[r.Offset] = string(r.Value)
			if _, ok := want[r.Offset]; ok {
				missing--
			}
		}
	}
	return got
}

// checkDelivered fails the test unless every delivered value (by offset)
// is what both readers found at that offset, and no value is stored
// twice.
func checkDelivered(t *testing.T, client string, delivered, clientRead, franzRead map[int64]string) {
	t.Helper()
	if len(delivered) == 0 {
		t.Fatalf("%s reported nothing delivered", client)
	}
	for off, v := range delivered {
		if got := franzRead[off]; got != v {
			t.Fatalf("%s was told %q is at offset %d; franz-go reads %q there", client, v, off, got)
		}
		if clientRead != nil {
			if got, ok := clientRead[off]; !ok || got != v {
				t.Fatalf("%s was told %q is at offset %d; its own consumer read %q there", client, v, off, got)
			}
		}
	}
	at := map[string]int64{}
	for off, v := range franzRead {
		if prev, dup := at[v]; dup {
			t.Fatalf("%q is stored twice, at offsets %d and %d", v, prev, off)
		}
		at[v] = off
	}
}

var kcatDelivered = regexp.MustCompile(`Message delivered to partition 0 \(offset (\d+)\)`)

func TestClusterKcatProducesAndConsumesThroughALeaderKill(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed; ./test.sh installs it (apt-get install kcat)")
	}
	const topic, n = "kcat-failover", 3000
	tc := clientFailoverCluster(t, topic)
	brokers := strings.Join(tc.seeds(), ",")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// The consumer runs throughout, printing each offset and value, each
	// line at once (-u).
	cons := exec.CommandContext(ctx, kcat, "-C", "-b", brokers, "-t", topic, "-p", "0", "-o", "beginning", "-q", "-u", "-f", "%o %s\n")
	var consErr strings.Builder
	cons.Stderr = &consErr
	defer func() {
		if t.Failed() {
			t.Logf("kcat -C wrote:\n%s", tail(consErr.String(), 4000))
		}
	}()
	consOut, err := cons.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Start(); err != nil {
		t.Fatal(err)
	}
	var cmu sync.Mutex
	consumed := map[int64]string{}
	go func() {
		sc := bufio.NewScanner(consOut)
		for sc.Scan() {
			off, v, ok := strings.Cut(sc.Text(), " ")
			if o, err := strconv.ParseInt(off, 10, 64); ok && err == nil {
				cmu.Lock()
				consumed[o] = v
				cmu.Unlock()
			}
		}
	}()
	defer func() { _ = cons.Process.Kill(); _ = cons.Wait() }()

	// The producer reports each delivery with its offset (verbosity 3);
	// its input arrives over seconds, so the kill falls in the middle.
	prod := exec.CommandContext(ctx, kcat, "-P", "-b", brokers, "-t", topic, "-p", "0",
		"-X", "acks=all", "-X", "enable.idempotence=true", "-v", "-v", "-v")
	in, err := prod.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	errOut, err := prod.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := prod.Start(); err != nil {
		t.Fatal(err)
	}
	var deliveredOffsets []int64
	var failures []string
	ready := make(chan struct{})
	reports := make(chan struct{})
	go func() {
		defer close(reports)
		sc := bufio.NewScanner(errOut)
		for sc.Scan() {
			line := sc.Text()
			if m := kcatDelivered.FindStringSubmatch(line); m != nil {
				o, _ := strconv.ParseInt(m[1], 10, 64)
				deliveredOffsets = append(deliveredOffsets, o)
				if len(deliveredOffsets) == 300 {
					close(ready)
				}
			} else if strings.Contains(line, "Delivery failed") {
				failures = append(failures, line)
			}
		}
	}()
	killed := tc.killLeaderOnce(topic, ready)
	for i := range n {
		if _, err := fmt.Fprintf(in, "kcat-%d\n", i); err != nil {
			t.Fatalf("kcat's input: %v", err)
		}
		if i%10 == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	in.Close()
	<-reports
	if err := prod.Wait(); err != nil {
		t.Logf("kcat -P: %v", err)
	}
	if len(deliveredOffsets) < 300 {
		t.Fatalf("kcat reported %d deliveries; the leader was never killed", len(deliveredOffsets))
	}
	if err := <-killed; err != nil {
		t.Fatal(err)
	}
	t.Logf("kcat reported %d of %d records delivered, %d failed", len(deliveredOffsets), n, len(failures))

	franz := readOffsets(t, tc.seeds(), topic, offsetSet(deliveredOffsets))
	delivered := map[int64]string{}
	for _, o := range deliveredOffsets {
		if _, dup := delivered[o]; dup {
			t.Fatalf("kcat was told two records are at offset %d", o)
		}
		delivered[o] = franz[o]
		if !strings.HasPrefix(franz[o], "kcat-") {
			t.Fatalf("kcat was told a record is at offset %d; franz-go reads %q there", o, franz[o])
		}
	}
	// kcat sends its input in order, and idempotence keeps it so.
	last := -1
	for o := int64(0); o <= maxOffset(deliveredOffsets); o++ {
		if v, ok := delivered[o]; ok {
			k, _ := strconv.Atoi(strings.TrimPrefix(v, "kcat-"))
			if k <= last {
				t.Fatalf("offset %d holds %s after kcat-%d: out of order", o, v, last)
			}
			last = k
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		cmu.Lock()
		have := 0
		for o := range delivered {
			if _, ok := consumed[o]; ok {
				have++
			}
		}
		snapshot := make(map[int64]string, len(consumed))
		for o, v := range consumed {
			snapshot[o] = v
		}
		cmu.Unlock()
		if have == len(delivered) {
			checkDelivered(t, "kcat", delivered, snapshot, franz)
			return
		}
		if time.Now().After(deadline) {
			var miss []int64
			for o := range delivered {
				if _, ok := snapshot[o]; !ok {
					miss = append(miss, o)
				}
			}
			slices.Sort(miss)
			t.Fatalf("kcat's consumer read %d of the %d records reported delivered (not offsets %v)", have, len(delivered), miss[:min(len(miss), 20)])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func offsetSet(offs []int64) map[int64]string {
	m := map[int64]string{}
	for _, o := range offs {
		m[o] = ""
	}
	return m
}

func maxOffset(offs []int64) int64 {
	var m int64 = -1
	for _, o := range offs {
		m = max(m, o)
	}
	return m
}

func TestClusterConfluentKafkaProducesAndConsumesThroughALeaderKill(t *testing.T) {
	py := confluentPython(t)
	const topic, n = "py-failover", 3000
	tc := clientFailoverCluster(t, topic)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "testdata/leader_change.py", strings.Join(tc.seeds(), ","), topic, strconv.Itoa(n))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	delivered, consumed := map[int64]string{}, map[int64]string{}
	var failed, clientErrs []string
	done := false
	ready := make(chan struct{})
	killed := tc.killLeaderOnce(topic, ready)
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && (f[0] == "delivered" || f[0] == "consumed"):
			o, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil {
				t.Fatalf("leader_change.py: %q", sc.Text())
			}
			if f[0] == "consumed" {
				consumed[o] = f[1]
				continue
			}
			if prev, dup := delivered[o]; dup {
				t.Fatalf("confluent_kafka was told %s and %s are both at offset %d", prev, f[1], o)
			}
			delivered[o] = f[1]
			if len(delivered) == 300 {
				close(ready)
			}
		case len(f) > 0 && f[0] == "failed":
			failed = append(failed, sc.Text())
		case len(f) > 0 && f[0] == "error":
			clientErrs = append(clientErrs, sc.Text())
		case len(f) == 1 && f[0] == "done":
			done = true
		}
	}
	if err := cmd.Wait(); err != nil || !done {
		t.Fatalf("leader_change.py: %v (done: %v)\nstderr:\n%s", err, done, stderr.String())
	}
	if len(delivered) < 300 {
		close(ready)
		<-killed
		t.Fatalf("confluent_kafka reported %d deliveries; the leader was never killed", len(delivered))
	}
	if err := <-killed; err != nil {
		t.Fatal(err)
	}
	t.Logf("confluent_kafka reported %d of %d records delivered, %d failed; %d client errors (e.g. %v)", len(delivered), n, len(failed), len(clientErrs), first(clientErrs))
	franz := readOffsets(t, tc.seeds(), topic, delivered)
	checkDelivered(t, "confluent_kafka", delivered, consumed, franz)
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
