package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// groupSettings make groups form and notice dead members quickly, and keep
// __consumer_offsets in small segments that the cleaner compacts often.
var groupSettings = map[string]string{
	"group.initial.rebalance.delay.ms": "0",
	"group.min.session.timeout.ms":     "1000",
	"offsets.topic.num.partitions":     "5",
	"offsets.topic.segment.bytes":      "4096",
	"log.cleaner.backoff.ms":           "200",
}

func procArgs(settings map[string]string) []string {
	var args []string
	for k, v := range settings {
		args = append(args, "--set", k+"="+v)
	}
	return args
}

const memberSession = 3 * time.Second

// committedEqualsEnd reports whether the group's committed offsets are the
// end offsets of every partition of topic.
func committedEqualsEnd(t testing.TB, adm *kadm.Client, group, topic string) bool {
	ctx := testCtx(t)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return false
	}
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false
	}
	equal := true
	ends.Each(func(e kadm.ListedOffset) {
		o, ok := offs.Lookup(topic, e.Partition)
		equal = equal && ok && o.Err == nil && o.At == e.Offset
	})
	return equal
}

// stableWith reports whether group is Stable with n members that each own
// at least one partition.
func stableWith(t testing.TB, adm *kadm.Client, group string, n int) bool {
	d, err := adm.DescribeGroups(testCtx(t), group)
	if err != nil || d[group].State != "Stable" || len(d[group].Members) != n {
		return false
	}
	for _, m := range d[group].Members {
		if c, ok := m.Assigned.AsConsumer(); !ok || len(c.Topics) == 0 {
			return false
		}
	}
	return true
}

// Three members share a six-partition topic. One leaves, one is killed
// with SIGKILL (no LeaveGroup); the survivors take over their partitions
// at the committed offsets, so with synchronous commits after processing
// no record is consumed twice or lost. The broker is then killed with
// SIGKILL and restarted: the offsets are still there, the surviving member
// carries on, and a new member of a later generation starts exactly at
// the committed offsets.
func TestGroupMembersRebalanceAndResumeAtCommittedOffsets(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, "127.0.0.1:0", dir, procArgs(groupSettings)...)
	addr := p.addr
	adm := newAdmin(t, addr)
	createTopic(t, adm, "work", 6, nil)
	const group = "workers"
	tl := newTally()

	a := startInMember(t, addr, group, "work", memberSession, tl.sink("a"))
	b := startInMember(t, addr, group, "work", memberSession, tl.sink("b"))
	c := startChildMember(t, addr, group, "work", processThenCommit, memberSession)
	var killC sync.Once
	killRequested := make(chan struct{})
	cDead := make(chan struct{})
	go func() {
		defer close(cDead)
		ctx := context.Background()
		for {
			recs, _, point := c.cycle(ctx)
			for _, r := range recs {
				tl.add("c", r.value)
			}
			select {
			case <-killRequested:
				if point == "idle" { // everything it processed is committed
					c.kill()
					return
				}
			default:
			}
			if point != "before-commit" && point != "idle" {
				return
			}
			c.resume()
		}
	}()
	eventually(t, "three members share the partitions", func() bool { return stableWith(t, adm, group, 3) })

	produceSpread(t, addr, "work", 0, 300)
	eventually(t, "first 300 consumed", func() bool { return tl.distinct() == 300 })
	if tl.count("a") == 0 || tl.count("b") == 0 || tl.count("c") == 0 {
		t.Fatalf("not every member consumed: a %d, b %d, c %d", tl.count("a"), tl.count("b"), tl.count("c"))
	}

	a.leave() // LeaveGroup: b and c take a's partitions
	produceSpread(t, addr, "work", 300, 600)
	eventually(t, "600 consumed after a left", func() bool { return tl.distinct() == 600 })

	killC.Do(func() { close(killRequested) })
	produceSpread(t, addr, "work", 600, 900) // c stops at its next idle point and dies there
	<-cDead
	eventually(t, "900 consumed after c died", func() bool { return tl.distinct() == 900 })
	eventually(t, "b alone in the group", func() bool { return stableWith(t, adm, group, 1) })
	eventually(t, "everything committed", func() bool { return committedEqualsEnd(t, adm, group, "work") })
	tl.exactlyOnce(t, 900)

	before, err := adm.FetchOffsets(testCtx(t), group)
	if err != nil {
		t.Fatal(err)
	}
	p.kill()
	startProc(t, addr, dir, procArgs(groupSettings)...)
	after, err := adm.FetchOffsets(testCtx(t), group)
	if err != nil {
		t.Fatal(err)
	}
	before.Each(func(o kadm.OffsetResponse) {
		if a, ok := after.Lookup(o.Topic, o.Partition); !ok || a.At != o.At {
			t.Errorf("%s[%d]: committed %d before the broker was killed, %d after", o.Topic, o.Partition, o.At, a.At)
		}
	})

	// b's membership survived the restart: it goes on consuming.
	produceSpread(t, addr, "work", 900, 1000)
	eventually(t, "b consumes after the restart", func() bool { return tl.distinct() == 1000 })
	eventually(t, "b committed after the restart", func() bool { return committedEqualsEnd(t, adm, group, "work") })
	b.leave()

	// A member of a new generation starts at the committed offsets.
	produceSpread(t, addr, "work", 1000, 1100)
	startInMember(t, addr, group, "work", memberSession, tl.sink("d"))
	eventually(t, "d consumes what was produced since", func() bool { return tl.distinct() == 1100 })
	eventually(t, "d committed", func() bool { return committedEqualsEnd(t, adm, group, "work") })
	if got := tl.count("d"); got != 100 {
		t.Errorf("the new member consumed %d records, want the 100 after the committed offsets", got)
	}
	tl.exactlyOnce(t, 1100)
}
