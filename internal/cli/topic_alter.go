package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/weir-broker/weir/internal/brokererr"
)

func newTopicAlterCommand(conn *connFlags) *cobra.Command {
	var (
		partitions    int32
		configs       []string
		deleteConfigs []string
	)
	cmd := &cobra.Command{
		Use:   "alter NAME",
		Short: "Change a topic's configs (incrementally) or raise its partition count",
		Args:  exactArgs(1, "one topic NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			alters, err := configAlterations(configs, deleteConfigs)
			if err != nil {
				return err
			}
			if len(alters) == 0 && partitions < 0 {
				return fmt.Errorf("nothing to alter: give --partitions, --config or --delete-config")
			}
			adm, err := conn.admin()
			if err != nil {
				return err
			}
			defer adm.Close()
			name, ctx, out := args[0], cmd.Context(), cmd.OutOrStdout()
			if len(alters) > 0 {
				resps, err := adm.AlterTopicConfigs(ctx, alters, name)
				if err == nil {
					var r kadm.AlterConfigsResponse
					if r, err = resps.On(name, nil); err == nil {
						err = brokererr.WithMessage(r.Err, r.ErrMessage)
					}
				}
				if err != nil {
					return fmt.Errorf("alter configs of topic %q: %w", name, err)
				}
				fmt.Fprintf(out, "altered %d config(s) of topic %s\n", len(alters), name)
			}
			if partitions >= 0 {
				resps, err := adm.UpdatePartitions(ctx, int(partitions), name)
				if err == nil {
					var r kadm.CreatePartitionsResponse
					if r, err = resps.On(name, nil); err == nil {
						err = brokererr.WithMessage(r.Err, r.ErrMessage)
					}
				}
				if err != nil {
					return fmt.Errorf("set partitions of topic %q to %d: %w", name, partitions, err)
				}
				fmt.Fprintf(out, "topic %s now has %d partitions\n", name, partitions)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Int32Var(&partitions, "partitions", -1, "new total number of partitions (can only grow)")
	f.StringArrayVar(&configs, "config", nil, "set topic config key=value (repeatable)")
	f.StringArrayVar(&deleteConfigs, "delete-config", nil, "remove a topic config override, reverting to the default (repeatable)")
	return cmd
}

// configAlterations turns --config and --delete-config into incremental
// alter operations (KIP-339), refusing a key that is both set and deleted.
func configAlterations(set, del []string) ([]kadm.AlterConfig, error) {
	cfg, err := parseConfigs(set)
	if err != nil {
		return nil, err
	}
	var alters []kadm.AlterConfig
	for _, kv := range set {
		k, _, _ := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: cfg[k]})
	}
	seen := make(map[string]bool, len(del))
	for _, k := range del {
		k = strings.TrimSpace(k)
		switch {
		case k == "":
			return nil, fmt.Errorf("--delete-config needs a key")
		case cfg[k] != nil:
			return nil, fmt.Errorf("config %q is both set and deleted", k)
		case seen[k]:
			return nil, fmt.Errorf("--delete-config %q given more than once", k)
		}
		seen[k] = true
		alters = append(alters, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
	}
	return alters, nil
}
