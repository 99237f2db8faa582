package orders_test

import (
	"bytes"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// service is one of the example's processes, supervised as systemd or
// Kubernetes would: a run that fails on its own (a service that gives up
// while the broker is down, say) is started again after restartDelay. The
// kill test SIGKILLs it and starts it again itself.
type service struct {
	name string
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

func newService(name, bin string, args ...string) *service {
	return &service{name: name, bin: bin, args: args}
}

// start runs the service; it must not be running.
func (s *service) start(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = false
	if err := s.startLocked(); err != nil {
		t.Fatalf("start %s: %v", s.name, err)
	}
}

func (s *service) startLocked() error {
	cmd := exec.Command(s.bin, s.args...)
	fmt.Fprintf(&s.output, "--- start %s\n", s.name)
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
func (s *service) supervise(cmd *exec.Cmd, exited chan struct{}) {
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
func (s *service) hold() (*exec.Cmd, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = true
	return s.cmd, s.exited
}

// kill SIGKILLs the service and waits for it to die; the service then
// stays down until start. It reports false, and leaves the service to its
// supervision, if the service was not running (it had finished, or was
// between a failure and its restart) or exited on its own just before
// the signal.
func (s *service) kill() bool {
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
		fmt.Fprintf(&s.output, "--- SIGKILL %s\n", s.name)
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

// stop ends the service with SIGTERM and waits.
func (s *service) stop() {
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

// wait waits until a run ends successfully (failed runs are restarted)
// or timeout passes.
func (s *service) waitSuccess(timeout time.Duration) error {
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
	return fmt.Errorf("%s did not finish within %v", s.name, timeout)
}

func (s *service) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.output.String()
}

type lockedWriter struct{ s *service }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.output.Write(p)
}
