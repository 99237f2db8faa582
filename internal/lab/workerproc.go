package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// maxGenerations bounds how many times a worker is started in one
// scenario, in case a worker keeps failing.
const maxGenerations = 6

// worker is one running `weir lab worker` child.
type worker struct {
	cmd    *exec.Cmd
	stderr *tailBuffer
	lines  chan string // status lines; closed at exit
	exited chan struct{}
	err    error // set before exited closes
}

// startWorker runs the lab's binary as a worker with w's settings.
func startWorker(e *env, w WorkerConfig) (*worker, error) {
	if e.cfg.Exe == "" {
		return nil, errors.New("no weir binary to run workers")
	}
	args := []string{"lab", "worker",
		"--brokers", strings.Join(w.Brokers, ","),
		"--role", w.Role, "--topic", w.Topic, "--group", w.Group,
		"--instance", w.Instance, "--kill-after", strconv.Itoa(w.KillAfter)}
	if w.Output != "" {
		args = append(args, "--output", w.Output)
	}
	if w.Effects != "" {
		args = append(args, "--effects", w.Effects)
	}
	if w.Follow {
		// A follower can always be told to die mid-batch (SIGUSR1).
		args = append(args, "--follow", "--kill-mid-batch-on-signal")
	}
	if w.ReadCommitted {
		args = append(args, "--read-committed")
	}
	if w.EffectLines {
		args = append(args, "--effect-lines")
	}
	if len(e.cfg.Brokers) > 0 {
		if e.cfg.CommandConfig != "" {
			args = append(args, "--command-config", e.cfg.CommandConfig)
		}
		for _, kv := range e.cfg.CommandProperties {
			args = append(args, "--command-property", kv)
		}
	}
	cmd := exec.Command(e.cfg.Exe, args...)
	cmd.SysProcAttr = childAttr()
	wk := &worker{cmd: cmd, stderr: newTailBuffer(4096), lines: make(chan string, 1024), exited: make(chan struct{})}
	cmd.Stderr = wk.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if w.EffectLines {
				// The watcher counts every effect: never drop one.
				wk.lines <- sc.Text()
				continue
			}
			select {
			case wk.lines <- sc.Text():
			default: // nobody is watching this closely; drop
			}
		}
		close(wk.lines)
		wk.err = cmd.Wait()
		close(wk.exited)
	}()
	return wk, nil
}

// wait waits for the worker to exit; killed reports a SIGKILL.
func (wk *worker) wait(ctx context.Context) (killed bool, err error) {
	select {
	case <-wk.exited:
	case <-ctx.Done():
		wk.cmd.Process.Kill()
		<-wk.exited
		return false, fmt.Errorf("worker did not finish: %w", ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(wk.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true, nil
		}
		return false, fmt.Errorf("worker failed: %v: %s", wk.err, strings.TrimSpace(wk.stderr.String()))
	}
	return false, wk.err
}

// runGenerations starts worker generations, each killing itself at the
// next kill point, then one without a kill point, until one finishes.
func runGenerations(ctx context.Context, e *env, w WorkerConfig, kill []int) (kills int, err error) {
	for gen := 0; gen < maxGenerations; gen++ {
		w.KillAfter = 0
		if gen < len(kill) {
			w.KillAfter = kill[gen]
		}
		wk, err := startWorker(e, w)
		if err != nil {
			return kills, err
		}
		killed, err := wk.wait(ctx)
		if err != nil {
			return kills, err
		}
		if !killed {
			return kills, nil
		}
		kills++
	}
	return kills, fmt.Errorf("worker still not done after %d generations", maxGenerations)
}

var errExited = errors.New("worker exited")

// waitLines waits for n status lines equal to want.
func waitLines(ctx context.Context, wk *worker, want string, n int) error {
	for seen := 0; seen < n; {
		select {
		case line, ok := <-wk.lines:
			if !ok {
				return fmt.Errorf("%w after %d %q lines: %s", errExited, seen, want, strings.TrimSpace(wk.stderr.String()))
			}
			if line == want {
				seen++
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
