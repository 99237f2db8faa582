package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// freePortRange finds a base port such that n ports from it, and n from
// base+100 (the controller listeners of `weir cluster up`), can be bound.
// Bases lie below the kernel's ephemeral range, so ports the kernel hands
// other tests do not land in them.
func freePortRange(t *testing.T, n int) int {
	t.Helper()
	for range 100 {
		base := 20000 + rand.IntN(10000)
		free := true
		for _, p := range []int{base, base + 100} {
			for i := range n {
				ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+i))
				if err != nil {
					free = false
					break
				}
				ln.Close()
			}
		}
		if free {
			return base
		}
	}
	t.Fatal("no free port range found")
	return 0
}

// clusterUp is a running `weir cluster up`.
type clusterUp struct {
	cmd       *exec.Cmd
	bootstrap string
	pids      []int
	exited    chan error
	stopped   bool // interrupt saw it end
}

// startClusterUp runs `weir cluster up` with args and waits for the line
// that gives the bootstrap address.
func startClusterUp(t *testing.T, args ...string) *clusterUp {
	t.Helper()
	cmd := exec.Command(weirBin, append([]string{"cluster", "up"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &testWriter{t: t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cu := &clusterUp{cmd: cmd, exited: make(chan error, 1)}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		cu.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		// Left running by a failed test: kill it and its nodes.
		if !cu.stopped {
			cmd.Process.Kill()
			for _, pid := range cu.pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	nodeLine := regexp.MustCompile(`^node \d+\s+pid (\d+)\s`)
	timeout := time.After(60 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("weir cluster up ended before it printed the bootstrap address: %v", <-cu.exited)
			}
			t.Log(line)
			if m := nodeLine.FindStringSubmatch(line); m != nil {
				pid, _ := strconv.Atoi(m[1])
				cu.pids = append(cu.pids, pid)
			}
			if b, ok := strings.CutPrefix(line, "bootstrap: "); ok {
				cu.bootstrap = b
				go func() {
					for line := range lines {
						t.Log(line)
					}
				}()
				return cu
			}
		case <-timeout:
			t.Fatal("no bootstrap address printed within 60s")
		}
	}
}

// interrupt sends SIGINT, as Ctrl-C does, and returns the command's exit
// error once it has ended.
func (cu *clusterUp) interrupt(t *testing.T) error {
	t.Helper()
	start := time.Now()
	cu.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-cu.exited:
		cu.stopped = true
		t.Logf("weir cluster up stopped %v after SIGINT", time.Since(start).Round(time.Millisecond))
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("weir cluster up still running 30s after SIGINT")
		return nil
	}
}

// `weir cluster up 3` starts three nodes that form one cluster, which
// franz-go, kcat and Weir's own CLI see whole; Ctrl-C stops every node
// and exits 0, and a second run finds the data of the first.
func TestClusterUpRunsThreeNodesAndCtrlCStopsThemAll(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wc")
	base := freePortRange(t, 3)
	args := []string{"3", "--dir", dir, "--base-port", strconv.Itoa(base)}
	cu := startClusterUp(t, args...)
	want := fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", base, base+1, base+2)
	if cu.bootstrap != want || len(cu.pids) != 3 {
		t.Fatalf("bootstrap %q and %d node pids; want %q and 3", cu.bootstrap, len(cu.pids), want)
	}
	brokers := "--brokers=" + cu.bootstrap

	adm := kadm.NewClient(newClient(t, "", kgo.SeedBrokers(strings.Split(cu.bootstrap, ",")...)))
	md, err := adm.BrokerMetadata(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Brokers) != 3 || md.Controller < 1 {
		t.Fatalf("franz-go's Metadata: %d brokers, controller %d; want 3 and one of them", len(md.Brokers), md.Controller)
	}
	out, err := runKcat(t, "", "-L", "-b", cu.bootstrap)
	if err != nil || !strings.Contains(string(out), " 3 brokers:") {
		t.Fatalf("kcat -L: %v\n%s", err, out)
	}

	if _, err := runWeir(t, "", "topic", "create", "spread", "--partitions", "12", brokers); err != nil {
		t.Fatal(err)
	}
	out2, err := runWeir(t, "", "topic", "describe", "spread", brokers)
	if err != nil {
		t.Fatal(err)
	}
	leaders := map[string]int{}
	rows := 0
	for _, line := range strings.Split(out2, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[0] == "PARTITION" {
			continue
		}
		if _, err := strconv.Atoi(f[0]); err != nil {
			continue
		}
		// PARTITION LEADER EPOCH REPLICAS ISR OFFLINE ...
		rows++
		leaders[f[1]]++
		if f[3] != f[1] || f[4] != f[1] || f[5] != "-" {
			t.Errorf("partition %s: leader %s, replicas %s, ISR %s, offline %s; want replicas and ISR the leader alone, none offline", f[0], f[1], f[3], f[4], f[5])
		}
	}
	if rows != 12 || leaders["1"] != 4 || leaders["2"] != 4 || leaders["3"] != 4 {
		t.Fatalf("topic describe shows %d partitions led by %v; want 12, four on each node:\n%s", rows, leaders, out2)
	}

	desc, err := runWeir(t, "", "cluster", "describe", brokers)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster describe:\n%s", desc)
	if !strings.Contains(desc, fmt.Sprintf("controller: %d\n", md.Controller)) {
		t.Fatalf("cluster describe does not name controller %d", md.Controller)
	}
	var hw int64
	if _, err := fmt.Sscanf(desc[strings.Index(desc, "metadata quorum: "):], "metadata quorum: leader %d, epoch %d, high watermark %d", new(int32), new(int32), &hw); err != nil {
		t.Fatalf("no quorum line: %v", err)
	}
	nodes := 0
	for _, line := range strings.Split(desc, "\n") {
		// NODE ADDRESS CONTROLLER-ADDRESS ROLES QUORUM METADATA-OFFSET LAG ...
		f := strings.Fields(line)
		if len(f) < 7 || f[0] == "NODE" {
			continue
		}
		id, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		nodes++
		offset, err1 := strconv.ParseInt(f[5], 10, 64)
		lag, err2 := strconv.ParseInt(f[6], 10, 64)
		wantStatus := "follower"
		if int32(id) == md.Controller {
			wantStatus = "leader"
		}
		// The topic was created through the controller, so the high
		// watermark covers it; a follower may be a heartbeat behind.
		if f[1] != fmt.Sprintf("127.0.0.1:%d", base+id-1) || f[2] != fmt.Sprintf("127.0.0.1:%d", base+100+id-1) ||
			f[3] != "broker,controller" || f[4] != wantStatus || err1 != nil || err2 != nil || offset < 1 || lag < 0 ||
			(wantStatus == "leader" && (offset < hw || lag != 0)) {
			t.Errorf("node %d's row %q; want its two listeners, roles broker,controller, %s, and a metadata offset with lag (high watermark %d)", id, line, wantStatus, hw)
		}
	}
	if nodes != 3 || !strings.Contains(desc, "partitions without a leader: 0\n") {
		t.Fatalf("cluster describe lists %d nodes, or partitions without a leader", nodes)
	}

	if err := cu.interrupt(t); err != nil {
		t.Fatalf("weir cluster up exited with %v after SIGINT; want 0", err)
	}
	for _, pid := range cu.pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("node process %d still exists after weir cluster up exited (kill 0: %v)", pid, err)
		}
	}

	// The same command again: the same cluster, with its topic.
	cu = startClusterUp(t, args...)
	adm = kadm.NewClient(newClient(t, "", kgo.SeedBrokers(strings.Split(cu.bootstrap, ",")...)))
	topics, err := adm.ListTopics(testCtx(t), "spread")
	if err != nil || topics["spread"].Err != nil || len(topics["spread"].Partitions) != 12 {
		t.Fatalf("after a restart the topic is %+v (%v); want its 12 partitions", topics["spread"], err)
	}
	if err := cu.interrupt(t); err != nil {
		t.Fatalf("second run exited with %v", err)
	}
}

