package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/internal/explain"
	"github.com/weir-broker/weir/internal/lab"
)

// errPredictionContradicted makes `weir explain --verify` exit non-zero
// when the lab measured what the explanation said could not happen.
var errPredictionContradicted = errors.New("explain: a measurement contradicts the prediction (see above)")

// explainFlags are `weir explain`'s flags.
type explainFlags struct {
	client                     string
	producerFile, consumerFile string
	producerSet, consumerSet   []string
	assume                     []string
	topic, bootstrap           string
	verify                     bool
	records                    int
	seed                       int64
	brokerFaults               string
}

func newExplainCommand(conn *connFlags) *cobra.Command {
	var fl explainFlags
	cmd := &cobra.Command{
		Use:   "explain",
		Short: "Say which delivery guarantee a producer, topic and consumer configuration gives, and why",
		Long: `Read a producer's and a consumer's properties (Kafka's names; librdkafka's
and franz-go's spellings with --client), and the topic's replication.factor,
min.insync.replicas and unclean.leader.election.enable (from --topic on a
running cluster, or --assume), and print:

  - the end-to-end guarantee (at-most-once, at-least-once, exactly-once or
    none) and each layer's, with the weakest layer named;
  - every failure that breaks a stronger guarantee, in plain words, with the
    'weir lab' scenario that injects it;
  - the smallest change that reaches the next guarantee, with its measured
    throughput cost where BENCHMARKS.md has one, and the flags that apply it.

What no client property says is given as a consumer property:
weir.commit=before-processing|after-processing|transaction (when the
application commits offsets; with librdkafka's enable.auto.offset.store=false,
when it stores them) and weir.dedup=true (the handler skips records it already
processed, keyed by an event id, as pkg/dedup does).

--verify runs the 'weir lab' scenarios of these settings (each on its own
'weir serve' child, the topic layer on a three-node cluster of them) and
prints what was lost and duplicated beside the prediction; a measurement that
contradicts the prediction makes the command exit non-zero.`,
		Example: `  weir explain --client librdkafka --producer producer.properties --consumer consumer.properties --topic orders
  weir explain --producer-set acks=all --consumer-set enable.auto.commit=false --assume replication.factor=3,min.insync.replicas=2 --verify`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runExplain(cmd, conn, &fl)
		},
	}
	f := cmd.Flags()
	f.StringVar(&fl.client, "client", "java", "whose property spellings and defaults: java, librdkafka or franz-go")
	f.StringVar(&fl.producerFile, "producer", "", "the producer's properties file")
	f.StringVar(&fl.consumerFile, "consumer", "", "the consumer's properties file")
	f.StringArrayVar(&fl.producerSet, "producer-set", nil, "a producer property, key=value (repeatable; overrides --producer)")
	f.StringArrayVar(&fl.consumerSet, "consumer-set", nil, "a consumer property, key=value (repeatable; overrides --consumer)")
	f.StringSliceVar(&fl.assume, "assume", nil, "topic settings to assume, e.g. replication.factor=3,min.insync.replicas=2 (override --topic's)")
	f.StringVar(&fl.topic, "topic", "", "read the topic's replication.factor, min.insync.replicas and unclean.leader.election.enable from the cluster")
	f.StringVar(&fl.bootstrap, "bootstrap", "", "the cluster --topic is on (default: --brokers)")
	f.BoolVar(&fl.verify, "verify", false, "run the matching 'weir lab' scenarios and compare what they measure with the prediction")
	f.IntVar(&fl.records, "verify-records", 300, "records each --verify scenario sends or reads")
	f.Int64Var(&fl.seed, "seed", 0, "seed of the --verify fault schedule (default: random, printed)")
	f.StringVar(&fl.brokerFaults, "unsafe-broker-faults", "", "extra --unsafe-faults rules for the --verify brokers, to check that a broken broker is noticed (never in production)")
	f.MarkHidden("unsafe-broker-faults")
	silence(cmd)
	return cmd
}

