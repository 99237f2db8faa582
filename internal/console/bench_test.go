package console_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/pkg/weir"
)

// Scale of the benchmark: the issue's "usable at 1,000 topics and 100
// groups".
const (
	benchTopics    = 1000
	benchGroups    = 100
	topicsPerGroup = 10
	createBatch    = 100
)

// BenchmarkConsolePagesAtScale times the topics and groups pages, served
// by a real broker's admin listener, with 1,000 topics and 100 groups
// that each committed offsets on 10 of them. Run it with
//
//	go test -run '^$' -bench ConsolePagesAtScale -benchtime 1x ./internal/console/
func BenchmarkConsolePagesAtScale(b *testing.B) {
	admin := startBenchBroker(b)
	for _, page := range []string{"/topics", "/groups"} {
		b.Run(strings.TrimPrefix(page, "/"), func(b *testing.B) {
			for b.Loop() {
				n := get(b, "http://"+admin+page)
				b.SetBytes(int64(n))
			}
		})
	}
}

// startBenchBroker starts a broker with its console and fills it.
func startBenchBroker(b *testing.B) string {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	wb, err := weir.Start(ctx, weir.Config{DataDir: b.TempDir(), AdminListen: freeAddr(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { wb.Close() })
	cl, err := kgo.NewClient(kgo.SeedBrokers(wb.Addr()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	names := make([]string, benchTopics)
	for i := range names {
		names[i] = fmt.Sprintf("bench-topic-%04d", i)
	}
	for i := 0; i < len(names); i += createBatch {
		created, err := adm.CreateTopics(ctx, 1, 1, nil, names[i:min(i+createBatch, len(names))]...)
		if err != nil {
			b.Fatal(err)
		}
		if err := created.Error(); err != nil {
			b.Fatal(err)
		}
	}
	for g := range benchGroups {
		offsets := kadm.Offsets{}
		for t := range topicsPerGroup {
			offsets.Add(kadm.Offset{Topic: names[(g*topicsPerGroup+t)%len(names)], Partition: 0, At: 0, LeaderEpoch: -1})
		}
		committed, err := adm.CommitOffsets(ctx, fmt.Sprintf("bench-group-%03d", g), offsets)
		if err != nil {
			b.Fatal(err)
		}
		if err := committed.Error(); err != nil {
			b.Fatal(err)
		}
	}
	return wb.AdminAddr()
}

// get fetches a page, fails on anything but 200, and returns its size.
func get(b *testing.B, url string) int {
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("%s: %s\n%s", url, resp.Status, body)
	}
	return len(body)
}

// freeAddr is a free loopback address with a port below the ephemeral
// range.
func freeAddr(b *testing.B) string {
	for range 200 {
		addr := "127.0.0.1:" + strconv.Itoa(20000+rand.IntN(12000))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr
		}
	}
	b.Fatal("no free port between 20000 and 32000")
	return ""
}
