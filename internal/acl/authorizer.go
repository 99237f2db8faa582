package acl

import (
	"net"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// StandardAuthorizer is the authorizer.class.name that turns enforcement
// on, Kafka's own for KRaft clusters.
const StandardAuthorizer = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"

// Settings are the authorizer's broker settings.
type Settings struct {
	// Enabled is authorizer.class.name naming StandardAuthorizer.
	Enabled bool
	// SuperUsers are super.users' principals.
	SuperUsers []string
	// AllowIfNoACL is allow.everyone.if.no.acl.found.
	AllowIfNoACL bool
}

// ParseSuperUsers reads super.users: principals separated by ';' (as in
// Kafka, since a principal may hold a comma).
func ParseSuperUsers(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ";") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Authorizer decides requests against one set of bindings. It is
// immutable: the broker builds a new one when the bindings change and
// swaps it in, so decisions take no lock.
type Authorizer struct {
	settings Settings
	super    map[string]bool
	// literal holds the literal bindings by resource type and name (the
	// wildcard "*" among them); prefixed the prefixed ones by type.
	literal  map[kmsg.ACLResourceType]map[string][]Binding
	prefixed map[kmsg.ACLResourceType][]Binding
}

// New builds an authorizer over bindings.
func New(s Settings, bindings []Binding) *Authorizer {
	a := &Authorizer{settings: s, super: make(map[string]bool), literal: make(map[kmsg.ACLResourceType]map[string][]Binding), prefixed: make(map[kmsg.ACLResourceType][]Binding)}
	for _, p := range s.SuperUsers {
		a.super[p] = true
	}
	for _, b := range bindings {
		b.Host = CanonicalHost(b.Host)
		if b.PatternType == Prefixed {
			a.prefixed[b.ResourceType] = append(a.prefixed[b.ResourceType], b)
			continue
		}
		m := a.literal[b.ResourceType]
		if m == nil {
			m = make(map[string][]Binding)
			a.literal[b.ResourceType] = m
		}
		m[b.ResourceName] = append(m[b.ResourceName], b)
	}
	return a
}

// CanonicalHost writes an IP address one way (Java spells ::1 as
// 0:0:0:0:0:0:0:1, and ACLs are written either way), so that an ACL's
// host matches the client's address however either is spelled; other
// strings ("*") are kept.
func CanonicalHost(h string) string {
	if ip := net.ParseIP(h); ip != nil {
		return ip.String()
	}
	return h
}

// SuperUsersOnly is the authorizer of a node that has not caught up with
// the metadata yet: its ACLs may be stale, so only super users are
// allowed anything (Kafka's authorizer refuses until its initial load).
func (a *Authorizer) SuperUsersOnly() *Authorizer {
	return &Authorizer{settings: Settings{Enabled: a.settings.Enabled}, super: a.super}
}

// Enabled reports whether requests are checked at all.
func (a *Authorizer) Enabled() bool { return a != nil && a.settings.Enabled }

// Allowed reports whether principal, connected from host, may perform op
// on the resource of type rt named name.
func (a *Authorizer) Allowed(principal, host string, op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) bool {
	if !a.Enabled() || a.super[principal] {
		return true
	}
	found, allowed, denied := false, false, false
	visit := func(b Binding) {
		found = true
		if b.Principal != principal && b.Principal != "User:"+Wildcard {
			return
		}
		if b.Host != host && b.Host != Wildcard {
			return
		}
		if b.Permission == Deny {
			if b.Operation == op || b.Operation == kmsg.ACLOperationAll {
				denied = true
			}
			return
		}
		if grants(b.Operation, op) {
			allowed = true
		}
	}
	if m := a.literal[rt]; m != nil {
		for _, b := range m[name] {
			visit(b)
		}
		if name != Wildcard {
			for _, b := range m[Wildcard] {
				visit(b)
			}
		}
	}
	for _, b := range a.prefixed[rt] {
		if strings.HasPrefix(name, b.ResourceName) {
			visit(b)
		}
	}
	if denied {
		return false
	}
	if allowed {
		return true
	}
	return !found && a.settings.AllowIfNoACL
}

// AllowedAny reports whether principal may perform op on some resource of
// type rt: what Kafka asks when a right on any topic will do (an
// idempotent producer without IDEMPOTENT_WRITE, KIP-679).
func (a *Authorizer) AllowedAny(principal, host string, op kmsg.ACLOperation, rt kmsg.ACLResourceType) bool {
	if !a.Enabled() || a.super[principal] {
		return true
	}
	check := func(bs []Binding) bool {
		for _, b := range bs {
			if b.Permission == Allow && grants(b.Operation, op) &&
				(b.Principal == principal || b.Principal == "User:"+Wildcard) && (b.Host == host || b.Host == Wildcard) &&
				a.Allowed(principal, host, op, rt, sampleName(b)) {
				return true
			}
		}
		return false
	}
	for _, bs := range a.literal[rt] {
		if check(bs) {
			return true
		}
	}
	if check(a.prefixed[rt]) {
		return true
	}
	// As Kafka's authorizeByResourceType: a resource of a name no ACL
	// names (none but the wildcard's) may be open to everyone.
	return a.settings.AllowIfNoACL && a.Allowed(principal, host, op, rt, unnamedResource)
}

// unnamedResource is a resource name no ACL can name (ACL names are
// validated non-empty and printable): only wildcard ACLs cover it.
const unnamedResource = "\x00"

// sampleName is a resource name the binding's pattern covers.
func sampleName(b Binding) string { return b.ResourceName }

// grants reports whether an ALLOW of have grants want: ALL grants every
// operation, and READ, WRITE, DELETE and ALTER imply DESCRIBE, and
// ALTER_CONFIGS implies DESCRIBE_CONFIGS, as in Kafka.
func grants(have, want kmsg.ACLOperation) bool {
	if have == want || have == kmsg.ACLOperationAll {
		return true
	}
	switch want {
	case kmsg.ACLOperationDescribe:
		switch have {
		case kmsg.ACLOperationRead, kmsg.ACLOperationWrite, kmsg.ACLOperationDelete, kmsg.ACLOperationAlter:
			return true
		}
	case kmsg.ACLOperationDescribeConfigs:
		return have == kmsg.ACLOperationAlterConfigs
	}
	return false
}
