package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/weir-broker/weir/pkg/weir"
)

// The *Separate consume benchmarks run the cluster in a child process (this
// test binary again, told what to serve by serveEnv), so that the consumer
// does not share its process, scheduler and garbage collector with the
// cluster; the two still share the machine's cores.

// serveEnv names the cluster a child process serves: kfake, weir or replay.
// serveRecordsEnv is the record count a replay child produces and captures
// before serving.
const (
	serveEnv        = "WEIR_BENCH_SERVE"
	serveRecordsEnv = "WEIR_BENCH_SERVE_RECORDS"
)

func TestMain(m *testing.M) {
	if kind := os.Getenv(serveEnv); kind != "" {
		if err := serveForParent(kind, os.Getenv(serveRecordsEnv)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serveForParent starts the cluster kind, prints its address on stdout and
// serves until stdin is closed.
func serveForParent(kind, records string) error {
	ctx := context.Background()
	var addr string
	switch kind {
	case "kfake":
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(DefaultPartitions, benchTopic))
		if err != nil {
			return err
		}
		defer c.Close()
		addr = c.ListenAddrs()[0]
	case "weir", "replay":
		dir, err := os.MkdirTemp("", "weir-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		w, err := weir.Start(ctx, weir.Config{DataDir: dir})
		if err != nil {
			return err
		}
		defer w.Close()
		addr = w.Addr()
		if kind == "replay" {
			n, err := strconv.Atoi(records)
			if err != nil || n <= 0 {
				return fmt.Errorf("%s=%q: want a positive record count", serveRecordsEnv, records)
			}
			if _, err := Produce(ctx, []string{addr}, ProduceOptions{Topic: benchTopic, Records: n}); err != nil {
				return err
			}
			parts, err := captureTopic(ctx, []string{addr}, benchTopic)
			if err != nil {
				return err
			}
			w.Close()
			srv, err := startReplay(benchTopic, parts, false)
			if err != nil {
				return err
			}
			defer srv.Close()
			addr = srv.Addr()
		}
	default:
		return fmt.Errorf("%s=%q: want kfake, weir or replay", serveEnv, kind)
	}
	fmt.Println(addr)
	_, err := io.Copy(io.Discard, os.Stdin)
	return err
}

// startSeparate runs the cluster kind in a child process and returns its
// address; the child stops when the benchmark ends.
func startSeparate(b *testing.B, kind string) []string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serveEnv+"="+kind, serveRecordsEnv+"="+strconv.Itoa(b.N))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			b.Errorf("%s child: %v", kind, err)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("%s child: no address: %v", kind, err)
	}
	return []string{strings.TrimSpace(line)}
}

func BenchmarkKfakeConsumeSeparate(b *testing.B) {
	b.StopTimer()
	runConsumeBench(b, startSeparate(b, "kfake"))
}

func BenchmarkWeirConsumeSeparate(b *testing.B) {
	b.StopTimer()
	runConsumeBench(b, startSeparate(b, "weir"))
}

// BenchmarkReplayConsumeSeparate is BenchmarkReplayConsume with the replay
// server in its own process (the child produces and captures the records).
func BenchmarkReplayConsumeSeparate(b *testing.B) {
	b.StopTimer()
	runConsumeTimed(b, startSeparate(b, "replay"))
}
