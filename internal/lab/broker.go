package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// brokerSettings make a lab broker quick to react: no initial rebalance
// delay, short session timeouts allowed, timed-out transactions aborted
// within a second.
var brokerSettings = []string{
	"group.initial.rebalance.delay.ms=0",
	"group.min.session.timeout.ms=1000",
	"transaction.abort.timed.out.transaction.cleanup.interval.ms=500",
}

// brokerProc is a `weir serve` child process on a data directory it
// keeps across kills, listening on a port it keeps across restarts.
type brokerProc struct {
	exe, dir, addr string
	args           []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	stderr *tailBuffer
	kills  int
}

// startBroker runs `exe serve` on dir with the fault spec (may be empty)
// and any extra arguments.
func startBroker(ctx context.Context, exe, dir, faultSpec string, faultSeed int64, extra ...string) (*brokerProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	b := &brokerProc{exe: exe, dir: dir, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), stderr: newTailBuffer(4096)}
	b.args = []string{"serve", "--listen", b.addr, "--data", dir, "--log-level", "error"}
	for _, s := range brokerSettings {
		b.args = append(b.args, "--set", s)
	}
	if faultSpec != "" {
		b.args = append(b.args, "--unsafe-faults", faultSpec, "--unsafe-faults-seed", strconv.FormatInt(faultSeed, 10))
	}
	b.args = append(b.args, extra...)
	if err := b.start(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// freePort finds a free loopback port below the kernel's ephemeral range
// (32768 and up on Linux): the broker is killed and started again on it,
// and a port from that range may meanwhile have become an outgoing
// connection's local port. Another process could still take it before the
// broker binds it; start then fails with a clear error.
func freePort() (int, error) {
	for range 200 {
		port := 20000 + mrand.IntN(12000)
		if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			ln.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("find a free port: none free between 20000 and 32000")
}

// start launches the process and waits for its "serving" line.
func (b *brokerProc) start(ctx context.Context) error {
	cmd := exec.Command(b.exe, b.args...)
	cmd.Stderr = b.stderr
	cmd.SysProcAttr = childAttr()
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start broker: %w", err)
	}
	exited := make(chan struct{})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.Contains(sc.Text(), "serving on") {
				close(ready)
				signalled = true
			}
		}
		io.Copy(io.Discard, out)
		cmd.Wait()
		close(exited)
	}()
	b.mu.Lock()
	b.cmd, b.exited = cmd, exited
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	select {
	case <-ready:
		return nil
	case <-exited:
		return fmt.Errorf("broker exited at start: %s", strings.TrimSpace(b.stderr.String()))
	case <-ctx.Done():
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("broker did not start: %w", ctx.Err())
	}
}

// kill SIGKILLs the broker and waits for it to be gone.
func (b *brokerProc) kill() {
	b.mu.Lock()
	cmd, exited := b.cmd, b.exited
	b.kills++
	b.mu.Unlock()
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// process is the running broker's process.
func (b *brokerProc) process() *os.Process {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cmd.Process
}

// restart starts the broker again on the same directory and port.
func (b *brokerProc) restart(ctx context.Context) error {
	var err error
	// The old socket may linger for a moment; retry the bind briefly.
	for attempt := 0; attempt < 20; attempt++ {
		if err = b.start(ctx); err == nil || !strings.Contains(err.Error(), "address already in use") {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return err
}

// stop ends the broker: SIGTERM, then SIGKILL if it lingers.
func (b *brokerProc) stop() {
	b.mu.Lock()
	cmd, exited := b.cmd, b.exited
	b.mu.Unlock()
	select {
	case <-exited:
		return
	default:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

// tailBuffer keeps the last bytes written to it: a child's stderr for
// error messages, without unbounded growth.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// errNotRun marks a scenario that cannot run against the chosen cluster.
var errNotRun = errors.New("not run")
