package lab

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"
)

// runEOS prefills an input topic and runs consume-transform-produce
// workers into an output topic. Without zombie, the first two workers
// SIGKILL themselves with a transaction open and are restarted. With
// zombie, the first worker is frozen (SIGSTOP) with a transaction open, a
// replacement with the same transactional id takes over, and the frozen
// one is thawed once the replacement has committed: it must be fenced.
func runEOS(ctx context.Context, e *env, zombie bool) (*measure, error) {
	bk, b, err := e.cluster(ctx, "")
	if err != nil {
		return nil, err
	}
	if b != nil {
		defer b.stop()
	}
	in, out := e.topic, e.topic+"-out"
	for _, t := range []string{in, out} {
		if err := createTopic(ctx, bk, t, e.cfg.Partitions); err != nil {
			return nil, err
		}
	}
	h, err := prefill(ctx, e, bk, in)
	if err != nil {
		return nil, err
	}
	w := WorkerConfig{Brokers: bk.addrs, Role: workerEOS, Topic: in, Output: out, Group: e.topic + "-group", Instance: "lab-eos"}
	start := time.Now()
	var note string
	if zombie {
		note, err = runZombie(ctx, e, w)
	} else {
		var kills int
		kills, err = runGenerations(ctx, e, w, e.kills)
		note = fmt.Sprintf("worker SIGKILLed %d× with a transaction open", kills)
	}
	if err != nil {
		return nil, err
	}
	elapsed := time.Since(start)
	log, err := readBack(ctx, bk, out, e.cfg.Partitions)
	if err != nil {
		return nil, err
	}
	h.Delivered, h.Fates = log.delivered, log.fates
	return &measure{history: h, throughput: float64(len(h.Delivered)) / elapsed.Seconds(), notes: []string{note, log.fateNote()}}, nil
}

// runZombie freezes a worker mid-transaction, lets a replacement commit,
// then thaws the zombie and expects it to stop, fenced.
func runZombie(ctx context.Context, e *env, w WorkerConfig) (string, error) {
	freezeAfter := 1
	if len(e.kills) > 0 {
		freezeAfter = e.kills[0]
	}
	z, err := startWorker(e, w)
	if err != nil {
		return "", err
	}
	defer func() {
		z.cmd.Process.Signal(syscall.SIGCONT)
		z.cmd.Process.Kill()
		<-z.exited
	}()
	if err := waitLines(ctx, z, "batch", freezeAfter); err != nil {
		return "", fmt.Errorf("zombie: %w", err)
	}
	if err := z.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return "", err
	}
	r, err := startWorker(e, w)
	if err != nil {
		return "", err
	}
	if err := waitLines(ctx, r, "commit", 2); err != nil {
		r.cmd.Process.Kill()
		<-r.exited
		if errors.Is(err, errExited) {
			// The replacement finished the whole input in fewer
			// transactions; the zombie is thawed all the same.
		} else {
			return "", fmt.Errorf("replacement: %w", err)
		}
	}
	z.cmd.Process.Signal(syscall.SIGCONT)
	zctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	_, zerr := z.wait(zctx)
	cancel()
	fenced := "the zombie stopped with an error (fenced)"
	if zerr == nil {
		fenced = "the zombie exited without an error"
	}
	if _, err := r.wait(ctx); err != nil {
		return "", fmt.Errorf("replacement: %w", err)
	}
	return fmt.Sprintf("worker frozen after %d batches, replaced, thawed: %s", freezeAfter, fenced), nil
}
