package e2e

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A follower's log start follows its leader's: a follower that was down
// while the leader deleted records below the offset it would fetch from
// starts its log again at the leader's log start and rejoins the ISR, and
// records deleted on the leader are gone from every replica, so a
// follower elected later never shows them again.
func TestClusterFollowerLogStartFollowsTheLeader(t *testing.T) {
	session := 2 * time.Second
	tc := startCluster(t, 3, "--set", "broker.session.timeout.ms=2000", "--set", "broker.heartbeat.interval.ms=300",
		"--set", "replica.lag.time.max.ms=2000")
	ctrl := tc.waitController(15 * time.Second)
	const topic = "logstart"
	tc.createReplicated(ctrl, topic, 1, 3, 1)
	st, _ := tc.partitionState(ctrl, topic, 0)
	leader := int(st.Leader - 1)
	behind := (leader + 1) % 3
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	seeds := tc.seeds()
	cl := newClient(t, seeds[leader], kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic))
	adm := kadm.NewClient(cl)
	produce := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
		}
	}
	deleteBefore := func(off int64) {
		t.Helper()
		os := kadm.Offsets{}
		os.Add(kadm.Offset{Topic: topic, Partition: 0, At: off})
		res, err := adm.DeleteRecords(ctx, os)
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := res.Lookup(topic, 0); r.Err != nil || r.LowWatermark != off {
			t.Fatalf("delete records before %d: %+v", off, r)
		}
	}
	inISR := func(node int) bool {
		st, ok := tc.partitionState(int(st.Leader-1), topic, 0)
		return ok && slices.Contains(st.ISR, int32(node+1))
	}

	tc.c.Kill(behind)
	produce(0, 200)
	deleteBefore(150)
	if err := tc.c.Start(behind); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !inISR(behind) {
		if time.Now().After(deadline) {
			t.Fatalf("node %d, restarted with a log ending below the leader's log start 150, did not rejoin the ISR", behind+1)
		}
		time.Sleep(100 * time.Millisecond)
	}
	produce(200, 250)
	deleteBefore(180)
	// An acks=all write after the deletion is acknowledged once every ISR
	// member fetched past it, and the answers to those fetches carry the
	// new log start.
	produce(250, 251)

	// Move leadership until the follower that was behind leads: kill the
	// leader, wait for the next, restart the killed node.
	for round := 0; ; round++ {
		cur, ok := tc.partitionState(behind, topic, 0)
		if ok && int(cur.Leader-1) == behind {
			break
		}
		if round == 6 {
			t.Fatalf("node %d never came to lead %s-0", behind+1, topic)
		}
		if !ok || cur.Leader < 1 {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		victim := int(cur.Leader - 1)
		// Only a caught-up follower may be elected; wait for both.
		deadline := time.Now().Add(30 * time.Second)
		for {
			now, ok := tc.partitionState(victim, topic, 0)
			if ok && len(now.ISR) == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("ISR of %s-0 did not fill again: %+v", topic, now)
			}
			time.Sleep(100 * time.Millisecond)
		}
		tc.c.Kill(victim)
		time.Sleep(session + time.Second)
		tc.waitController(30 * time.Second)
		if err := tc.c.Start(victim); err != nil {
			t.Fatal(err)
		}
		tc.waitController(30 * time.Second)
	}

	rd := newClient(t, seeds[behind], kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	starts, err := kadm.NewClient(rd).ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := starts.Lookup(topic, 0); o.Err != nil || o.Offset != 180 {
		t.Fatalf("log start on node %d, now leader: %+v; want 180, the leader's log start when it followed", behind+1, o)
	}
	var got []int
	for len(got) < 71 {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %v", got)
		}
		fs.EachRecord(func(r *kgo.Record) {
			v, _ := strconv.Atoi(string(r.Value))
			got = append(got, v)
		})
	}
	for i, v := range got {
		if v != 180+i {
			t.Fatalf("record %d read from node %d is %d; want %d (the records from the log start on, once each)", i, behind+1, v, 180+i)
		}
	}
}
