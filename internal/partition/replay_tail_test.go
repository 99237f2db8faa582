package partition

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/weir-broker/weir/internal/batch"
	"github.com/weir-broker/weir/internal/log/logtest"
)

// bigAppend appends one batch of a single value of size bytes, large
// enough that a header walk reads only its header.
func bigAppend(t *testing.T, p *Partition, spec batch.Spec, size int, fill byte) int64 {
	t.Helper()
	return advAppend(t, p, spec, strings.Repeat(string(fill), size))
}

// After a SIGKILL or a power loss, a partition whose log holds
// transactions (committed, aborted and open, some spanning the part of
// the active segment the tail checkpoint vouches for and the part after
// it, markers on both sides) and idempotent producers reopens with the
// producer state, the aborted transactions and the last stable offset it
// had, whether or not a producer snapshot covers part of the log and
// whether or not DeleteRecords moved the log start into the segment, and
// still detects a retry of each of an idempotent producer's last five
// batches.
func TestProducerStateAfterACrashIsTheStateBeforeIt(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 99))
			fs := logtest.NewMemFS()
			opts := Options{ManualFlush: true}
			if seed%2 == 1 {
				opts.SnapshotIntervalBytes = 700 << 10
			}
			p := advOpen(t, fs, opts)
			seq := map[int64]int32{}
			open := map[int64]bool{}
			var lastIdem [][]byte
			var lastIdemAt []int64
			for i := range 120 {
				pid := int64(1 + r.IntN(4))
				size := 9<<10 + r.IntN(40<<10)
				switch k := r.IntN(10); {
				case k < 2:
					bigAppend(t, p, plain, size, 'p')
				case k < 4:
					pid += 10 // idempotent producers 11-14
					b := batch.Build(idemSpec(pid, seq[pid]), []batch.Record{{Value: make([]byte, size)}})
					h, _ := batch.Validate(b)
					base, dup, err := p.Append(b, h, 0)
					if err != nil || dup != nil {
						t.Fatalf("append: %v %+v", err, dup)
					}
					if pid == 11 {
						lastIdem = append(lastIdem, b)
						lastIdemAt = append(lastIdemAt, base)
					}
					seq[pid]++
				case k < 8:
					bigAppend(t, p, txnSpec(pid, seq[pid]), size, 't')
					seq[pid]++
					open[pid] = true
				default:
					if !open[pid] {
						continue
					}
					if _, err := p.AppendMarker(pid, 0, r.IntN(2) == 0, 0); err != nil {
						t.Fatal(err)
					}
					open[pid] = false
				}
				if r.IntN(6) == 0 || i == 119 {
					advSync(t, p)
				}
			}
			advSync(t, p)
			if seed%4 >= 2 {
				// DeleteRecords moves the log start into the active
				// segment, past the base the tail checkpoint names.
				at := p.LogEndOffset() / 2
				if _, err := p.DeleteRecordsBefore(at); err != nil {
					t.Fatalf("delete records before %d: %v", at, err)
				}
				advSync(t, p)
			}
			want := stateOf(p)
			_, wantLSO, _ := p.Offsets()
			for _, crashed := range []*logtest.MemFS{fs.Clone(), fs.Crash(nil)} {
				q := advOpen(t, crashed, Options{ManualFlush: true})
				if got := stateOf(q); got != want {
					t.Errorf("after a crash:\n%s\nbefore:\n%s", got, want)
				}
				if _, lso, _ := q.Offsets(); lso != wantLSO {
					t.Errorf("last stable offset %d after a crash, %d before", lso, wantLSO)
				}
				for i := max(0, len(lastIdem)-5); i < len(lastIdem); i++ {
					if lastIdemAt[i] < q.LogStartOffset() {
						continue // deleted: Kafka no longer knows it either
					}
					b := append([]byte(nil), lastIdem[i]...)
					h, _ := batch.Validate(b)
					if _, dup, err := q.Append(b, h, 0); err != nil || dup == nil {
						t.Errorf("a retry of one of the last five batches after a crash: dup %+v, err %v; want a duplicate", dup, err)
					}
				}
				q.Close()
			}
			p.Close()
		})
	}
}
