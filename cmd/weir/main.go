// Command weir is the Weir broker and its command-line client in one
// binary: `weir serve` runs a broker; the other commands talk to any
// Kafka-compatible cluster.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weir-broker/weir/internal/cli"
)

func main() {
	root := &cobra.Command{
		Use:           "weir",
		Short:         "Weir: a Kafka-compatible broker whose delivery guarantees hold",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCommand())
	cli.AddClientCommands(root)
	if cluster, _, err := root.Find([]string{"cluster"}); err == nil && cluster != root {
		cluster.AddCommand(newClusterUpCommand())
	}
	if err := root.Execute(); err != nil {
		// Errors from pkg/weir already name the package.
		fmt.Fprintln(os.Stderr, "weir:", strings.TrimPrefix(err.Error(), "weir: "))
		os.Exit(1)
	}
}
