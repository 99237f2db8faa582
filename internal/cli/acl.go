package cli

// weir acl add|list|remove: ACLs (KIP-11, KIP-290) through CreateAcls,
// DescribeAcls and DeleteAcls, with kafka-acls' flag names.

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/acl"
	"github.com/weir-broker/weir/internal/brokererr"
)

// aclFlags are the flags add, list and remove share.
type aclFlags struct {
	allow, deny  []string // principals
	host         string
	operations   []string
	topic, group string
	txnID        string
	cluster      bool
	pattern      string
}

func (f *aclFlags) register(cmd *cobra.Command, forFilter bool) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.allow, "allow-principal", nil, "principal allowed, e.g. User:app (repeatable)")
	fl.StringArrayVar(&f.deny, "deny-principal", nil, "principal denied (repeatable)")
	fl.StringVar(&f.host, "host", "*", "host the principal connects from: an IP address or *")
	fl.StringArrayVar(&f.operations, "operation", nil, "read, write, create, delete, alter, describe, cluster_action, describe_configs, alter_configs, idempotent_write or all (repeatable)")
	fl.StringVar(&f.topic, "topic", "", "a topic (or a prefix, or *)")
	fl.StringVar(&f.group, "group", "", "a consumer group (or a prefix, or *)")
	fl.StringVar(&f.txnID, "transactional-id", "", "a transactional id (or a prefix, or *)")
	fl.BoolVar(&f.cluster, "cluster", false, "the cluster")
	def := "literal"
	if forFilter {
		def = "any"
	}
	fl.StringVar(&f.pattern, "resource-pattern-type", def, "literal or prefixed (list and remove also take any and match)")
}

// resource is the one resource the flags name.
func (f *aclFlags) resource(required bool) (kmsg.ACLResourceType, *string, error) {
	var rt kmsg.ACLResourceType
	var name string
	n := 0
	for _, c := range []struct {
		set  bool
		rt   kmsg.ACLResourceType
		name string
	}{{f.topic != "", acl.Topic, f.topic}, {f.group != "", acl.Group, f.group}, {f.txnID != "", acl.TransactionalID, f.txnID}, {f.cluster, acl.Cluster, acl.ClusterName}} {
		if c.set {
			n++
			rt, name = c.rt, c.name
		}
	}
	switch {
	case n > 1:
		return 0, nil, errors.New("name one resource: --topic, --group, --transactional-id or --cluster")
	case n == 0 && required:
		return 0, nil, errors.New("name a resource: --topic, --group, --transactional-id or --cluster")
	case n == 0:
		return kmsg.ACLResourceTypeAny, nil, nil
	}
	return rt, &name, nil
}

func parseOperation(s string) (kmsg.ACLOperation, error) {
	op, err := kmsg.ParseACLOperation(strings.ReplaceAll(strings.ToLower(s), "_", ""))
	if err != nil || op == kmsg.ACLOperationUnknown {
		return 0, fmt.Errorf("--operation %q: want read, write, create, delete, alter, describe, cluster_action, describe_configs, alter_configs, idempotent_write or all", s)
	}
	return op, nil
}

func parsePattern(s string) (kmsg.ACLResourcePatternType, error) {
	p, err := kmsg.ParseACLResourcePatternType(strings.ToLower(s))
	if err != nil || p == kmsg.ACLResourcePatternTypeUnknown {
		return 0, fmt.Errorf("--resource-pattern-type %q: want literal, prefixed, any or match", s)
	}
	return p, nil
}

// principals pairs each principal with its permission.
func (f *aclFlags) principals() []struct {
	p    string
	perm kmsg.ACLPermissionType
} {
	var out []struct {
		p    string
		perm kmsg.ACLPermissionType
	}
	for _, p := range f.allow {
		out = append(out, struct {
			p    string
			perm kmsg.ACLPermissionType
		}{p, acl.Allow})
	}
	for _, p := range f.deny {
		out = append(out, struct {
			p    string
			perm kmsg.ACLPermissionType
		}{p, acl.Deny})
	}
	return out
}