// A single node is a valid cluster: one voter, its own controller.
func TestClusterUpOfOneNode(t *testing.T) {
	base := freePortRange(t, 1)
	cu := startClusterUp(t, "1", "--dir", filepath.Join(t.TempDir(), "wc"), "--base-port", strconv.Itoa(base))
	md, err := newAdmin(t, cu.bootstrap).BrokerMetadata(testCtx(t))
	if err != nil || len(md.Brokers) != 1 || md.Controller != 1 {
		t.Fatalf("metadata %+v, %v; want broker 1 alone, its own controller", md, err)
	}
	if err := cu.interrupt(t); err != nil {
		t.Fatal(err)
	}
}

// Bad arguments, busy ports and a directory already in use or of another
// size are refused with a message, a non-zero exit and no process left.
func TestClusterUpRefusesBadFlags(t *testing.T) {
	base := freePortRange(t, 3)
	busy, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+101))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	locked := t.TempDir()
	lf, err := os.OpenFile(filepath.Join(locked, "cluster.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	threeNodes := t.TempDir()
	if err := os.WriteFile(filepath.Join(threeNodes, "cluster.json"), []byte(`{"nodes":3}`), 0o644); err != nil {
		t.Fatal(err)
	}

	port := strconv.Itoa(base)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "want the number of nodes N"},
		{[]string{"0"}, "1 to 9 nodes, not 0"},
		{[]string{"10"}, "1 to 9 nodes, not 10"},
		{[]string{"three"}, `not "three"`},
		{[]string{"3", "--base-port", "0"}, "--base-port 0"},
		{[]string{"3", "--base-port", "65534"}, "must lie within 1-65535"},
		{[]string{"3", "--base-port", port, "--controller-base-port", strconv.Itoa(base + 2)}, "overlap"},
		{[]string{"3", "--base-port", port}, fmt.Sprintf("node 2's controller listener 127.0.0.1:%d cannot be bound", base+101)},
		{[]string{"1", "--base-port", port, "--dir", locked}, "in use by another `weir cluster up`"},
		{[]string{"1", "--base-port", port, "--dir", threeNodes}, "holds a cluster of 3 nodes"},
		{[]string{"1", "--base-port", port, "--wait", "0s"}, "--wait and --stop-timeout must be positive"},
	} {
		dir := filepath.Join(t.TempDir(), "wc")
		args := append([]string{"cluster", "up", "--dir", dir}, tc.args...)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, weirBin, args...).CombinedOutput()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "panic") {
			t.Errorf("weir %s: %v, output %q; want exit 1 saying %q", strings.Join(args, " "), err, out, tc.want)
		}
	}
}

// A cluster that is not ready in time is stopped: the command fails,
// pointing at the logs, and leaves no node listening.
func TestClusterUpNotReadyInTimeStopsItsNodes(t *testing.T) {
	base := freePortRange(t, 3)
	dir := filepath.Join(t.TempDir(), "wc")
	out, err := exec.Command(weirBin, "cluster", "up", "3", "--dir", dir, "--base-port", strconv.Itoa(base), "--wait", "1ms").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "not ready") || !strings.Contains(string(out), "weir.log") {
		t.Fatalf("cluster up --wait 1ms: %v, output %q; want exit 1, not ready, naming the logs", err, out)
	}
	for i := range 3 {
		for _, p := range []int{base + i, base + 100 + i} {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				t.Fatalf("port %d still taken after cluster up failed: %v", p, err)
			}
			ln.Close()
		}
	}
}
