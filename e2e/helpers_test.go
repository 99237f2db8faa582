package e2e

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/internal/testsvc"
	"github.com/weir-broker/weir/pkg/weir"
)

// weirBin is the weir binary built once for tests that run it as a
// process (to kill it, or to drive its CLI).
var weirBin string

func TestMain(m *testing.M) {
	if role := os.Getenv(childRoleEnv); role != "" {
		os.Exit(runChild(role)) // this test binary re-executed as a client process
	}
	dir, err := os.MkdirTemp("", "weir-e2e-bin")
	if err != nil {
		panic(err)
	}
	if weirBin, err = testsvc.Build(dir, testsvc.WeirPackage); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startBroker runs an embedded broker on a fresh data directory for the
// duration of the test.
func startBroker(t testing.TB, settings map[string]string) (*weir.Broker, string) {
	t.Helper()
	dir := t.TempDir()
	return startBrokerIn(t, dir, settings), dir
}

func startBrokerIn(t testing.TB, dir string, settings map[string]string) *weir.Broker {
	t.Helper()
	b, err := weir.Start(context.Background(), weir.Config{DataDir: dir, Settings: settings})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func newClient(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func newAdmin(t testing.TB, addr string) *kadm.Client {
	return kadm.NewClient(newClient(t, addr))
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func createTopic(t testing.TB, adm *kadm.Client, topic string, partitions int32, configs map[string]*string) {
	t.Helper()
	resp, err := adm.CreateTopics(testCtx(t), partitions, 1, configs, topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := resp[topic].Err; err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
}

// consumeAll reads n records from the start of topic.
func consumeAll(t testing.TB, addr, topic string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl := newClient(t, addr, append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	ctx := testCtx(t)
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(out), n, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}
