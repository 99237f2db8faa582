package exampletest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Service is one of an example's processes, supervised as systemd or
// Kubernetes would: a run that fails on its own (a service that gives up
// while the broker is down, say) is started again after restartDelay. The
// kill test SIGKILLs it and starts it again itself.
type Service struct {
	Name string
	bin  string
	args []string

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	output   bytes.Buffer // every run's output, for failure messages
	err      error        // how the last run ended
	held     bool         // a kill or stop is under way: do not restart
	kills    int
	restarts int // runs that failed on their own and were started again
}

const restartDelay = 300 * time.Millisecond

// NewService describes a process to run: bin with args.
func NewService(name, bin string, args ...string) *Service {
	return &Service{Name: name, bin: bin, args: args}
}

// Start runs the service; it must not be running.
func (s *Service) Start(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = false
	if err := s.startLocked(); err != nil {
		t.Fatalf("start %s: %v", s.Name, err)
	}
}

func (s *Service) startLocked() error {
	cmd := exec.Command(s.bin, s.args...)
	fmt.Fprintf(&s.output, "--- start %s\n", s.Name)
	cmd.Stdout, cmd.Stderr = &lockedWriter{s}, &lockedWriter{s}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	s.cmd, s.exited = cmd, exited
	go s.supervise(cmd, exited)
	return nil
}

// supervise waits for a run to end and starts the service again if the
// run failed on its own.
func (s *Service) supervise(cmd *exec.Cmd, exited chan struct{}) {
	err := cmd.Wait()
	s.mu.Lock()
	s.err = err
	close(exited)
	restart := err != nil && !s.held
	s.mu.Unlock()
	if !restart {
		return
	}
	time.Sleep(restartDelay)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held || s.exited != exited { // killed, stopped or started meanwhile
		return
	}
	s.restarts++
	fmt.Fprintf(&s.output, "--- failed (%v): restarting\n", err)
	if err := s.startLocked(); err != nil {
		fmt.Fprintf(&s.output, "--- restart failed: %v\n", err)
	}
}

// hold stops supervision and returns the current run.
func (s *Service) hold() (*exec.Cmd, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = true
	return s.cmd, s.exited
}

// Kill SIGKILLs the service and waits for it to die; the service then
// stays down until Start. It reports false, and leaves the service to its
// supervision, if the service was not running (it had finished, or was
// between a failure and its restart) or exited on its own just before
// the signal.
func (s *Service) Kill() bool {
	cmd, exited := s.hold()
	if exited == nil {
		return false
	}
	select {
	case <-exited:
	default:
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		s.kills++
		fmt.Fprintf(&s.output, "--- SIGKILL %s\n", s.Name)
		return true
	}
	// Not killed by us: resume supervision, restarting a failed run whose
	// restart the hold may have cancelled.
	s.held = false
	if s.cmd == cmd && s.err != nil {
		s.restarts++
		fmt.Fprintf(&s.output, "--- failed (%v): restarting\n", s.err)
		if err := s.startLocked(); err != nil {
			fmt.Fprintf(&s.output, "--- restart failed: %v\n", err)
		}
	}
	return false
}

// Stop ends the service with SIGTERM and waits.
func (s *Service) Stop() {
	cmd, exited := s.hold()
	if exited == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	<-exited
}

// WaitSuccess waits until a run ends successfully (failed runs are
// restarted) or timeout passes.
func (s *Service) WaitSuccess(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		exited, err := s.exited, s.err
		s.mu.Unlock()
		select {
		case <-exited:
			if err == nil {
				return nil
			}
		default:
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not finish within %v", s.Name, timeout)
}

// Kills is how many times Kill killed the service.
func (s *Service) Kills() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kills
}

// Restarts is how many runs failed on their own and were started again.
func (s *Service) Restarts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

// Log returns the output of every run, with a line at each start, kill
// and restart.
func (s *Service) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.output.String()
}

type lockedWriter struct{ s *Service }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.output.Write(p)
}

// FreeAddr returns a loopback address no one listens on, with a port
// below the kernel's ephemeral range: a server killed and restarted on it
// must find it free, and an ephemeral port may meanwhile have become an
// outgoing connection's local port.
func FreeAddr(t *testing.T) string {
	t.Helper()
	for range 200 {
		addr := "127.0.0.1:" + strconv.Itoa(20000+rand.IntN(12000))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue // taken: try another
		}
		l.Close()
		return addr
	}
	t.Fatal("no free loopback port between 20000 and 32000")
	return ""
}

// WaitListening waits until addr accepts TCP connections.
func WaitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listening on %s", addr)
}
