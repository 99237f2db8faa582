package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	bolt "go.etcd.io/bbolt"
)

// prefill writes ConsumerRecords records to topic with an idempotent
// acks=all producer and no fault: every one of them is acknowledged.
func prefill(ctx context.Context, e *env, bk brokers, topic string) (History, error) {
	n := e.cfg.ConsumerRecords
	h := History{Sent: n, Acked: make([]bool, n)}
	cl, err := bk.client(append([]kgo.Opt{
		kgo.DefaultProduceTopic(topic),
		kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	}, clientTimeouts()...)...)
	if err != nil {
		return h, err
	}
	defer cl.Close()
	var mu sync.Mutex
	for id := 0; id < n; id++ {
		cl.Produce(ctx, produceRecord(e, id), func(_ *kgo.Record, err error) {
			if err == nil {
				mu.Lock()
				h.Acked[id] = true
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return h, fmt.Errorf("prefill: %w", err)
	}
	return h, nil
}

// runConsumer prefills a topic, then runs worker generations with the
// mode's commit strategy: the first two SIGKILL themselves mid-batch, the
// last runs until everything is committed. What was processed is read
// from the workers' effects.
func runConsumer(ctx context.Context, e *env, mode consumerMode) (*measure, error) {
	bk, b, err := e.cluster(ctx, "")
	if err != nil {
		return nil, err
	}
	if b != nil {
		defer b.stop()
	}
	if err := createTopic(ctx, bk, e.topic, e.cfg.Partitions); err != nil {
		return nil, err
	}
	h, err := prefill(ctx, e, bk, e.topic)
	if err != nil {
		return nil, err
	}
	effects := e.workDir + "/effects"
	w := WorkerConfig{Brokers: bk.addrs, Role: mode.worker, Topic: e.topic, Group: e.topic + "-group",
		Instance: "lab-worker", Effects: effects}
	start := time.Now()
	kills, err := runGenerations(ctx, e, w, e.kills)
	if err != nil {
		return nil, err
	}
	elapsed := time.Since(start)
	if mode.worker == workerDedup {
		h.Delivered, err = readBoltEffects(effects)
	} else {
		h.Delivered, err = readFileEffects(effects)
	}
	if err != nil {
		return nil, err
	}
	return &measure{
		history:    h,
		throughput: float64(len(h.Delivered)) / elapsed.Seconds(),
		notes:      []string{fmt.Sprintf("worker SIGKILLed %d× mid-batch", kills)},
	}, nil
}

// readFileEffects parses "partition offset id" lines.
func readFileEffects(path string) ([]Delivery, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Delivery
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		d, err := parseEffect(line)
		if err != nil {
			return nil, fmt.Errorf("effects %s: %w", path, err)
		}
		out = append(out, d)
	}
	return out, nil
}

func parseEffect(line string) (Delivery, error) {
	f := strings.Fields(line)
	if len(f) != 3 {
		return Delivery{}, fmt.Errorf("bad effect line %q", line)
	}
	p, err1 := strconv.ParseInt(f[0], 10, 32)
	off, err2 := strconv.ParseInt(f[1], 10, 64)
	id, err3 := strconv.ParseInt(f[2], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return Delivery{}, fmt.Errorf("bad effect line %q: %w", line, err)
	}
	return Delivery{ID: id, Partition: int32(p), Offset: off}, nil
}

// readBoltEffects reads the effects a dedup worker stored, in the order
// they were applied.
func readBoltEffects(path string) ([]Delivery, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("effects %s: %w", path, err)
	}
	defer db.Close()
	var out []Delivery
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(effectsBucket)
		if b == nil {
			return nil
		}
		// Keys are big-endian sequence numbers: ForEach visits them in
		// the order the effects were applied.
		return b.ForEach(func(_, v []byte) error {
			d, err := parseEffect(string(v))
			if err != nil {
				return err
			}
			out = append(out, d)
			return nil
		})
	})
	return out, err
}
