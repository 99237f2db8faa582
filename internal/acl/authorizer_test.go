package acl

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func bind(rt kmsg.ACLResourceType, name string, pt kmsg.ACLResourcePatternType, principal, host string, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) Binding {
	return Binding{ResourceType: rt, ResourceName: name, PatternType: pt, Principal: principal, Host: host, Operation: op, Permission: perm}
}

func TestAuthorizerFollowsKafkasRules(t *testing.T) {
	const (
		read     = kmsg.ACLOperationRead
		write    = kmsg.ACLOperationWrite
		describe = kmsg.ACLOperationDescribe
		all      = kmsg.ACLOperationAll
	)
	bindings := []Binding{
		bind(Topic, "orders", Literal, "User:app", "*", write, Allow),
		bind(Topic, "orders", Literal, "User:app", "10.0.0.9", write, Deny),
		bind(Topic, "logs-", Prefixed, "User:*", "*", read, Allow),
		bind(Topic, "logs-secret", Literal, "User:bob", "*", all, Deny),
		bind(Topic, "*", Literal, "User:auditor", "*", describe, Allow),
		bind(Group, "g", Literal, "User:app", "*", read, Allow),
	}
	a := New(Settings{Enabled: true, SuperUsers: []string{"User:admin"}}, bindings)
	for _, tc := range []struct {
		principal, host string
		op              kmsg.ACLOperation
		rt              kmsg.ACLResourceType
		name            string
		want            bool
	}{
		{"User:app", "10.0.0.1", write, Topic, "orders", true},
		{"User:app", "10.0.0.9", write, Topic, "orders", false},     // deny from that host wins
		{"User:app", "10.0.0.1", describe, Topic, "orders", true},   // WRITE implies DESCRIBE
		{"User:app", "10.0.0.1", read, Topic, "orders", false},      // nothing grants READ
		{"User:other", "10.0.0.1", write, Topic, "orders", false},   // ACLs exist for the topic: no fallback
		{"User:bob", "10.0.0.1", read, Topic, "logs-app", true},     // prefixed, wildcard principal
		{"User:bob", "10.0.0.1", read, Topic, "logs-secret", false}, // a literal DENY ALL beats the prefixed ALLOW
		{"User:auditor", "10.0.0.1", describe, Topic, "any", true},  // wildcard resource
		{"User:auditor", "10.0.0.1", read, Topic, "any", false},     // DESCRIBE does not imply READ
		{"User:admin", "10.0.0.9", write, Topic, "orders", true},    // super user
		{"User:app", "10.0.0.1", read, Group, "g", true},            //
		{"User:app", "10.0.0.1", read, Group, "other", false},       // no ACL, and no fallback
		{"User:app", "10.0.0.1", kmsg.ACLOperationCreate, Cluster, ClusterName, false},
	} {
		if got := a.Allowed(tc.principal, tc.host, tc.op, tc.rt, tc.name); got != tc.want {
			t.Errorf("%s from %s %s %s %q: %v, want %v", tc.principal, tc.host, tc.op, tc.rt, tc.name, got, tc.want)
		}
	}
	open := New(Settings{Enabled: true, AllowIfNoACL: true}, bindings)
	if !open.Allowed("User:x", "1.2.3.4", read, Group, "unnamed") {
		t.Error("allow.everyone.if.no.acl.found: a resource no ACL names was refused")
	}
	if open.Allowed("User:x", "1.2.3.4", read, Group, "g") {
		t.Error("allow.everyone.if.no.acl.found opened a resource that has ACLs")
	}
	if !New(Settings{}, bindings).Allowed("User:x", "1.2.3.4", write, Topic, "orders") {
		t.Error("without authorizer.class.name everything must be allowed")
	}
	if !a.AllowedAny("User:app", "10.0.0.1", write, Topic) || a.AllowedAny("User:bob", "10.0.0.1", write, Topic) {
		t.Error("AllowedAny: app may write some topic, bob none")
	}
}

func TestFilterSelectsAsDescribeAndDeleteAclsDo(t *testing.T) {
	lit := bind(Topic, "orders", Literal, "User:app", "*", kmsg.ACLOperationWrite, Allow)
	pre := bind(Topic, "ord", Prefixed, "User:app", "*", kmsg.ACLOperationWrite, Allow)
	wild := bind(Topic, "*", Literal, "User:app", "*", kmsg.ACLOperationWrite, Allow)
	name := "orders"
	for _, tc := range []struct {
		f    Filter
		want [3]bool
	}{
		{Filter{ResourceType: kmsg.ACLResourceTypeAny, PatternType: kmsg.ACLResourcePatternTypeAny, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}, [3]bool{true, true, true}},
		{Filter{ResourceType: Topic, ResourceName: &name, PatternType: Literal, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}, [3]bool{true, false, false}},
		{Filter{ResourceType: Topic, ResourceName: &name, PatternType: kmsg.ACLResourcePatternTypeMatch, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}, [3]bool{true, true, true}},
		{Filter{ResourceType: Group, PatternType: kmsg.ACLResourcePatternTypeAny, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}, [3]bool{false, false, false}},
	} {
		for i, b := range []Binding{lit, pre, wild} {
			if got := tc.f.Matches(b); got != tc.want[i] {
				t.Errorf("filter %+v on %v: %v, want %v", tc.f, b, got, tc.want[i])
			}
		}
	}
}

func TestValidateRefusesWhatKafkaRefuses(t *testing.T) {
	good := bind(Topic, "t", Literal, "User:a", "*", kmsg.ACLOperationRead, Allow)
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Binding{
		bind(Cluster, "other", Literal, "User:a", "*", kmsg.ACLOperationAlter, Allow),
		bind(Topic, "*", Prefixed, "User:a", "*", kmsg.ACLOperationRead, Allow),
		bind(Topic, "t", Literal, "alice", "*", kmsg.ACLOperationRead, Allow),
		bind(Topic, "t", Literal, "User:a", "somehost", kmsg.ACLOperationRead, Allow),
		bind(Topic, "t", Literal, "User:a", "*", kmsg.ACLOperationAny, Allow),
		bind(Topic, "t", kmsg.ACLResourcePatternTypeMatch, "User:a", "*", kmsg.ACLOperationRead, Allow),
		bind(Topic, "", Literal, "User:a", "*", kmsg.ACLOperationRead, Allow),
		bind(Topic, "t", Literal, "User:a", "*", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAny),
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
