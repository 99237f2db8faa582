package e2e

// Authorization as Kafka's StandardAuthorizer decides it, API by API: what
// a principal is told and allowed, checked against what Kafka tells and
// allows it in the same situation.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// aclBrokerWith is aclBroker with settings of the test's own on top (a
// listener elsewhere, allow.everyone.if.no.acl.found).
func aclBrokerWith(t *testing.T, extra map[string]string) (addr string, admin, app kgo.Opt) {
	t.Helper()
	dir := t.TempDir()
	for _, u := range []string{"admin", "app"} {
		if out, err := runWeir(t, u+"-pw\n", "user", "add", u, "--mechanism", "SCRAM-SHA-512", "--password-stdin", "--data", dir); err != nil {
			t.Fatalf("weir user add %s --data: %v\n%s", u, err, out)
		}
	}
	settings := map[string]string{
		"listeners":                      "SASL_PLAINTEXT://127.0.0.1:0",
		"authorizer.class.name":          "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"super.users":                    "User:admin",
		"allow.everyone.if.no.acl.found": "false",
	}
	for k, v := range extra {
		settings[k] = v
	}
	b := startBrokerIn(t, dir, settings)
	return b.Addr(), kgo.SASL(scram.Auth{User: "admin", Pass: "admin-pw"}.AsSha512Mechanism()),
		kgo.SASL(scram.Auth{User: "app", Pass: "app-pw"}.AsSha512Mechanism())
}

// aclEntry is one binding to create, spelled as the protocol carries it.
type aclEntry struct {
	rt        kmsg.ACLResourceType
	name      string
	pattern   kmsg.ACLResourcePatternType
	principal string
	host      string
	op        kmsg.ACLOperation
	perm      kmsg.ACLPermissionType
}

