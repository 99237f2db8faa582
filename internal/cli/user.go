package cli

// weir user add|list|remove: SCRAM users (KIP-554), through
// AlterUserScramCredentials and DescribeUserScramCredentials on a running
// broker, or, for the first user of a node not yet started, written into
// its data directory with --data (as `kafka-storage format --add-scram`
// does), since a broker that requires authentication lets nobody in to
// add one.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/weir-broker/weir/internal/brokererr"
	"github.com/weir-broker/weir/internal/security"
)

func newUserCommand(conn *connFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Add, list and remove SCRAM users",
	}
	var (
		mechanism, dataDir string
		passwordStdin      bool
		iterations         int
	)
	add := &cobra.Command{
		Use:   "add NAME --mechanism SCRAM-SHA-512 --password-stdin",
		Short: "Add a user or change its password",
		Long: `Add a SCRAM user, or set a new password for one, reading the password
from the first line of standard input.

With --data DIR the credential is written into the data directory of a
node that has not started yet, and the node applies it at its first start:
the way to create the first user of a cluster that requires
authentication. Give every voter's directory the same users.`,
		Args: exactArgs(1, "the user name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !passwordStdin {
				return errors.New("weir user add: --password-stdin is required: the password is read from standard input, never from a flag")
			}
			password, err := readPassword(cmd.InOrStdin())
			if err != nil {
				return err
			}
			mech, err := scramMechanism(mechanism)
			if err != nil {
				return err
			}
			if dataDir != "" {
				cred, err := security.NewCredential(mech.String(), password, iterations)
				if err != nil {
					return fmt.Errorf("weir user add: %w", err)
				}
				if err := security.AddBootstrapCredential(dataDir, args[0], mech.String(), cred); err != nil {
					return fmt.Errorf("weir user add: %w", err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "user %s (%s) written to %s; it is created at the node's first start\n", args[0], mech, dataDir)
				return nil
			}
			adm, err := conn.admin()
			if err != nil {
				return err
			}
			defer adm.Close()
			res, err := adm.AlterUserSCRAMs(contextOf(cmd), nil, []kadm.UpsertSCRAM{{User: args[0], Mechanism: mech, Iterations: int32(iterations), Password: password}})
			if err != nil {
				return fmt.Errorf("weir user add: %w", err)
			}
			for _, r := range res {
				if r.Err != nil {
					return fmt.Errorf("weir user add %s: %w", r.User, brokererr.WithMessage(r.Err, r.ErrMessage))
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s: %s credential set\n", args[0], mech)
			return nil
		},
	}
	add.Flags().StringVar(&mechanism, "mechanism", security.ScramSHA512, "SCRAM-SHA-256 or SCRAM-SHA-512")
	add.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input (required)")
	add.Flags().IntVar(&iterations, "iterations", security.MinIterations, fmt.Sprintf("SCRAM iterations, %d to %d", security.MinIterations, security.MaxIterations))
	add.Flags().StringVar(&dataDir, "data", "", "write the user into this data directory of a node not started yet, instead of asking a broker")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the users and their SCRAM mechanisms",
		Args:  cobra.NoArgs,
		RunE: conn.withAdmin(func(cmd *cobra.Command, _ []string, adm *kadm.Client) error {
			users, err := adm.DescribeUserSCRAMs(contextOf(cmd))
			if err != nil {
				return fmt.Errorf("weir user list: %w", err)
			}
			for _, u := range users.Sorted() {
				if u.Err != nil {
					return fmt.Errorf("weir user list %s: %w", u.User, brokererr.WithMessage(u.Err, u.ErrMessage))
				}
				var mechs []string
				for _, ci := range u.CredInfos {
					mechs = append(mechs, fmt.Sprintf("%s(%d)", ci.Mechanism, ci.Iterations))
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", u.User, strings.Join(mechs, ","))
			}
			return nil
		}),
	}

	var removeMech string
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a user's SCRAM credentials (all of them, or --mechanism's)",
		Args:  exactArgs(1, "the user name"),
		RunE: conn.withAdmin(func(cmd *cobra.Command, args []string, adm *kadm.Client) error {
			var dels []kadm.DeleteSCRAM
			if removeMech != "" {
				mech, err := scramMechanism(removeMech)
				if err != nil {
					return err
				}
				dels = append(dels, kadm.DeleteSCRAM{User: args[0], Mechanism: mech})
			} else {
				users, err := adm.DescribeUserSCRAMs(contextOf(cmd), args[0])
				if err != nil {
					return fmt.Errorf("weir user remove: %w", err)
				}
				u := users[args[0]]
				if u.Err != nil {
					return fmt.Errorf("weir user remove %s: %w", args[0], brokererr.WithMessage(u.Err, u.ErrMessage))
				}
				for _, ci := range u.CredInfos {
					dels = append(dels, kadm.DeleteSCRAM{User: args[0], Mechanism: ci.Mechanism})
				}
			}
			res, err := adm.AlterUserSCRAMs(contextOf(cmd), dels, nil)
			if err != nil {
				return fmt.Errorf("weir user remove: %w", err)
			}
			for _, r := range res {
				if r.Err != nil {
					return fmt.Errorf("weir user remove %s: %w", r.User, brokererr.WithMessage(r.Err, r.ErrMessage))
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s removed\n", args[0])
			return nil
		}),
	}
	remove.Flags().StringVar(&removeMech, "mechanism", "", "remove only this mechanism's credential")
	silence(cmd, add, list, remove)
	cmd.AddCommand(add, list, remove)
	return cmd
}

func scramMechanism(s string) (kadm.ScramMechanism, error) {
	switch strings.ToUpper(s) {
	case security.ScramSHA256:
		return kadm.ScramSha256, nil
	case security.ScramSHA512:
		return kadm.ScramSha512, nil
	}
	return 0, fmt.Errorf("--mechanism %q: want SCRAM-SHA-256 or SCRAM-SHA-512", s)
}

// readPassword reads the first line of r.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the password from standard input: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("weir user add: the password read from standard input is empty")
	}
	return line, nil
}
