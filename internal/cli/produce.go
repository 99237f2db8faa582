package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/internal/bench"
)

// produceFlags are the flags of `weir produce`.
type produceFlags struct {
	keySeparator string
	acks         string
	idempotent   bool
	partition    int32
	linger       time.Duration
	verbose      bool
}

func newProduceCommand(conn *connFlags) *cobra.Command {
	var pf produceFlags
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Produce each line of stdin as a record",
		Long: `Produce each line of standard input as one record, then wait until every
record is acknowledged. Nothing is printed on success.`,
		Args: exactArgs(1, "one TOPIC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := pf.clientOpts(cmd)
			if err != nil {
				return err
			}
			cl, err := conn.client(opts...)
			if err != nil {
				return err
			}
			defer cl.Close()
			ctx, stop := signal.NotifyContext(contextOf(cmd), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// After the first signal a second one kills at once, even
			// while the records already read are being flushed.
			context.AfterFunc(ctx, stop)
			n, err := produceLines(ctx, cl, cmd.InOrStdin(), args[0], pf)
			if pf.verbose {
				fmt.Fprintf(cmd.ErrOrStderr(), "produced %d records to %s\n", n, args[0])
			}
			return explainMissingTopic(ctx, cl, args[0], err)
		},
	}
	f := cmd.Flags()
	f.StringVar(&pf.keySeparator, "key-separator", "", "split each line at the first occurrence into key and value")
	f.StringVar(&pf.acks, "acks", "all", "acknowledgements to wait for: all, 1 or 0")
	f.BoolVar(&pf.idempotent, "idempotent", true, "idempotent producer (KIP-98); default true with --acks all, false otherwise")
	f.Int32Var(&pf.partition, "partition", -1, "produce to this partition only (-1: the client's partitioner)")
	f.DurationVar(&pf.linger, "linger", 10*time.Millisecond, "how long a partition's batch may wait for more records")
	f.BoolVarP(&pf.verbose, "verbose", "v", false, "print the number of records produced to stderr")
	silence(cmd)
	return cmd
}

// clientOpts validates the flags and returns the producer's kgo options.
func (pf produceFlags) clientOpts(cmd *cobra.Command) ([]kgo.Opt, error) {
	acks, err := parseAcks(pf.acks)
	if err != nil {
		return nil, err
	}
	idempotent := pf.idempotent
	if !cmd.Flags().Changed("idempotent") {
		idempotent = acks == bench.AcksAll
	}
	opts, err := bench.ProducerOpts(acks, idempotent)
	if errors.Is(err, bench.ErrIdempotenceNeedsAcksAll) {
		return nil, fmt.Errorf("--idempotent requires --acks all (got --acks %s)", pf.acks)
	}
	if err != nil {
		return nil, err
	}
	if pf.linger < 0 {
		return nil, fmt.Errorf("invalid --linger %v: must not be negative", pf.linger)
	}
	opts = append(opts, kgo.ProducerLinger(pf.linger))
	if pf.partition < -1 {
		return nil, fmt.Errorf("invalid --partition %d", pf.partition)
	}
	if pf.partition >= 0 {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	return opts, nil
}

// produceLines produces every line of in to topic and waits until each is
// acknowledged. It returns how many records were acknowledged and the first
// error, stopping at the first failed record: later ones would most likely
// fail the same way.
//
// When ctx is done (SIGINT) it stops reading but still waits for the records
// already read, so an interrupted producer loses nothing it accepted. Reading
// runs in its own goroutine because a read from a terminal cannot be
// interrupted.
func produceLines(ctx context.Context, cl *kgo.Client, in io.Reader, topic string, pf produceFlags) (int64, error) {
	var (
		mu     sync.Mutex
		acked  int64
		failed error
	)
	// Records outlive an interrupt of ctx; they are cancelled only when
	// one of them fails.
	produceCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	promise := func(_ *kgo.Record, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			acked++
		} else if failed == nil {
			failed = err
			cancel()
		}
	}

	var stopped atomic.Bool
	readDone := make(chan error, 1)
	go func() {
		readDone <- readLines(in, pf.keySeparator, func(rec *kgo.Record) bool {
			if stopped.Load() || produceCtx.Err() != nil {
				return false
			}
			rec.Topic = topic
			rec.Partition = pf.partition
			cl.Produce(produceCtx, rec, promise)
			return true
		})
	}()
	var readErr error
	interrupted := false
	select {
	case readErr = <-readDone:
	case <-ctx.Done():
		stopped.Store(true)
		interrupted = true
	}

	flushErr := cl.Flush(produceCtx)
	mu.Lock()
	defer mu.Unlock()
	switch {
	case failed != nil:
		return acked, fmt.Errorf("produce to %s: %w", topic, failed)
	case readErr != nil:
		return acked, readErr
	case flushErr != nil:
		return acked, fmt.Errorf("flush: %w", flushErr)
	case interrupted:
		return acked, fmt.Errorf("interrupted after %d records were acknowledged", acked)
	}
	return acked, nil
}

// readLines calls produce with a record for each line of in until EOF or
// until produce returns false.
func readLines(in io.Reader, sep string, produce func(*kgo.Record) bool) error {
	r := bufio.NewReaderSize(in, 64<<10)
	for line := 1; ; line++ {
		text, err := r.ReadBytes('\n')
		if len(text) == 0 && err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("read stdin: %w", err)
		}
		rec, recErr := lineRecord(text, sep)
		if recErr != nil {
			return fmt.Errorf("line %d: %w", line, recErr)
		}
		if !produce(rec) {
			return nil
		}
	}
}

// lineRecord builds a record from one input line, dropping its line ending
// ("\n" or "\r\n"). With a separator, the line must contain it: the key is
// what precedes its first occurrence and the value what follows.
func lineRecord(line []byte, sep string) (*kgo.Record, error) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if sep == "" {
		return &kgo.Record{Value: line}, nil
	}
	k, v, ok := bytes.Cut(line, []byte(sep))
	if !ok {
		return nil, fmt.Errorf("key separator %q not found", sep)
	}
	return &kgo.Record{Key: k, Value: v}, nil
}

// contextOf returns the command's context, or Background when the command
// is run without one (as in tests calling Execute).
func contextOf(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}