// createACLs creates entries through CreateAcls as the client cl (a super
// user), failing the test on any error.
func createACLs(t *testing.T, cl *kgo.Client, entries ...aclEntry) {
	t.Helper()
	req := kmsg.NewPtrCreateACLsRequest()
	for _, e := range entries {
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = e.rt, e.name, e.pattern
		c.Principal, c.Host, c.Operation, c.PermissionType = e.principal, e.host, e.op, e.perm
		req.Creations = append(req.Creations, c)
	}
	resp, err := req.RequestWith(testCtx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range resp.Results {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			t.Fatalf("CreateAcls %+v: %v %v", entries[i], err, r.ErrorMessage)
		}
	}
	// Bindings reach the authorizer through the metadata log: wait until
	// DescribeAcls lists them all.
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := kmsg.NewPtrDescribeACLsRequest()
		d.ResourceType, d.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
		d.Operation, d.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
		dr, err := d.RequestWith(testCtx(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range dr.Resources {
			n += len(r.ACLs)
		}
		if n >= len(entries) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("DescribeAcls lists %d bindings, want at least %d", n, len(entries))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pinnedClient is a client that sends API key at most at version.
func pinnedClient(t *testing.T, addr string, key, version int16, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	vs := kversion.Stable()
	vs.SetMaxKeyVersion(key, version)
	return newClient(t, addr, append(opts, kgo.MaxVersions(vs))...)
}

func allowApp(rt kmsg.ACLResourceType, name string, op kmsg.ACLOperation) aclEntry {
	return aclEntry{rt: rt, name: name, pattern: kmsg.ACLResourcePatternTypeLiteral, principal: "User:app", host: "*", op: op, perm: kmsg.ACLPermissionTypeAllow}
}

// createTopicAs creates topic with one partition as the client cl.
func createTopicAs(t *testing.T, cl *kgo.Client, topic string) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, 1, 1
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10000
	resp, err := req.RequestWith(testCtx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
}

// DescribeTransactions tells a principal that may DESCRIBE a transactional
// id the state of its transaction, but, as Kafka's handler does, only the
// partitions of topics the principal may DESCRIBE: a transaction's topics
// are no way around Metadata hiding them.
func TestDescribeTransactionsHidesTopicsThePrincipalMayNotDescribe(t *testing.T) {
	addr, admin, app := aclBroker(t)
	ctx := testCtx(t)
	adminCl := newClient(t, addr, admin)
	createTopicAs(t, adminCl, "payroll")
	createACLs(t, adminCl, allowApp(kmsg.ACLResourceTypeTransactionalId, "ops-tx", kmsg.ACLOperationDescribe))

	// The admin's transaction writes to payroll and stays open.
	txCl := newClient(t, addr, admin, kgo.TransactionalID("ops-tx"))
	if err := txCl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txCl.ProduceSync(ctx, &kgo.Record{Topic: "payroll", Value: []byte("salary")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = []string{"ops-tx"}
	resp, err := req.RequestWith(ctx, newClient(t, addr, app))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.TransactionStates) != 1 {
		t.Fatalf("DescribeTransactions answered %d states, want 1", len(resp.TransactionStates))
	}
	st := resp.TransactionStates[0]
	if err := kerr.ErrorForCode(st.ErrorCode); err != nil {
		t.Fatalf("DescribeTransactions with DESCRIBE on the id: %v", err)
	}
	for _, tp := range st.Topics {
		if tp.Topic == "payroll" {
			t.Fatalf("DescribeTransactions told a principal without DESCRIBE on topic payroll that the transaction writes to it (partitions %v)", tp.Partitions)
		}
	}
}

// DescribeCluster needs no ACL in Kafka: any authenticated principal is
// told the brokers and the controller (as Metadata tells them), and the
// cluster's authorized operations only when asked for, as 0 without
// DESCRIBE on the cluster. Admin clients (Java's describeCluster) depend
// on it.
func TestDescribeClusterIsAnsweredToAPrincipalWithoutClusterDescribe(t *testing.T) {
	addr, _, app := aclBroker(t)
	req := kmsg.NewPtrDescribeClusterRequest()
	resp, err := req.RequestWith(testCtx(t), newClient(t, addr, app))
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		t.Fatalf("DescribeCluster from a principal without ACLs: %v, want the brokers as Kafka answers", err)
	}
	if len(resp.Brokers) == 0 {
		t.Fatal("DescribeCluster listed no broker")
	}
}

// OffsetFetch v8+ naming a topic the principal may not DESCRIBE answers
// its partitions with TOPIC_AUTHORIZATION_FAILED (offset -1), as Kafka
// does and as weir does before v8; the partitions are not left out of the
// answer without a word.
func TestOffsetFetchV8AnswersANamedTopicWithoutDescribeWithTopicAuthorizationFailed(t *testing.T) {
	addr, admin, app := aclBroker(t)
	ctx := testCtx(t)
	adminCl := newClient(t, addr, admin)
	createTopicAs(t, adminCl, "orders")
	createTopicAs(t, adminCl, "payroll")
	createACLs(t, adminCl,
		allowApp(kmsg.ACLResourceTypeGroup, "billing", kmsg.ACLOperationRead),
		allowApp(kmsg.ACLResourceTypeTopic, "orders", kmsg.ACLOperationRead))
	for _, version := range []int16{7, 8, 9} {
		appCl := pinnedClient(t, addr, 9, version, app)
		req := kmsg.NewPtrOffsetFetchRequest()
		if version < 8 {
			req.Group = "billing"
			for _, topic := range []string{"orders", "payroll"} {
				rt := kmsg.NewOffsetFetchRequestTopic()
				rt.Topic, rt.Partitions = topic, []int32{0}
				req.Topics = append(req.Topics, rt)
			}
		} else {
			g := kmsg.NewOffsetFetchRequestGroup()
			g.Group = "billing"
			for _, topic := range []string{"orders", "payroll"} {
				rt := kmsg.NewOffsetFetchRequestGroupTopic()
				rt.Topic, rt.Partitions = topic, []int32{0}
				g.Topics = append(g.Topics, rt)
			}
			req.Groups = append(req.Groups, g)
		}
		resp, err := req.RequestWith(ctx, appCl)
		if err != nil {
			t.Fatal(err)
		}
		codes := map[string]int16{}
		if version < 8 {
			for _, rt := range resp.Topics {
				for _, p := range rt.Partitions {
					codes[rt.Topic] = p.ErrorCode
				}
			}
		} else {
			for _, g := range resp.Groups {
				for _, rt := range g.Topics {
					for _, p := range rt.Partitions {
						codes[rt.Topic] = p.ErrorCode
					}
				}
			}
		}
		if c, ok := codes["orders"]; !ok || c != 0 {
			t.Errorf("OffsetFetch v%d: orders answered %v (present %v), want no error", version, kerr.ErrorForCode(c), ok)
		}
		if c, ok := codes["payroll"]; !ok || c != kerr.TopicAuthorizationFailed.Code {
			t.Errorf("OffsetFetch v%d: payroll answered %v (present %v), want TOPIC_AUTHORIZATION_FAILED", version, kerr.ErrorForCode(c), ok)
		}
	}
}

// With allow.everyone.if.no.acl.found=true, a topic no ACL names is open
// to all, so a principal may write it; KIP-679 lets such a principal
// produce idempotently without IDEMPOTENT_WRITE on the cluster, and
// Kafka's check (authorizeByResourceType) counts the open topics too. An
// ACL on the cluster for someone else must not take idempotence away from
// every producer.
func TestIdempotentProducerNeedsNoClusterACLWhereTopicsAreOpenToEveryone(t *testing.T) {
	addr, admin, app := aclBrokerWith(t, map[string]string{"allow.everyone.if.no.acl.found": "true"})
	ctx := testCtx(t)
	adminCl := newClient(t, addr, admin)
	createTopicAs(t, adminCl, "open")
	// Someone else's right on the cluster: the cluster resource now has
	// an ACL, so it is no longer open to everyone.
	createACLs(t, adminCl, aclEntry{rt: kmsg.ACLResourceTypeCluster, name: "kafka-cluster", pattern: kmsg.ACLResourcePatternTypeLiteral,
		principal: "User:ops", host: "*", op: kmsg.ACLOperationAlter, perm: kmsg.ACLPermissionTypeAllow})

	plain := newClient(t, addr, app, kgo.DisableIdempotentWrite(), kgo.RequestRetries(0), kgo.RecordRetries(1))
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := plain.ProduceSync(pctx, &kgo.Record{Topic: "open", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("a plain produce to a topic no ACL names, everyone allowed: %v", err)
	}
	idem := newClient(t, addr, app, kgo.RequestRetries(0), kgo.RecordRetries(1))
	ictx, icancel := context.WithTimeout(ctx, 10*time.Second)
	defer icancel()
	if err := idem.ProduceSync(ictx, &kgo.Record{Topic: "open", Value: []byte("y")}).FirstErr(); err != nil {
		if errors.Is(err, kerr.ClusterAuthorizationFailed) {
			t.Fatalf("an idempotent produce to a topic the principal may write: %v; Kafka allows it (KIP-679, authorizeByResourceType)", err)
		}
		t.Fatalf("an idempotent produce to a topic the principal may write: %v", err)
	}
}

// An ACL's host is the client's IP address; Kafka compares it with the
// address as Java writes it, which for the IPv6 loopback is
// 0:0:0:0:0:0:0:1. A DENY for that host must refuse a client connecting
// from ::1, whatever the spelling of the same address.
func TestDenyACLForAnIPv6HostAppliesToClientsFromThatAddress(t *testing.T) {
	addr, admin, app := aclBrokerWith(t, map[string]string{"listeners": "SASL_PLAINTEXT://[::1]:0"})
	ctx := testCtx(t)
	adminCl := newClient(t, addr, admin)
	createTopicAs(t, adminCl, "orders")
	createACLs(t, adminCl,
		allowApp(kmsg.ACLResourceTypeTopic, "orders", kmsg.ACLOperationWrite),
		aclEntry{rt: kmsg.ACLResourceTypeTopic, name: "orders", pattern: kmsg.ACLResourcePatternTypeLiteral,
			principal: "User:app", host: "0:0:0:0:0:0:0:1", op: kmsg.ACLOperationWrite, perm: kmsg.ACLPermissionTypeDeny})
	cl := newClient(t, addr, app, kgo.DisableIdempotentWrite(), kgo.RequestRetries(0), kgo.RecordRetries(1))
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := cl.ProduceSync(pctx, &kgo.Record{Topic: "orders", Value: []byte("x")}).FirstErr()
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce from ::1 with WRITE denied to host 0:0:0:0:0:0:0:1: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
}

// CreateTopics v5+ returns the new topic's configs only to a principal
// that may DESCRIBE_CONFIGS it; Kafka answers the others with
// TOPIC_AUTHORIZATION_FAILED in the topic's config error code and no
// configs. CREATE alone does not show the broker's settings.
func TestCreateTopicsReturnsConfigsOnlyWithDescribeConfigs(t *testing.T) {
	addr, admin, app := aclBroker(t)
	adminCl := newClient(t, addr, admin)
	createACLs(t, adminCl, allowApp(kmsg.ACLResourceTypeTopic, "mine", kmsg.ACLOperationCreate))
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "mine", 1, 1
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10000
	resp, err := req.RequestWith(testCtx(t), newClient(t, addr, app))
	if err != nil {
		t.Fatal(err)
	}
	got := resp.Topics[0]
	if err := kerr.ErrorForCode(got.ErrorCode); err != nil {
		t.Fatalf("CreateTopics with CREATE on the topic: %v", err)
	}
	if len(got.Configs) > 0 || got.ConfigErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("CreateTopics told a principal without DESCRIBE_CONFIGS %d configs (config error %v), want none and TOPIC_AUTHORIZATION_FAILED",
			len(got.Configs), kerr.ErrorForCode(got.ConfigErrorCode))
	}
}
