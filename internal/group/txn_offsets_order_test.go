package group

// The later-written commit of a partition's offset wins: the
// real Shard, driven as the broker drives it, its records kept in log
// order with their transactional producer and the markers; a restart is
// a replay of that log into a new Shard, and compaction keeps the latest
// record of each key (records of aborted transactions go and supersede
// nothing; tombstones go, as past delete.retention.ms; markers stay), as
// log.Compact does.

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

type revEntry struct {
	txn    *TxnProducer // a transactional batch's producer
	rec    Record
	marker bool // a marker of pid with commit
	pid    int64
	commit bool
}

type revDriver struct {
	t     *testing.T
	cfg   Config
	s     *Shard
	now   int64
	token uint64
	resps map[uint64]kmsg.Response
	log   []revEntry
}

func newRevDriver(t *testing.T, cfg Config) *revDriver {
	d := &revDriver{t: t, cfg: cfg, s: NewShard(cfg), now: 1_000_000, resps: map[uint64]kmsg.Response{}}
	d.absorb(d.s.Loaded(d.now))
	return d
}

func (d *revDriver) absorb(rd Ready) {
	for _, a := range rd.Appends {
		for _, r := range a.Records {
			d.log = append(d.log, revEntry{txn: a.Txn, rec: r})
		}
	}
	for _, r := range rd.Responses {
		d.resps[r.Token] = r.Msg
	}
	for _, a := range rd.Appends { // every append durable at once, in order
		d.absorb(d.s.AppendDone(d.now, a.ID, nil))
	}
}

func (d *revDriver) step(req kmsg.Request) kmsg.Response {
	d.token++
	tok := d.token
	d.absorb(d.s.Step(d.now, Input{Token: tok, ClientID: "c", ClientHost: "/127.0.0.1", Req: req}))
	r, ok := d.resps[tok]
	if !ok {
		d.t.Fatalf("%T not answered", req)
	}
	return r
}

func (d *revDriver) tickTo(now int64) {
	d.now = now
	d.absorb(d.s.Tick(now))
}

// marker writes pid's marker and reports it, as the transaction
// coordinator does once it is durable.
func (d *revDriver) marker(pid int64, commit bool) {
	d.log = append(d.log, revEntry{marker: true, pid: pid, commit: commit})
	d.absorb(d.s.CompleteTxn(d.now, pid, commit))
}

func (d *revDriver) plainCommit(group, topic string, partition int32, off int64) {
	r := kmsg.NewPtrOffsetCommitRequest()
	r.Version, r.Group, r.Generation = 9, group, -1
	r.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: partition, Offset: off, LeaderEpoch: -1}}}}
	if c := d.step(r).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode; c != 0 {
		d.t.Fatalf("OffsetCommit: %d", c)
	}
}

func (d *revDriver) txnCommit(group string, pid int64, topic string, partition int32, off int64) {
	if c := d.step(txnCommitReq(group, pid, topic, partition, off)).(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode; c != 0 {
		d.t.Fatalf("TxnOffsetCommit: %d", c)
	}
}

// committed is the group's offset of topic/partition in s (-1 for none).
func revCommitted(t *testing.T, s *Shard, now int64, group, topic string, partition int32) int64 {
	r := kmsg.NewPtrOffsetFetchRequest()
	r.Version = 8
	r.Groups = []kmsg.OffsetFetchRequestGroup{{Group: group, Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: topic, Partitions: []int32{partition}}}}}
	rd := s.Step(now, Input{Token: 1 << 62, Req: r})
	for _, resp := range rd.Responses {
		return resp.Msg.(*kmsg.OffsetFetchResponse).Groups[0].Topics[0].Partitions[0].Offset
	}
	t.Fatal("OffsetFetch not answered")
	return 0
}

// replay loads entries into a new shard, as a restart does.
func (d *revDriver) replay(entries []revEntry) *Shard {
	s := NewShard(d.cfg)
	for _, e := range entries {
		var err error
		switch {
		case e.marker:
			s.ReplayMarker(e.pid, e.commit)
		case e.txn != nil:
			err = s.ReplayTxn(e.txn.ID, e.rec.Key, e.rec.Value)
		default:
			err = s.Replay(e.rec.Key, e.rec.Value)
		}
		if err != nil {
			d.t.Fatal(err)
		}
	}
	s.Loaded(d.now)
	return s
}

// compacted is the log as compaction leaves it.
func (d *revDriver) compacted() []revEntry {
	outcome := make([]int, len(d.log)) // 1 commit, -1 abort, 0 open / not txn
	for i, e := range d.log {
		if e.txn == nil || e.marker {
			continue
		}
		for _, m := range d.log[i+1:] {
			if m.marker && m.pid == e.txn.ID {
				outcome[i] = map[bool]int{true: 1, false: -1}[m.commit]
				break
			}
		}
	}
	latest := map[string]int{}
	for i, e := range d.log {
		if e.marker || outcome[i] == -1 || (e.txn != nil && outcome[i] == 0) {
			continue
		}
		latest[string(e.rec.Key)] = i
	}
	var out []revEntry
	for i, e := range d.log {
		switch {
		case e.marker:
			out = append(out, e)
		case outcome[i] == -1:
		case e.txn != nil && outcome[i] == 0:
			out = append(out, e)
		case latest[string(e.rec.Key)] == i && e.rec.Value != nil:
			out = append(out, e)
		}
	}
	return out
}