func runExplain(cmd *cobra.Command, conn *connFlags, fl *explainFlags) error {
	client, err := explain.ParseClient(fl.client)
	if err != nil {
		return fmt.Errorf("--client: %w", err)
	}
	in := explain.Input{Client: client, Producer: map[string]string{}, Consumer: map[string]string{}, Topic: map[string]string{}}
	for _, src := range []struct {
		file string
		sets []string
		flag string
		into map[string]string
	}{
		{fl.producerFile, fl.producerSet, "producer", in.Producer},
		{fl.consumerFile, fl.consumerSet, "consumer", in.Consumer},
	} {
		if src.file != "" {
			if err := readProperties(src.file, src.into); err != nil {
				return fmt.Errorf("--%s: %w", src.flag, err)
			}
		}
		if err := parsePairs("--"+src.flag+"-set", src.sets, src.into); err != nil {
			return err
		}
	}
	if fl.records < 100 {
		return errors.New("--verify-records must be at least 100")
	}
	topicFrom := ""
	if fl.topic != "" {
		addr := fl.bootstrap
		if addr == "" {
			addr = conn.brokers
		}
		seeds, err := parseBrokers(addr)
		if err != nil {
			return err
		}
		sec, err := conn.securityOpts()
		if err != nil {
			return err
		}
		if err := readTopicSettings(contextOf(cmd), append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, sec...), fl.topic, in.Topic); err != nil {
			return err
		}
		topicFrom = fmt.Sprintf("topic %s on %s", fl.topic, strings.Join(seeds, ","))
	} else if fl.bootstrap != "" {
		return errors.New("--bootstrap needs --topic")
	}
	if err := parsePairs("--assume", fl.assume, in.Topic); err != nil {
		return err
	}
	ex, err := explain.Explain(in)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	writeExplanation(out, ex, fl.topic, topicFrom, fl.assume)
	if !fl.verify {
		return nil
	}
	seed := fl.seed
	if !cmd.Flags().Changed("seed") {
		seed = rand.Int63n(1 << 31)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("verify: find the weir binary: %w", err)
	}
	fmt.Fprintf(out, "\nverify: running the weir lab scenarios of these settings (seed %d, %d records each)\n", seed, fl.records)
	ctx, stop := signal.NotifyContext(contextOf(cmd), os.Interrupt, syscall.SIGTERM)
	defer stop()
	checks, skipped, err := explain.Verify(ctx, ex, lab.Config{
		Exe: exe, Seed: seed, Records: fl.records, ConsumerRecords: fl.records,
		ExtraFaults: fl.brokerFaults, ScenarioTimeout: 90 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if writeChecks(out, checks, skipped) {
		return errPredictionContradicted
	}
	return nil
}

// readProperties reads a Java-style properties file: key=value, key:value
// or key value per line, # and ! comments.
func readProperties(path string, into map[string]string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		i := strings.IndexAny(line, "=: \t")
		if i <= 0 {
			return fmt.Errorf("%s:%d: want key=value, got %q", path, n, line)
		}
		k, v := line[:i], strings.TrimSpace(line[i+1:])
		v = strings.TrimSpace(strings.TrimLeft(v, "=:"))
		if strings.HasSuffix(v, `\`) {
			return fmt.Errorf("%s:%d: continued lines are not supported", path, n)
		}
		into[k] = v
	}
	return sc.Err()
}

// parsePairs reads key=value pairs into m.
func parsePairs(flag string, kvs []string, m map[string]string) error {
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if k = strings.TrimSpace(k); !ok || k == "" {
			return fmt.Errorf("invalid %s %q: want key=value", flag, kv)
		}
		m[k] = strings.TrimSpace(v)
	}
	return nil
}

// readTopicSettings reads the topic's replication factor (its smallest
// partition's replica count), min.insync.replicas and unclean election.
func readTopicSettings(ctx context.Context, base []kgo.Opt, topic string, into map[string]string) error {
	cl, err := kgo.NewClient(append(base, kgo.RequestRetries(2))...)
	if err != nil {
		return fmt.Errorf("--topic: %w", err)
	}
	adm := kadm.NewClient(cl)
	defer adm.Close()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return fmt.Errorf("--topic %s: %w", topic, err)
	}
	td, ok := md.Topics[topic]
	if !ok || td.Err != nil {
		if ok {
			err = td.Err
		}
		return fmt.Errorf("--topic %s: %v", topic, err)
	}
	rf := 0
	for _, p := range td.Partitions {
		if rf == 0 || len(p.Replicas) < rf {
			rf = len(p.Replicas)
		}
	}
	into["replication.factor"] = strconv.Itoa(rf)
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return fmt.Errorf("--topic %s: describe configs: %w", topic, err)
	}
	rc, err := rcs.On(topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return fmt.Errorf("--topic %s: describe configs: %w", topic, err)
	}
	for _, c := range rc.Configs {
		switch c.Key {
		case "min.insync.replicas", "unclean.leader.election.enable":
			into[c.Key] = c.MaybeValue()
		}
	}
	return nil
}
