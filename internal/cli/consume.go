package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// consumeFlags are the flags of `weir consume`.
type consumeFlags struct {
	from      string
	partition int32
	group     string
	isolation string
	format    string
	count     int
	timeout   time.Duration
}

// consumeConfig is consumeFlags after validation.
type consumeConfig struct {
	topic     string
	from      startSpec
	partition int32
	group     string
	isolation kgo.IsolationLevel
	format    outputFormat
	count     int
	timeout   time.Duration
}

func newConsumeCommand(conn *connFlags) *cobra.Command {
	var cf consumeFlags
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print records of a topic",
		Long: `Print the records of a topic to standard output until --count records have
been printed, --timeout passes without a new record, or the command is
interrupted; each of these ends it with exit status 0.

With --group the consumer joins that group and commits the offsets of the
records it has printed; --from then applies only to partitions for which
the group has no committed offset.`,
		Args: exactArgs(1, "one TOPIC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := cf.validate(args[0])
			if err != nil {
				return err
			}
			base, err := conn.baseOpts()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(contextOf(cmd), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return consume(ctx, base, cfg, cmd)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cf.from, "from", "start", "where to start: start, end, an offset, or @ and a Unix time in ms")
	f.Int32Var(&cf.partition, "partition", -1, "read only this partition (-1: all partitions)")
	f.StringVar(&cf.group, "group", "", "consumer group to join; offsets of printed records are committed")
	f.StringVar(&cf.isolation, "isolation", "read_uncommitted", "read_uncommitted or read_committed")
	f.StringVar(&cf.format, "format", "value", "output format: value, kv (key TAB value) or json")
	f.IntVarP(&cf.count, "count", "n", 0, "exit after this many records (0: no limit)")
	f.DurationVar(&cf.timeout, "timeout", 0, "exit after this long without a new record (0: wait forever)")
	silence(cmd)
	return cmd
}

func (cf consumeFlags) validate(topic string) (consumeConfig, error) {
	cfg := consumeConfig{topic: topic, partition: cf.partition, group: cf.group, count: cf.count, timeout: cf.timeout}
	var err error
	if cfg.from, err = parseFrom(cf.from); err != nil {
		return cfg, err
	}
	if cfg.isolation, err = parseIsolation(cf.isolation); err != nil {
		return cfg, err
	}
	if cfg.format, err = parseFormat(cf.format); err != nil {
		return cfg, err
	}
	switch {
	case cf.partition < -1:
		return cfg, fmt.Errorf("invalid --partition %d", cf.partition)
	case cf.partition >= 0 && cf.group != "":
		return cfg, fmt.Errorf("--partition and --group cannot be combined: a group assigns partitions itself")
	case cf.count < 0:
		return cfg, fmt.Errorf("invalid --count %d: must not be negative", cf.count)
	case cf.timeout < 0:
		return cfg, fmt.Errorf("invalid --timeout %v: must not be negative", cf.timeout)
	}
	return cfg, nil
}

// clientOpts returns the consumer's kgo options.
func (cfg consumeConfig) clientOpts() []kgo.Opt {
	opts := []kgo.Opt{kgo.FetchIsolationLevel(cfg.isolation)}
	switch {
	case cfg.partition >= 0:
		opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			cfg.topic: {cfg.partition: cfg.from.offset()},
		}))
	case cfg.group != "":
		// Marked offsets are committed periodically, on revocation and
		// at exit, so a record is committed only after it was printed.
		opts = append(opts,
			kgo.ConsumerGroup(cfg.group),
			kgo.ConsumeTopics(cfg.topic),
			kgo.ConsumeResetOffset(cfg.from.offset()),
			kgo.AutoCommitMarks(),
		)
	default:
		opts = append(opts, kgo.ConsumeTopics(cfg.topic), kgo.ConsumeResetOffset(cfg.from.offset()))
	}
	return opts
}

// consume prints records until the count, the idle timeout or ctx ends it.
func consume(ctx context.Context, base []kgo.Opt, cfg consumeConfig, cmd *cobra.Command) error {
	cl, err := kgo.NewClient(append(base, cfg.clientOpts()...)...)
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	defer cl.Close()
	// kgo waits quietly for a topic that does not exist; a user at a
	// terminal wants to hear about a typo instead.
	if err := checkTopic(ctx, cl, cfg.topic, cfg.partition); err != nil {
		return err
	}

	out := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
	enc := newRecordEncoder(out, cfg.format)
	printed := 0
	lastRecord := time.Now()
	var loopErr error
	for cfg.count == 0 || printed < cfg.count {
		pollCtx, cancel := ctx, context.CancelFunc(func() {})
		if cfg.timeout > 0 {
			pollCtx, cancel = context.WithDeadline(ctx, lastRecord.Add(cfg.timeout))
		}
		limit := -1
		if cfg.count > 0 {
			limit = cfg.count - printed
		}
		fetches := cl.PollRecords(pollCtx, limit)
		cancel()

		for _, r := range fetches.Records() {
			if loopErr = enc.encode(r); loopErr != nil {
				break
			}
			if cfg.group != "" {
				cl.MarkCommitRecords(r)
			}
			printed++
			lastRecord = time.Now()
		}
		if err := out.Flush(); err != nil && loopErr == nil {
			loopErr = fmt.Errorf("write output: %w", err)
		}
		if loopErr != nil || ctx.Err() != nil {
			break
		}
		if loopErr = consumeError(fetches, cmd); loopErr != nil {
			break
		}
		if cfg.timeout > 0 && time.Since(lastRecord) >= cfg.timeout {
			break
		}
	}
	if cfg.group != "" {
		// Commit with a fresh context: an interrupt must not stop us
		// from saving the progress already printed.
		commitCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := cl.CommitMarkedOffsets(commitCtx); err != nil && loopErr == nil {
			loopErr = fmt.Errorf("commit offsets of group %s: %w", cfg.group, err)
		}
	}
	return loopErr
}

// checkTopic fails if topic does not exist or has no such partition.
func checkTopic(ctx context.Context, cl *kgo.Client, topic string, partition int32) error {
	topics, err := kadm.NewClient(cl).ListTopicsWithInternal(ctx, topic)
	if err != nil {
		return fmt.Errorf("look up topic %s: %w", topic, err)
	}
	t, ok := topics[topic]
	switch {
	case !ok:
		return fmt.Errorf("topic %s: not in the metadata response", topic)
	case t.Err != nil:
		return fmt.Errorf("topic %s: %w", topic, t.Err)
	case partition >= 0:
		if _, ok := t.Partitions[partition]; !ok {
			return fmt.Errorf("topic %s has no partition %d (it has %d)", topic, partition, len(t.Partitions))
		}
	}
	return nil
}

// consumeError returns the first error in fetches that should end the
// command. The poll deadline and interrupts are normal ends. A Kafka error
// the broker calls non-retriable (an authorization failure, say) ends it
// too; anything else kgo reports (data loss, group session trouble,
// retriable codes) is something it handles itself, so it is only reported
// on stderr.
func consumeError(fetches kgo.Fetches, cmd *cobra.Command) error {
	for _, fe := range fetches.Errors() {
		var kafkaErr *kerr.Error
		switch err := fe.Err; {
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		case errors.Is(err, kgo.ErrClientClosed):
			return err
		case errors.As(err, &kafkaErr) && !kafkaErr.Retriable:
			return fmt.Errorf("consume %s[%d]: %w", fe.Topic, fe.Partition, err)
		default:
			fmt.Fprintf(cmd.ErrOrStderr(), "weir: warning: %s[%d]: %v\n", fe.Topic, fe.Partition, err)
		}
	}
	return nil
}
