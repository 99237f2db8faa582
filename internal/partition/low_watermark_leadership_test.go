package partition

import "testing"

// A record is reported deleted (DeleteRecords answered, KIP-107) only
// once every live replica that could be elected has moved its log start
// past it. A new leadership starts knowing nothing of its followers' log
// starts, so until a follower on a live broker reports one under it, the
// low watermark counts that follower as holding the log from where it
// may still start — as Kafka's leader does, whose followers' log starts
// are unknown (-1) after it becomes leader and hold the low watermark —
// and does not answer with the leader's own log start.
//
// Interleaving: leader 0 at epoch 0, ISR {0,2,3}, writes 0-4; followers
// 2 and 3 fetch to 5 and report log start 0. The leadership is taken up
// again at epoch 1 (a failover back, or a leader epoch bump: SetLeader
// clears what the leader knew of its followers). Before either follower
// fetches under epoch 1 (a slow metadata apply, a paused process),
// DeleteRecords moves the leader's log start to 3. The low watermark
// must not reach 3: followers 2 and 3 still serve 0-2, and either may be
// elected next, bringing the deleted records back.
func TestLowWatermarkCountsFollowersThatHaveNotReportedUnderANewLeadership(t *testing.T) {
	p := openLeader(t, 0, 2, 3)
	advAppend(t, p, plain, "a", "b", "c", "d", "e") // 0-4
	advSync(t, p)
	all := []int32{0, 2, 3}
	update(t, p, 2, 5, 1)
	update(t, p, 3, 5, 1)
	p.SetFollowerLogStart(2, 0)
	p.SetFollowerLogStart(3, 0)
	wantHW(t, p, 5)
	wantLow(t, p, all, 0)

	if err := p.SetLeader(1, all); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DeleteRecordsBefore(3); err != nil {
		t.Fatal(err)
	}
	if low, err := p.LowWatermark(all); err != nil || low > 0 {
		t.Fatalf("low watermark %d (%v) under a new leadership before followers 2 and 3 (log start 0) reported: "+
			"DeleteRecords would be answered while they still serve offsets 0-2", low, err)
	}

	// Once both report the moved log start, the low watermark reaches it.
	p.SetFollowerLogStart(2, 3)
	p.SetFollowerLogStart(3, 3)
	wantLow(t, p, all, 3)
}