func newACLCommand(conn *connFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "acl", Short: "Add, list and remove ACLs"}
	var addF, listF, rmF aclFlags
	add := &cobra.Command{
		Use:   "add --allow-principal User:NAME --operation OP --topic T",
		Short: "Add ACLs: each principal × operation on the resource",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rt, name, err := addF.resource(true)
			if err != nil {
				return err
			}
			pt, err := parsePattern(addF.pattern)
			if err != nil {
				return err
			}
			if len(addF.operations) == 0 || len(addF.principals()) == 0 {
				return errors.New("weir acl add: give --operation and --allow-principal or --deny-principal")
			}
			req := kmsg.NewPtrCreateACLsRequest()
			for _, pp := range addF.principals() {
				for _, o := range addF.operations {
					op, err := parseOperation(o)
					if err != nil {
						return err
					}
					c := kmsg.NewCreateACLsRequestCreation()
					c.ResourceType, c.ResourceName, c.ResourcePatternType = rt, *name, pt
					c.Principal, c.Host, c.Operation, c.PermissionType = pp.p, addF.host, op, pp.perm
					req.Creations = append(req.Creations, c)
				}
			}
			return withClient(conn, cmd, func(cl *kgo.Client) error {
				resp, err := req.RequestWith(contextOf(cmd), cl)
				if err != nil {
					return fmt.Errorf("weir acl add: %w", err)
				}
				for _, r := range resp.Results {
					if err := brokerError(r.ErrorCode, r.ErrorMessage); err != nil {
						return fmt.Errorf("weir acl add: %w", err)
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d ACL(s) added\n", len(req.Creations))
				return nil
			})
		},
	}
	addF.register(add, false)

	list := &cobra.Command{
		Use:   "list",
		Short: "List ACLs, all or those the flags select",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filters, err := listF.filters()
			if err != nil {
				return err
			}
			return withClient(conn, cmd, func(cl *kgo.Client) error {
				for _, f := range filters {
					req := kmsg.NewPtrDescribeACLsRequest()
					req.ResourceType, req.ResourceName, req.ResourcePatternType = f.ResourceType, f.ResourceName, f.PatternType
					req.Principal, req.Host, req.Operation, req.PermissionType = f.Principal, f.Host, f.Operation, f.Permission
					resp, err := req.RequestWith(contextOf(cmd), cl)
					if err != nil {
						return fmt.Errorf("weir acl list: %w", err)
					}
					if err := brokerError(resp.ErrorCode, resp.ErrorMessage); err != nil {
						return fmt.Errorf("weir acl list: %w", err)
					}
					for _, r := range resp.Resources {
						for _, a := range r.ACLs {
							fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s:%s\t%s\t%s\t%s\n", a.Principal, a.PermissionType, r.ResourceType, r.ResourceName, r.ResourcePatternType, a.Operation, a.Host)
						}
					}
				}
				return nil
			})
		},
	}
	listF.register(list, true)

	remove := &cobra.Command{
		Use:   "remove",
		Short: "Remove the ACLs the flags select",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filters, err := rmF.filters()
			if err != nil {
				return err
			}
			if rmF.topic == "" && rmF.group == "" && rmF.txnID == "" && !rmF.cluster && len(rmF.allow)+len(rmF.deny) == 0 {
				return errors.New("weir acl remove: name a resource or a principal; removing every ACL takes --topic '*' style filters on purpose")
			}
			req := kmsg.NewPtrDeleteACLsRequest()
			for _, f := range filters {
				df := kmsg.NewDeleteACLsRequestFilter()
				df.ResourceType, df.ResourceName, df.ResourcePatternType = f.ResourceType, f.ResourceName, f.PatternType
				df.Principal, df.Host, df.Operation, df.PermissionType = f.Principal, f.Host, f.Operation, f.Permission
				req.Filters = append(req.Filters, df)
			}
			return withClient(conn, cmd, func(cl *kgo.Client) error {
				resp, err := req.RequestWith(contextOf(cmd), cl)
				if err != nil {
					return fmt.Errorf("weir acl remove: %w", err)
				}
				n := 0
				for _, r := range resp.Results {
					if err := brokerError(r.ErrorCode, r.ErrorMessage); err != nil {
						return fmt.Errorf("weir acl remove: %w", err)
					}
					n += len(r.MatchingACLs)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d ACL(s) removed\n", n)
				return nil
			})
		},
	}
	rmF.register(remove, true)
	silence(cmd, add, list, remove)
	cmd.AddCommand(add, list, remove)
	return cmd
}

// filters turns list/remove flags into filters: one per principal given
// (any principal when none), each for each operation given (any when
// none).
func (f *aclFlags) filters() ([]acl.Filter, error) {
	rt, name, err := f.resource(false)
	if err != nil {
		return nil, err
	}
	pt, err := parsePattern(f.pattern)
	if err != nil {
		return nil, err
	}
	ops := []kmsg.ACLOperation{kmsg.ACLOperationAny}
	if len(f.operations) > 0 {
		ops = ops[:0]
		for _, o := range f.operations {
			op, err := parseOperation(o)
			if err != nil {
				return nil, err
			}
			ops = append(ops, op)
		}
	}
	type pp struct {
		p    *string
		perm kmsg.ACLPermissionType
	}
	pps := []pp{{nil, kmsg.ACLPermissionTypeAny}}
	if ps := f.principals(); len(ps) > 0 {
		pps = pps[:0]
		for _, p := range ps {
			p := p
			pps = append(pps, pp{&p.p, p.perm})
		}
	}
	var host *string
	if f.host != "*" {
		host = &f.host
	}
	var out []acl.Filter
	for _, p := range pps {
		for _, op := range ops {
			out = append(out, acl.Filter{ResourceType: rt, ResourceName: name, PatternType: pt, Principal: p.p, Host: host, Operation: op, Permission: p.perm})
		}
	}
	return out, nil
}

// withClient opens a client from the connection flags for fn.
func withClient(conn *connFlags, cmd *cobra.Command, fn func(cl *kgo.Client) error) error {
	cl, err := conn.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	return fn(cl)
}

// brokerError is a broker's error code and message as one error, or nil.
func brokerError(code int16, msg *string) error {
	if code == 0 {
		return nil
	}
	m := ""
	if msg != nil {
		m = *msg
	}
	return brokererr.WithMessage(kerr.ErrorForCode(code), m)
}
