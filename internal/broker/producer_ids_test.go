package broker

import (
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/weir-broker/weir/internal/config"
	"github.com/weir-broker/weir/internal/metadata"
)

// Producers starting at once across several blocks each get an id no
// other got, from blocks the metadata log reserved: the next block is
// reserved ahead, in the background, and an id is never handed out
// twice, whether it came from the current block or a prefetched one.
func TestProducerIDsAreUniqueAcrossBlocksReservedAhead(t *testing.T) {
	s := config.NewBroker()
	b, err := Open(Config{NodeID: int32(s.Int("node.id")), DataDir: t.TempDir(), Settings: s, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const n = 3*producerIDBlockSize + 17
	ids := make([]int64, n)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				id, err := b.nextProducerID()
				if err != nil {
					t.Error(err)
					return
				}
				ids[i] = id
			}
		}()
	}
	wg.Wait()
	var reserved int64
	b.ctrl.View(func(im *metadata.Image) { reserved = im.NextProducerID })
	seen := make(map[int64]bool, n)
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("producer id %d handed out twice", id)
		}
		if id < 0 || id >= reserved {
			t.Fatalf("producer id %d outside the blocks the metadata log reserved (below %d)", id, reserved)
		}
		seen[id] = true
	}
	if blocks := reserved / producerIDBlockSize; blocks < 4 || blocks > 5 {
		t.Fatalf("%d blocks reserved for %d ids, want 4 (or 5 with one reserved ahead)", blocks, n)
	}
}
