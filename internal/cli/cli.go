package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// defaultBrokers is used when neither --brokers nor WEIR_BROKERS is set.
const defaultBrokers = "127.0.0.1:9092"

// brokersEnv names the environment variable that overrides defaultBrokers.
const brokersEnv = "WEIR_BROKERS"

// AddClientCommands adds the client commands (topic, produce, consume,
// bench, group, producers, txn, lab, outbox, explain and cluster describe)
// to root.
// Each of them takes a --brokers flag, a comma-separated list of host:port
// seeds that defaults to $WEIR_BROKERS or 127.0.0.1:9092.
func AddClientCommands(root *cobra.Command) {
	conn := &connFlags{}
	for _, cmd := range []*cobra.Command{
		newTopicCommand(conn),
		newProduceCommand(conn),
		newConsumeCommand(conn),
		newBenchCommand(conn),
		newGroupCommand(conn),
		newProducersCommand(conn),
		newTxnCommand(conn),
		newLabCommand(conn),
		newOutboxCommand(conn),
		newExplainCommand(conn),
		newUserCommand(conn),
		newACLCommand(conn),
	} {
		conn.register(cmd)
		root.AddCommand(cmd)
	}
	// `cluster up` takes no --brokers: only `cluster describe` has it.
	root.AddCommand(newClusterCommand(conn))
}

// connFlags holds the flags every client command shares. The same variable
// backs the --brokers flag of each command group, since only one group runs
// per invocation.
type connFlags struct {
	brokers       string
	commandConfig string
	commandProps  []string // --command-property KEY=VALUE, over the file's
}

func (c *connFlags) register(cmd *cobra.Command) {
	def := os.Getenv(brokersEnv)
	if def == "" {
		def = defaultBrokers
	}
	cmd.PersistentFlags().StringVar(&c.brokers, "brokers", def,
		"comma-separated host:port list of seed brokers (env "+brokersEnv+")")
	cmd.PersistentFlags().StringVar(&c.commandConfig, "command-config", "",
		"properties file with the client's security settings in Kafka's names (security.protocol, sasl.mechanism, sasl.jaas.config, ssl.truststore.location, …)")
	cmd.PersistentFlags().StringArrayVar(&c.commandProps, "command-property", nil,
		"one client security setting as KEY=VALUE, over --command-config's (repeatable; a password here shows in the process list, the file keeps it out)")
}

// baseOpts are the options every client of the command starts from: the
// seeds and the security settings.
func (c *connFlags) baseOpts() ([]kgo.Opt, error) {
	seeds, err := c.seeds()
	if err != nil {
		return nil, err
	}
	sec, err := c.securityOpts()
	if err != nil {
		return nil, err
	}
	return append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, sec...), nil
}

// securityOpts are the --command-config and --command-property security
// settings alone, for commands whose workloads build their own clients
// from the seeds.
func (c *connFlags) securityOpts() ([]kgo.Opt, error) {
	return clientSecurity(c.commandConfig, c.commandProps)
}

// seeds returns the parsed --brokers list.
func (c *connFlags) seeds() ([]string, error) {
	return parseBrokers(c.brokers)
}

// client returns a kgo client seeded from --brokers with opts applied.
func (c *connFlags) client(opts ...kgo.Opt) (*kgo.Client, error) {
	base, err := c.baseOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("create client: %w", err)
	}
	return cl, nil
}

// admin returns an admin client seeded from --brokers; closing it closes
// the underlying kgo client.
func (c *connFlags) admin() (*kadm.Client, error) {
	cl, err := c.client()
	if err != nil {
		return nil, err
	}
	return kadm.NewClient(cl), nil
}

// withAdmin makes a RunE that opens an admin client from --brokers, runs
// fn with it and closes it.
func (c *connFlags) withAdmin(fn func(cmd *cobra.Command, args []string, adm *kadm.Client) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		adm, err := c.admin()
		if err != nil {
			return err
		}
		defer adm.Close()
		return fn(cmd, args, adm)
	}
}

// parseBrokers splits a comma-separated broker list, ignoring blanks.
func parseBrokers(s string) ([]string, error) {
	var seeds []string
	for b := range strings.SplitSeq(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			seeds = append(seeds, b)
		}
	}
	if len(seeds) == 0 {
		return nil, fmt.Errorf("no brokers given: set --brokers or %s", brokersEnv)
	}
	return seeds, nil
}

// silence stops cobra from printing usage or the error itself when RunE
// fails: the root command reports errors in one line.
func silence(cmds ...*cobra.Command) {
	for _, c := range cmds {
		c.SilenceUsage = true
		c.SilenceErrors = true
	}
}

// exactArgs is cobra.ExactArgs with a message naming what is missing.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s: want %s, got %d argument(s)", cmd.CommandPath(), what, len(args))
		}
		return nil
	}
}

// minArgs is cobra.MinimumNArgs with a message naming what is missing.
func minArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return fmt.Errorf("%s: want %s", cmd.CommandPath(), what)
		}
		return nil
	}
}