func (d *revDriver) threeViews(group, topic string, partition int32) (live, restarted, compacted int64) {
	return revCommitted(d.t, d.s, d.now, group, topic, partition),
		revCommitted(d.t, d.replay(d.log), d.now, group, topic, partition),
		revCommitted(d.t, d.replay(d.compacted()), d.now, group, topic, partition)
}

func revConfig() Config {
	cfg := testConfig()
	cfg.OffsetsRetentionMs = 10_000
	cfg.RetentionCheckMs = 1_000
	return cfg
}

// Offset expiry between a TxnOffsetCommit and its COMMIT marker. The
// group has an old offset of t-0 (it expires) and a fresh one of u-0 (it
// keeps the group); producer 7's transaction commits t-0 = 5 after the
// expiry's tombstone was written: the tombstone is the last record of
// t-0.
func TestExpiryBetweenTxnOffsetCommitAndItsCommit(t *testing.T) {
	d := newRevDriver(t, revConfig())
	d.plainCommit("g", "t", 0, 1)
	d.now += 9_000
	d.plainCommit("g", "u", 0, 1)
	d.txnCommit("g", 7, "t", 0, 5)
	d.tickTo(d.now + 2_000) // t-0 is 11 s old: expired
	d.marker(7, true)
	live, restarted, compacted := d.threeViews("g", "t", 0)
	t.Logf("t-0: live %d, after a restart %d, after compaction + restart %d", live, restarted, compacted)
	if live != restarted || restarted != compacted {
		t.Fatalf("OffsetCommit t-0=1, TxnOffsetCommit t-0=5, expiry of t-0, COMMIT: live %d, after a restart %d, "+
			"after compaction + restart %d: the three must agree (the last record of t-0 is the expiry's tombstone)", live, restarted, compacted)
	}
}

// Offset expiry that forgets the whole group while it has offsets of an
// open transaction: producer 7 committed u-0 = 5 in a transaction; the
// group's only committed offset (t-0) expires, so the group is
// tombstoned and dropped, taking the pending offset with it. The COMMIT
// marker follows. The last record of u-0 is the committed transactional
// one.
func TestExpiryOfAGroupWithPendingTxnOffsets(t *testing.T) {
	d := newRevDriver(t, revConfig())
	d.plainCommit("g", "t", 0, 1)
	d.now += 9_000
	d.txnCommit("g", 7, "u", 0, 5)
	d.tickTo(d.now + 2_000)
	d.marker(7, true)
	live, restarted, compacted := d.threeViews("g", "u", 0)
	t.Logf("u-0: live %d, after a restart %d, after compaction + restart %d", live, restarted, compacted)
	if live != 5 || restarted != 5 || compacted != 5 {
		t.Fatalf("OffsetCommit t-0=1, TxnOffsetCommit u-0=5, expiry of the group's offsets, COMMIT: u-0 live %d, after a restart %d, "+
			"after compaction + restart %d; want 5 (the committed transactional record is the last of u-0) in all three", live, restarted, compacted)
	}
}

// Two producers' transactions and a plain commit, every order of their
// outcomes: the committed offset is the last record written of the
// partition that is not of an aborted transaction, in all three views.
func TestInterleavedProducersAndPlainCommits(t *testing.T) {
	type op struct {
		name string
		do   func(d *revDriver)
	}
	ops := []op{
		{"txn7=5", func(d *revDriver) { d.txnCommit("g", 7, "t", 0, 5) }},
		{"txn8=6", func(d *revDriver) { d.txnCommit("g", 8, "t", 0, 6) }},
		{"plain=7", func(d *revDriver) { d.plainCommit("g", "t", 0, 7) }},
	}
	perms := [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	for _, perm := range perms {
		for _, e7 := range []bool{true, false} {
			for _, e8 := range []bool{true, false} {
				for _, markerFirst := range []int64{7, 8} {
					for markerAt := 0; markerAt <= 3; markerAt++ { // markers after op i
						d := newRevDriver(t, revConfig())
						d.plainCommit("g", "z", 0, 0) // keeps the group
						var trace []string
						markers := func() {
							for _, pid := range []int64{markerFirst, 15 - markerFirst} {
								c := map[int64]bool{7: e7, 8: e8}[pid]
								d.marker(pid, c)
								trace = append(trace, "marker"+string(rune('0'+pid))+map[bool]string{true: "C", false: "A"}[c])
							}
						}
						for i, k := range perm {
							if i == markerAt {
								markers()
							}
							ops[k].do(d)
							trace = append(trace, ops[k].name)
						}
						if markerAt == 3 {
							markers()
						}
						live, restarted, compacted := d.threeViews("g", "t", 0)
						if live != restarted || restarted != compacted {
							t.Errorf("%v: live %d, after a restart %d, after compaction + restart %d", trace, live, restarted, compacted)
						}
					}
				}
			}
		}
	}

}
