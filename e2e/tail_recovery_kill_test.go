package e2e

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/batch"
)

// largeIdempotentBatch is one record of about 100 KiB from producer pid
// at sequence seq, its value naming the sequence.
func largeIdempotentBatch(pid int64, seq int32) []byte {
	v := bytes.Repeat([]byte(fmt.Sprintf("seq-%06d;", seq)), 100<<10/11)
	return batch.Build(batch.Spec{Timestamp: time.Now().UnixMilli(), ProducerID: pid, ProducerEpoch: 0, BaseSequence: seq},
		[]batch.Record{{Value: v}})
}

// A broker killed with SIGKILL after several MiB of acknowledged large
// batches (so its active segment has a tail checkpoint well past its
// start, and batches written since) restarts with every acknowledged
// batch at its offset, answers a retry of each of the producer's last
// five batches with the offset it was first given and stores none of
// them again, and takes the producer's next sequence.
func TestRetriesOfTheLastFiveLargeBatchesAfterSIGKILLGetTheirOffsets(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, "127.0.0.1:0", dir)
	createTopic(t, newAdmin(t, p.addr), "t", 1, nil)
	pid := initProducerID(t, p.addr)
	conn := dialRaw(t, p.addr)
	const n = 45
	offsets := make([]int64, n)
	for seq := range int32(n) {
		req := produceReq("t", largeIdempotentBatch(pid, seq))
		id := conn.send(req)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		conn.recv(resp, id)
		rp := resp.Topics[0].Partitions[0]
		if rp.ErrorCode != 0 {
			t.Fatalf("produce seq %d: error %d", seq, rp.ErrorCode)
		}
		offsets[seq] = rp.BaseOffset
	}
	p.kill()
	p = startProc(t, p.addr, dir)
	conn = dialRaw(t, p.addr)
	for seq := int32(n - 5); seq < n; seq++ {
		req := produceReq("t", largeIdempotentBatch(pid, seq))
		id := conn.send(req)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		conn.recv(resp, id)
		rp := resp.Topics[0].Partitions[0]
		if rp.ErrorCode != 0 || rp.BaseOffset != offsets[seq] {
			t.Fatalf("retry of seq %d after SIGKILL: error %d, offset %d; want offset %d", seq, rp.ErrorCode, rp.BaseOffset, offsets[seq])
		}
	}
	if end := endOffset(t, p.addr, "t"); end != n {
		t.Fatalf("log end %d after the retries, want %d", end, n)
	}
	if code := produceErr(t, conn, "t", largeIdempotentBatch(pid, n)); code != 0 {
		t.Fatalf("the next sequence after SIGKILL: error %d", code)
	}
	recs := consumeAll(t, p.addr, "t", n+1)
	for i, r := range recs {
		if r.Offset != int64(i) || !bytes.HasPrefix(r.Value, []byte(fmt.Sprintf("seq-%06d;", i))) {
			t.Fatalf("record at position %d: offset %d, value %.12q", i, r.Offset, r.Value)
		}
	}
}
