package lab

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/pkg/eos"
)

// statefulKills draws the stateful row's schedule: two worker kills, in
// produce batches as for the consume-transform-produce row, then the
// number of transactions the next worker commits before the broker is
// killed under it.
func statefulKills(_ *Config, rng *rand.Rand) []int {
	return []int{3 + rng.Intn(20), 3 + rng.Intn(20), 1 + rng.Intn(4)}
}

// runStateful prefills an input topic and runs the eos-stateful worker,
// which counts records per key in a store with a changelog, while its
// first generations SIGKILL themselves mid-transaction and the broker is
// SIGKILLed (and restarted) under the next one once it has committed
// e.kills[2] transactions. The output
// copies are checked as the consume-transform-produce row's are; the
// counts, read_committed from the changelog, must equal the counts of
// the input's records per key (History.WantCounts, GotCounts).
func runStateful(ctx context.Context, e *env) (*measure, error) {
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
	group := e.topic + "-group"
	w := WorkerConfig{Brokers: bk.addrs, Role: workerStateful, Topic: in, Output: out, Group: group,
		Instance: "lab-stateful", Effects: e.workDir + "/state"}
	workerKills, brokerAt := e.kills, 0
	if len(e.kills) > 2 {
		workerKills, brokerAt = e.kills[:2], e.kills[2]
	}
	start := time.Now()
	kills, failures, brokerNote, err := runUntilDone(ctx, e, w, b, workerKills, brokerAt)
	if err != nil {
		return nil, err
	}
	elapsed := time.Since(start)
	log, err := readBack(ctx, bk, out, e.cfg.Partitions)
	if err != nil {
		return nil, err
	}
	h.Delivered, h.Fates = log.delivered, log.fates
	input, err := readBack(ctx, bk, in, e.cfg.Partitions)
	if err != nil {
		return nil, err
	}
	h.WantCounts = map[string]int64{}
	for _, d := range input.delivered {
		h.WantCounts[statefulKey(d.Partition, d.ID)]++
	}
	if h.GotCounts, err = readCounts(ctx, bk, eos.ChangelogTopic(group, statefulStore)); err != nil {
		return nil, err
	}
	return &measure{history: h, throughput: float64(len(h.Delivered)) / elapsed.Seconds(), notes: []string{
		fmt.Sprintf("worker SIGKILLed %d× with a transaction open, failed and restarted %d×; %s", kills, failures, brokerNote),
		fmt.Sprintf("%d keys counted, read_committed from the changelog", len(h.GotCounts)),
		log.fateNote()}}, nil
}

// runUntilDone runs worker generations as runGenerations does, and also
// restarts a worker that failed on its own (its broker was killed under
// it), until one finishes. The first generation that does not kill
// itself has the broker b SIGKILLed and restarted under it after its
// brokerAt-th commit; brokerNote says what happened.
func runUntilDone(ctx context.Context, e *env, w WorkerConfig, b *brokerProc, kill []int, brokerAt int) (kills, failures int, brokerNote string, err error) {
	brokerNote = "broker not killed"
	for gen := 0; gen < 2*maxGenerations; gen++ {
		w.KillAfter = 0
		if kills < len(kill) {
			w.KillAfter = kill[kills]
		}
		wk, err := startWorker(e, w)
		if err != nil {
			return kills, failures, brokerNote, err
		}
		if w.KillAfter == 0 && b != nil && brokerAt > 0 {
			switch err := waitLines(ctx, wk, "commit", brokerAt); {
			case err == nil:
				b.kill()
				time.Sleep(200 * time.Millisecond)
				if err := b.restart(ctx); err != nil {
					return kills, failures, brokerNote, fmt.Errorf("restarting the broker: %w", err)
				}
				brokerNote = fmt.Sprintf("broker SIGKILLed after the worker's commit %d and restarted", brokerAt)
				brokerAt = 0
			case errors.Is(err, errExited):
				// Finished or failed first; the next generation tries.
			default:
				return kills, failures, brokerNote, err
			}
		}
		killed, err := wk.wait(ctx)
		switch {
		case ctx.Err() != nil:
			return kills, failures, brokerNote, ctx.Err()
		case killed:
			kills++
		case err != nil:
			failures++
		default:
			return kills, failures, brokerNote, nil
		}
	}
	return kills, failures, brokerNote, errors.New("worker still not done after " + strconv.Itoa(2*maxGenerations) + " generations")
}

// readCounts reads a changelog of counts read_committed to its stable
// end and returns the last count per key.
func readCounts(ctx context.Context, bk brokers, topic string) (map[string]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, readBackTimeout)
	defer cancel()
	cl, err := bk.client(clientTimeouts()...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	lso, _, err := stableOffsets(ctx, kadm.NewClient(cl), topic)
	if err != nil {
		return nil, fmt.Errorf("read back %s: %w", topic, err)
	}
	parts, remaining := map[int32]kgo.Offset{}, map[int32]int64{}
	lso.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			parts[o.Partition], remaining[o.Partition] = kgo.NewOffset().AtStart(), o.Offset
		}
	})
	counts := map[string]int64{}
	if len(parts) == 0 {
		return counts, nil
	}
	rd, err := bk.client(append(clientTimeouts(), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))...)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	for len(remaining) > 0 {
		fs := rd.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			return nil, fmt.Errorf("read back %s: %w", topic, err)
		}
		var bad error
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := remaining[r.Partition]
			if !ok {
				return
			}
			if r.Offset+1 >= end {
				delete(remaining, r.Partition)
			}
			if r.Attrs.IsControl() {
				return
			}
			n, err := strconv.ParseInt(string(r.Value), 10, 64)
			if err != nil && bad == nil {
				bad = fmt.Errorf("changelog %s: count %q of %s: %w", topic, r.Value, r.Key, err)
			}
			counts[string(r.Key)] = n
		})
		if bad != nil {
			return nil, bad
		}
	}
	return counts, nil
}
