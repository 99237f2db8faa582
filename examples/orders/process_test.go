package orders_test

import (
	"bytes"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"testing"
)

// service is one of the example's processes, which the kill test starts,
// SIGKILLs and starts again.
type service struct {
	name string
	bin  string
	args []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	output bytes.Buffer // every run's output, for failure messages
	err    error        // how the last run ended
	kills  int
}

func newService(name, bin string, args ...string) *service {
	return &service{name: name, bin: bin, args: args}
}

// start runs the service; it must not be running.
func (s *service) start(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := exec.Command(s.bin, s.args...)
	fmt.Fprintf(&s.output, "--- start %s\n", s.name)
	cmd.Stdout, cmd.Stderr = &lockedWriter{s}, &lockedWriter{s}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", s.name, err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited = cmd, exited
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(exited)
	}()
}

// running reports whether the last start has not exited yet.
func (s *service) running() bool {
	s.mu.Lock()
	exited := s.exited
	s.mu.Unlock()
	if exited == nil {
		return false
	}
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// kill SIGKILLs the service and waits for it to die; it reports false if
// the service had already exited on its own.
func (s *service) kill() bool {
	if !s.running() {
		return false
	}
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	s.mu.Lock()
	defer s.mu.Unlock()
	// It may have exited on its own just before the signal.
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		s.kills++
		fmt.Fprintf(&s.output, "--- SIGKILL %s\n", s.name)
		return true
	}
	return false
}

// stop ends the service with SIGTERM and waits.
func (s *service) stop() {
	if !s.running() {
		return
	}
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	<-exited
}

// wait waits for the current run to exit and returns how it ended.
func (s *service) wait() error {
	s.mu.Lock()
	exited := s.exited
	s.mu.Unlock()
	<-exited
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
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
