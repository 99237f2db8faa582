// Package acl is Kafka's authorization model (KIP-11, with KIP-290's
// prefixed resource patterns): a binding allows or denies a principal,
// from a host, an operation on a resource named literally, by prefix or
// by the wildcard "*". An operation is allowed when some binding allows
// it and none denies it (deny wins); super users are allowed everything;
// a resource no binding names at all is open to everyone only when
// allow.everyone.if.no.acl.found says so. The package is pure: the
// bindings come from the metadata image and the decisions are the
// broker's to enforce.
package acl

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Resource and pattern names as the protocol numbers them.
const (
	Topic           = kmsg.ACLResourceTypeTopic
	Group           = kmsg.ACLResourceTypeGroup
	Cluster         = kmsg.ACLResourceTypeCluster
	TransactionalID = kmsg.ACLResourceTypeTransactionalId
	Literal         = kmsg.ACLResourcePatternTypeLiteral
	Prefixed        = kmsg.ACLResourcePatternTypePrefixed
	Allow           = kmsg.ACLPermissionTypeAllow
	Deny            = kmsg.ACLPermissionTypeDeny
)

// ClusterName is the one name a CLUSTER resource has.
const ClusterName = "kafka-cluster"

// Wildcard is the resource name, principal and host that match all.
const Wildcard = "*"

// Binding is one ACL.
type Binding struct {
	ResourceType kmsg.ACLResourceType        `json:"resourceType"`
	ResourceName string                      `json:"resourceName"`
	PatternType  kmsg.ACLResourcePatternType `json:"patternType"`
	Principal    string                      `json:"principal"`
	Host         string                      `json:"host"`
	Operation    kmsg.ACLOperation           `json:"operation"`
	Permission   kmsg.ACLPermissionType      `json:"permission"`
}

func (b Binding) String() string {
	return fmt.Sprintf("(%s %s on %s %s:%s from %s)", b.Permission, b.Operation, b.PatternType, b.ResourceType, b.ResourceName, b.Host)
}

// ErrInvalid is wrapped by the errors Validate returns.
var ErrInvalid = errors.New("invalid ACL")

// Validate checks a binding CreateAcls would store, as Kafka checks it.
func (b Binding) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	switch b.ResourceType {
	case Topic, Group, Cluster, TransactionalID, kmsg.ACLResourceTypeDelegationToken, kmsg.ACLResourceTypeUser:
	default:
		return bad("resource type %s cannot hold ACLs", b.ResourceType)
	}
	if b.PatternType != Literal && b.PatternType != Prefixed {
		return bad("pattern type %s: an ACL is LITERAL or PREFIXED", b.PatternType)
	}
	if b.ResourceName == "" {
		return bad("the resource name is empty")
	}
	if b.ResourceType == Cluster && (b.ResourceName != ClusterName || b.PatternType != Literal) {
		return bad("the cluster resource is the literal %q", ClusterName)
	}
	if b.PatternType == Prefixed && b.ResourceName == Wildcard {
		return bad("a prefixed pattern cannot be %q; use a literal %q for all", Wildcard, Wildcard)
	}
	kind, name, ok := strings.Cut(b.Principal, ":")
	if !ok || kind == "" || name == "" {
		return bad("principal %q: want TYPE:NAME, e.g. User:alice or User:*", b.Principal)
	}
	if b.Host != Wildcard && net.ParseIP(b.Host) == nil {
		return bad("host %q: want an IP address or %q", b.Host, Wildcard)
	}
	switch b.Operation {
	case kmsg.ACLOperationAny, kmsg.ACLOperationUnknown:
		return bad("operation %s: an ACL names one operation or ALL", b.Operation)
	}
	if b.Operation < kmsg.ACLOperationAll || b.Operation > kmsg.ACLOperationDescribeTokens {
		return bad("unknown operation %d", b.Operation)
	}
	if b.Permission != Allow && b.Permission != Deny {
		return bad("permission %s: an ACL is ALLOW or DENY", b.Permission)
	}
	return nil
}

// Filter selects bindings, as DescribeAcls and DeleteAcls give them: a
// nil name, principal or host and the ANY type, pattern, operation and
// permission match everything; the MATCH pattern matches the bindings
// that would apply to a resource of that name (literal, wildcard and
// prefixes of it).
type Filter struct {
	ResourceType kmsg.ACLResourceType
	ResourceName *string
	PatternType  kmsg.ACLResourcePatternType
	Principal    *string
	Host         *string
	Operation    kmsg.ACLOperation
	Permission   kmsg.ACLPermissionType
}

// Validate checks a filter's enumerations.
func (f Filter) Validate() error {
	switch {
	case f.ResourceType == kmsg.ACLResourceTypeUnknown || f.ResourceType > kmsg.ACLResourceTypeUser:
		return fmt.Errorf("%w: filter resource type %d", ErrInvalid, f.ResourceType)
	case f.PatternType == kmsg.ACLResourcePatternTypeUnknown || f.PatternType > Prefixed:
		return fmt.Errorf("%w: filter pattern type %d", ErrInvalid, f.PatternType)
	case f.Operation == kmsg.ACLOperationUnknown || f.Operation > kmsg.ACLOperationDescribeTokens:
		return fmt.Errorf("%w: filter operation %d", ErrInvalid, f.Operation)
	case f.Permission == kmsg.ACLPermissionTypeUnknown || f.Permission > Allow:
		return fmt.Errorf("%w: filter permission %d", ErrInvalid, f.Permission)
	}
	return nil
}

// Matches reports whether b is selected by f.
func (f Filter) Matches(b Binding) bool {
	if f.ResourceType != kmsg.ACLResourceTypeAny && f.ResourceType != b.ResourceType {
		return false
	}
	if f.Principal != nil && *f.Principal != b.Principal {
		return false
	}
	if f.Host != nil && *f.Host != b.Host {
		return false
	}
	if f.Operation != kmsg.ACLOperationAny && f.Operation != b.Operation {
		return false
	}
	if f.Permission != kmsg.ACLPermissionTypeAny && f.Permission != b.Permission {
		return false
	}
	switch f.PatternType {
	case kmsg.ACLResourcePatternTypeAny:
		return f.ResourceName == nil || *f.ResourceName == b.ResourceName
	case kmsg.ACLResourcePatternTypeMatch:
		return f.ResourceName == nil || appliesTo(b, *f.ResourceName)
	default:
		return f.PatternType == b.PatternType && (f.ResourceName == nil || *f.ResourceName == b.ResourceName)
	}
}

// appliesTo reports whether b's pattern covers the resource named name.
func appliesTo(b Binding, name string) bool {
	if b.PatternType == Prefixed {
		return strings.HasPrefix(name, b.ResourceName)
	}
	return b.ResourceName == name || b.ResourceName == Wildcard
}
