package e2e

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/pkg/eos"
)

// aclBroker starts a SASL_PLAINTEXT broker with ACLs enforced, an admin
// (super user) and an app user; it returns the address and the options
// of each user's clients.
func aclBroker(t *testing.T) (addr string, admin, app kgo.Opt) {
	t.Helper()
	return aclBrokerWith(t, nil)
}

// adminProps writes a --command-config for the admin of aclBroker.
func adminProps(t *testing.T) string {
	return writeFile(t, filepath.Join(t.TempDir(), "admin.properties"), "security.protocol=SASL_PLAINTEXT\n"+
		"sasl.mechanism=SCRAM-SHA-512\nsasl.username=admin\nsasl.password=admin-pw\n")
}

// A user holds nothing until ACLs grant it: writing, reading, a group and
// a transactional id are each refused with their own code, and allowed
// once `weir acl add` grants exactly that; `weir acl list` shows the
// grants, and removing one takes it away again.
func TestACLsRefuseAUserEachActionUntilGranted(t *testing.T) {
	addr, admin, app := aclBroker(t)
	props := adminProps(t)
	weir := func(args ...string) string {
		t.Helper()
		out, err := runWeir(t, "", append(args, "--brokers", addr, "--command-config", props)...)
		if err != nil {
			t.Fatalf("weir %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	weir("topic", "create", "orders", "--partitions", "1")
	ctx := testCtx(t)

	produce := func() error {
		cl := newClient(t, addr, app, kgo.RequestRetries(0), kgo.RecordRetries(1), kgo.DisableIdempotentWrite())
		defer cl.Close()
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return cl.ProduceSync(pctx, &kgo.Record{Topic: "orders", Value: []byte("x")}).FirstErr()
	}
	fetchOffsets := func() error {
		cl := newClient(t, addr, app)
		defer cl.Close()
		resp, err := kadm.NewClient(cl).FetchOffsets(ctx, "billing")
		if err != nil {
			return err
		}
		return resp.Error()
	}
	initTxnErr := func() error {
		cl := newClient(t, addr, app, kgo.TransactionalID("orders-tx"), kgo.RequestRetries(0))
		defer cl.Close()
		if err := cl.BeginTransaction(); err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err := cl.ProduceSync(pctx, &kgo.Record{Topic: "orders", Value: []byte("t")}).FirstErr()
		cl.EndTransaction(ctx, kgo.TryAbort)
		return err
	}
	if err := produce(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce without an ACL: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	if err := fetchOffsets(); !errors.Is(err, kerr.GroupAuthorizationFailed) {
		t.Fatalf("offsets of a group without an ACL: %v, want GROUP_AUTHORIZATION_FAILED", err)
	}
	if err := initTxnErr(); !errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
		t.Fatalf("a transactional id without an ACL: %v, want TRANSACTIONAL_ID_AUTHORIZATION_FAILED", err)
	}
	if out, err := runKcat(t, "", "-C", "-b", addr, "-t", "orders", "-o", "beginning", "-e", "-q",
		"-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=app", "-X", "sasl.password=app-pw"); err == nil {
		t.Fatalf("kcat read a topic without an ACL:\n%s", out)
	}

	weir("acl", "add", "--allow-principal", "User:app", "--operation", "write", "--operation", "read", "--topic", "orders")
	weir("acl", "add", "--allow-principal", "User:app", "--operation", "read", "--group", "billing")
	weir("acl", "add", "--allow-principal", "User:app", "--operation", "write", "--transactional-id", "orders-", "--resource-pattern-type", "prefixed")
	if err := produce(); err != nil {
		t.Fatalf("produce with WRITE granted: %v", err)
	}
	if err := fetchOffsets(); err != nil {
		t.Fatalf("offsets with READ on the group: %v", err)
	}
	if err := initTxnErr(); err != nil {
		t.Fatalf("a transaction with WRITE on the transactional id prefix: %v", err)
	}
	if out, err := runKcat(t, "", "-C", "-b", addr, "-t", "orders", "-o", "beginning", "-e", "-q",
		"-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=app", "-X", "sasl.password=app-pw"); err != nil || len(strings.Fields(string(out))) < 1 {
		t.Fatalf("kcat with READ granted: %v\n%s", err, out)
	}
	list := weir("acl", "list")
	for _, want := range []string{"User:app\tALLOW\tTOPIC:orders\tLITERAL\tWRITE", "User:app\tALLOW\tGROUP:billing\tLITERAL\tREAD", "User:app\tALLOW\tTRANSACTIONAL_ID:orders-\tPREFIXED\tWRITE"} {
		if !strings.Contains(list, want) {
			t.Errorf("weir acl list lacks %q:\n%s", want, list)
		}
	}
	// The admin is a super user: no ACL names it, and it is never refused.
	if err := newClient(t, addr, admin).ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("a")}).FirstErr(); err != nil {
		t.Fatalf("the super user was refused: %v", err)
	}

	weir("acl", "remove", "--allow-principal", "User:app", "--operation", "write", "--topic", "orders")
	if err := produce(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce after its ACL was removed: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	// Metadata hides topics the principal may not describe.
	weir("topic", "create", "hidden", "--partitions", "1")
	md, err := kadm.NewClient(newClient(t, addr, app)).ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if md.Has("hidden") || !md.Has("orders") {
		t.Fatalf("the app lists %v: it must see orders (READ) and not hidden", md.Names())
	}
}

// A consume-transform-produce pipeline runs exactly once (every input's
// output committed once) as a user that holds exactly what it needs — READ on the input topic and the group,
// WRITE on the output topic and its transactional id — and stops with
// TOPIC_AUTHORIZATION_FAILED, committing nothing more, once WRITE on the
// output is taken away.
func TestTransactionalPipelineRunsWithExactlyItsACLsAndStopsWhenOneIsRemoved(t *testing.T) {
	addr, admin, app := aclBroker(t)
	props := adminProps(t)
	weir := func(args ...string) {
		t.Helper()
		if out, err := runWeir(t, "", append(args, "--brokers", addr, "--command-config", props)...); err != nil {
			t.Fatalf("weir %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	weir("topic", "create", "in", "--partitions", "2")
	weir("topic", "create", "out", "--partitions", "2")
	weir("acl", "add", "--allow-principal", "User:app", "--operation", "read", "--topic", "in")
	weir("acl", "add", "--allow-principal", "User:app", "--operation", "write", "--topic", "out")
	weir("acl", "add", "--allow-principal", "User:app", "--operation", "read", "--group", "pipeline")
	weir("acl", "add", "--allow-principal", "User:app", "--operation", "write", "--transactional-id", "pipeline-1")
	ctx := testCtx(t)
	feeder := newClient(t, addr, admin)
	feed := func(from, n int) {
		for i := from; i < from+n; i++ {
			if err := feeder.ProduceSync(ctx, &kgo.Record{Topic: "in", Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	feed(0, 50)
	run := func(until int64) error {
		var done atomic.Int64
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		p, err := eos.New(eos.Config{
			Brokers: []string{addr}, TransactionalID: "pipeline-1", Group: "pipeline",
			InputTopics: []string{"in"}, OutputTopic: "out", MaxPerTxn: 10,
			OnCommit: func(n int) {
				if done.Add(int64(n)) >= until {
					cancel()
				}
			},
			ClientOpts: []kgo.Opt{app},
		}, func(_ context.Context, in *kgo.Record) ([]*kgo.Record, error) {
			return []*kgo.Record{{Key: in.Key, Value: append([]byte("out-"), in.Value...)}}, nil
		})
		if err != nil {
			return err
		}
		defer p.Close()
		err = p.Run(rctx)
		if done.Load() >= until {
			return nil
		}
		return err
	}
	if err := run(50); err != nil {
		t.Fatalf("the pipeline with exactly its ACLs: %v", err)
	}
	// countOut counts the committed output and fails t unless it is each
	// of the first 50 inputs transformed, once.
	countOut := func() int {
		recs := consumeQuiet(t, addr, "out", 3*time.Second, admin, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
		seen := map[string]bool{}
		for _, r := range recs {
			v := string(r.Value)
			if seen[v] {
				t.Fatalf("read_committed output holds %q twice", v)
			}
			seen[v] = true
		}
		for i := range 50 {
			if v := fmt.Sprintf("out-%d", i); !seen[v] {
				t.Fatalf("read_committed output lacks %q", v)
			}
		}
		return len(recs)
	}
	if n := countOut(); n != 50 {
		t.Fatalf("read_committed output holds %d records, want exactly 50", n)
	}

	weir("acl", "remove", "--allow-principal", "User:app", "--operation", "write", "--topic", "out")
	feed(50, 10)
	err := run(10)
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("the pipeline without WRITE on its output: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	if n := countOut(); n != 50 {
		t.Fatalf("after the refused transaction read_committed output holds %d records, want still 50", n)
	}
	offs, err := kadm.NewClient(feeder).FetchOffsets(ctx, "pipeline")
	if err != nil {
		t.Fatal(err)
	}
	var committed int64
	offs.Each(func(o kadm.OffsetResponse) { committed += o.At })
	if committed != 50 {
		t.Fatalf("the group's committed offsets sum to %d, want 50: the refused transaction must commit none", committed)
	}
}

// consumeQuiet reads topic from the start until quiet passes with no new
// record, and returns what it read.
func consumeQuiet(t *testing.T, addr, topic string, quiet time.Duration, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl := newClient(t, addr, append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	defer cl.Close()
	var out []*kgo.Record
	for {
		ctx, cancel := context.WithTimeout(context.Background(), quiet)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachError(func(tp string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("fetch %s/%d: %v", tp, p, err)
			}
		})
		recs := fs.Records()
		if len(recs) == 0 {
			return out
		}
		out = append(out, recs...)
	}
}

// weir lab runs against a secured broker (SASL_SSL, ACLs enforced) with
// its clients' security settings from --command-config and
// --command-property, as a user holding
// only the ACLs the scenarios need (its topics, groups and transactional
// ids, all named weir-lab-…), for a producer, a consumer and an
// end-to-end scenario; each guarantee it claims holds.
func TestLabRunsAgainstASecuredBrokerWithCommandConfig(t *testing.T) {
	f := newTLSFiles(t, t.TempDir())
	addr, _, _ := aclBrokerWith(t, map[string]string{"listeners": "SASL_SSL://127.0.0.1:0", "ssl.keystore.location": f.keystore})
	tlsProps := "security.protocol=SASL_SSL\nssl.truststore.location=" + f.truststore + "\n"
	props := writeFile(t, filepath.Join(t.TempDir(), "admin.properties"), tlsProps+
		"sasl.mechanism=SCRAM-SHA-512\nsasl.username=admin\nsasl.password=admin-pw\n")
	for _, grant := range [][]string{
		{"--operation", "all", "--topic", "weir-lab-", "--resource-pattern-type", "prefixed"},
		{"--operation", "all", "--group", "weir-lab-", "--resource-pattern-type", "prefixed"},
		{"--operation", "all", "--transactional-id", "weir-lab-", "--resource-pattern-type", "prefixed"},
	} {
		if out, err := runWeir(t, "", append(append([]string{"acl", "add", "--allow-principal", "User:app"}, grant...), "--brokers", addr, "--command-config", props)...); err != nil {
			t.Fatalf("weir acl add: %v\n%s", err, out)
		}
	}
	// The password comes as a flag, which the lab hands on to its worker
	// processes with the file.
	appProps := writeFile(t, filepath.Join(t.TempDir(), "app.properties"), tlsProps+
		"sasl.mechanism=SCRAM-SHA-512\nsasl.username=app\n")
	out, err := runWeir(t, "", "lab", "--brokers", addr, "--command-config", appProps, "--command-property", "sasl.password=app-pw", "--report", "",
		"--records", "300", "--consumer-records", "300", "--seed", "3",
		"--only", "producer / acks=all idempotent / no fault",
		"--only", "consumer / process then commit",
		"--only", "end to end / consume-transform-produce / worker killed")
	if err != nil {
		t.Fatalf("weir lab against the secured broker: %v\n%s", err, out)
	}
	for _, row := range []string{"acks=all idempotent", "process then commit", "consume-transform-produce"} {
		found := false
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, row) && strings.Contains(line, "holds") {
				found = true
			}
		}
		if !found {
			t.Errorf("no row for %q that holds:\n%s", row, out)
		}
	}
}
