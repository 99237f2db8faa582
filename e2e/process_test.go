package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// brokerProc is the weir binary running `weir serve` as a child process,
// so a test can kill it with SIGKILL.
type brokerProc struct {
	t      testing.TB
	cmd    *exec.Cmd
	addr   string
	line   string        // the first line it printed: "weir serving on ADDR[, NAME://ADDR…], data in DIR"
	exited chan struct{} // closed once the process is reaped
	logs   *logBuffer    // what it wrote to stderr: its log
}

// startProc runs `weir serve` on listen (host:port; port 0 picks one) and
// dataDir, and waits until it serves.
func startProc(t testing.TB, listen, dataDir string, extra ...string) *brokerProc {
	t.Helper()
	return startProcVia(t, nil, listen, dataDir, extra...)
}

// startProcVia is startProc with `weir serve` run through the command
// prefix (e.g. a shell that lowers a limit first and execs it).
func startProcVia(t testing.TB, prefix []string, listen, dataDir string, extra ...string) *brokerProc {
	t.Helper()
	args := append([]string{"serve", "--listen", listen, "--data", dataDir, "--log-level", "warn"}, extra...)
	argv := append(append(slices.Clone(prefix), weirBin), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	cmd.Stderr = io.MultiWriter(&testWriter{t: t}, logs)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &brokerProc{t: t, cmd: cmd, exited: make(chan struct{}), logs: logs}
	t.Cleanup(func() { p.kill() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		p.reapAfterFailedStart()
		t.Fatalf("weir serve did not start: %v", err)
	}
	// "weir serving on ADDR, data in DIR"
	p.line = line
	if _, err := fmt.Sscanf(line, "weir serving on %s", &p.addr); err != nil {
		p.reapAfterFailedStart()
		t.Fatalf("unexpected first line %q", line)
	}
	p.addr = strings.TrimSuffix(p.addr, ",")
	if _, hostport, ok := strings.Cut(p.addr, "://"); ok {
		p.addr = hostport // a named listener: NAME://host:port
	}
	// Reap only after the first line is read: Wait closes the pipe.
	go func() {
		io.Copy(io.Discard, out)
		cmd.Wait()
		close(p.exited)
	}()
	return p
}

// reapAfterFailedStart ends and reaps a process that did not start
// serving, so the cleanup's kill does not wait for it forever.
func (p *brokerProc) reapAfterFailedStart() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	close(p.exited)
}

// kill sends SIGKILL and waits until the process is reaped.
func (p *brokerProc) kill() {
	if p.exited == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// waitExit waits for the process to end by itself (a fault that exits).
func (p *brokerProc) waitExit() {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		p.kill()
		p.t.Fatal("weir did not exit at its fault point within 60s")
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *brokerProc) stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if !p.cmd.ProcessState.Success() {
			return fmt.Errorf("weir exited with %v after SIGTERM", p.cmd.ProcessState)
		}
		return nil
	case <-time.After(30 * time.Second):
		p.kill()
		return fmt.Errorf("weir did not stop within 30s of SIGTERM")
	}
}

// logBuffer keeps what a process writes, for a test to read while the
// process runs.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testWriter struct{ t testing.TB }

func (w *testWriter) Write(b []byte) (int, error) {
	w.t.Logf("weir: %s", strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// listener is the address of the named listener, from the line weir serve
// printed.
func (p *brokerProc) listener(t testing.TB, name string) string {
	t.Helper()
	for _, f := range strings.Fields(p.line) {
		if addr, ok := strings.CutPrefix(strings.TrimSuffix(f, ","), name+"://"); ok {
			return addr
		}
	}
	t.Fatalf("weir serve printed no %s listener: %q", name, p.line)
	return ""
}
