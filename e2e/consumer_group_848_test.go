package e2e

// The consumer group protocol (KIP-848) with franz-go's kgo as the member
// (kgo.ServerSideBalancer): the broker assigns partitions, members
// reconcile incrementally, and no partition is owned by two live members
// at once.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fast848 makes the coordinator's timers short enough for tests.
var fast848 = map[string]string{
	"group.consumer.heartbeat.interval.ms": "200",
	"group.consumer.session.timeout.ms":    "3000",
}

// ownership records which member owns which partition, as the members'
// own callbacks report it, and every moment two members owned the same
// partition.
type ownership struct {
	mu         sync.Mutex
	owner      map[int32]string
	violations []string
}

func newOwnership() *ownership { return &ownership{owner: map[int32]string{}} }

func (o *ownership) assigned(member string, ps []int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range ps {
		if cur, ok := o.owner[p]; ok && cur != member {
			o.violations = append(o.violations, fmt.Sprintf("partition %d given to %s while %s owns it", p, member, cur))
		}
		o.owner[p] = member
	}
}

func (o *ownership) released(member string, ps []int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range ps {
		if o.owner[p] == member {
			delete(o.owner, p)
		}
	}
}

// byMember is the current ownership as member -> sorted partitions.
func (o *ownership) byMember() map[string][]int32 {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string][]int32{}
	for p, m := range o.owner {
		out[m] = append(out[m], p)
	}
	for _, ps := range out {
		sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	}
	return out
}

func (o *ownership) errs() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.violations...)
}

// member848 is an in-process consumer-protocol member that polls until
// stopped.
type member848 struct {
	name string
	cl   *kgo.Client
	done chan struct{}
	stop context.CancelFunc
}

func startMember848(t *testing.T, addr, group, topic, name string, own *ownership, opts ...kgo.Opt) *member848 {
	t.Helper()
	m := &member848{name: name, done: make(chan struct{})}
	base := []kgo.Opt{
		kgo.SeedBrokers(addr),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ServerSideBalancer(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500 * time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) { own.assigned(name, a[topic]) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { own.released(name, r[topic]) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, l map[string][]int32) { own.released(name, l[topic]) }),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	m.cl = cl
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			cl.PollFetches(ctx)
		}
	}()
	t.Cleanup(m.close)
	return m
}

// close leaves the group (kgo's Close sends the leave heartbeat).
func (m *member848) close() {
	select {
	case <-m.done:
		return
	default:
	}
	m.stop()
	<-m.done
	m.cl.Close()
}

// waitOwnership polls until the members' ownership satisfies ok.
func waitOwnership(t *testing.T, own *ownership, what string, ok func(map[string][]int32) bool) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		cur := own.byMember()
		if ok(cur) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: ownership never settled; last %v", what, cur)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// balanced reports whether exactly the named members own partitions,
// together all n of them, each within one of the others.
func balanced(n int, members ...string) func(map[string][]int32) bool {
	return func(cur map[string][]int32) bool {
		if len(cur) != len(members) {
			return false
		}
		total, lo, hi := 0, n, 0
		for _, name := range members {
			ps := cur[name]
			total += len(ps)
			lo, hi = min(lo, len(ps)), max(hi, len(ps))
		}
		return total == n && hi-lo <= 1
	}
}

func describe848(t *testing.T, cl *kgo.Client, group string) kmsg.ConsumerGroupDescribeResponseGroup {
	t.Helper()
	req := kmsg.NewPtrConsumerGroupDescribeRequest()
	req.Groups = []string{group}
	resp, err := req.RequestWith(testCtx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Groups[0]
}

func TestConsumerGroup848MembersJoiningAndLeavingGetDisjointCoveringAssignments(t *testing.T) {
	b, _ := startBroker(t, fast848)
	addr := b.Addr()
	adm := newAdmin(t, addr)
	const topic, group, n = "cg848-join-leave", "cg848-join-leave-g", 6
	createTopic(t, adm, topic, n, nil)
	own := newOwnership()

	a := startMember848(t, addr, group, topic, "a", own)
	waitOwnership(t, own, "one member", balanced(n, "a"))
	bm := startMember848(t, addr, group, topic, "b", own)
	waitOwnership(t, own, "two members", balanced(n, "a", "b"))
	startMember848(t, addr, group, topic, "c", own)
	waitOwnership(t, own, "three members", balanced(n, "a", "b", "c"))

	g := describe848(t, newClient(t, addr), group)
	if g.ErrorCode != 0 || len(g.Members) != 3 || g.AssignorName != "uniform" {
		t.Fatalf("ConsumerGroupDescribe: code %d, %d members, assignor %q; want 3 members of a uniform group", g.ErrorCode, len(g.Members), g.AssignorName)
	}

	a.close()
	waitOwnership(t, own, "after a left", balanced(n, "b", "c"))
	bm.close()
	waitOwnership(t, own, "after b left", balanced(n, "c"))
	if v := own.errs(); len(v) > 0 {
		t.Fatalf("a partition was owned by two members at once: %v", v)
	}
}

// loopbackAddr848 is a free loopback address below the ephemeral range,
// for a broker restarted on the same address.
func loopbackAddr848(t *testing.T) string {
	t.Helper()
	for range 200 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatal("no free loopback port between 20000 and 32000")
	return ""
}

func TestConsumerGroup848SurvivesACoordinatorRestart(t *testing.T) {
	addr := loopbackAddr848(t)
	settings := map[string]string{"listeners": addr}
	for k, v := range fast848 {
		settings[k] = v
	}
	settings["group.consumer.session.timeout.ms"] = "20000" // the restart must not outlast the sessions
	b, dir := startBroker(t, settings)
	const topic, group, n = "cg848-restart", "cg848-restart-g", 4
	createTopic(t, newAdmin(t, addr), topic, n, nil)
	own := newOwnership()
	startMember848(t, addr, group, topic, "a", own)
	startMember848(t, addr, group, topic, "b", own)
	waitOwnership(t, own, "two members", balanced(n, "a", "b"))
	admin := newClient(t, addr)
	var before kmsg.ConsumerGroupDescribeResponseGroup
	eventually(t, "the group is stable", func() bool {
		before = describe848(t, admin, group)
		return before.State == "Stable"
	})
	owned := own.byMember()
	admin.Close()

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	startBrokerIn(t, dir, settings)

	admin = newClient(t, addr)
	var after kmsg.ConsumerGroupDescribeResponseGroup
	eventually(t, "the restarted coordinator answers", func() bool {
		after = describe848(t, admin, group)
		return !kerr.IsRetriable(kerr.ErrorForCode(after.ErrorCode))
	})
	if after.ErrorCode != 0 || after.Epoch != before.Epoch || len(after.Members) != len(before.Members) {
		t.Fatalf("after the restart: code %d, epoch %d, %d members; before: epoch %d, %d members",
			after.ErrorCode, after.Epoch, len(after.Members), before.Epoch, len(before.Members))
	}
	for i, m := range after.Members {
		if m.MemberID != before.Members[i].MemberID || m.MemberEpoch != before.Members[i].MemberEpoch {
			t.Fatalf("member %d after the restart: %s at epoch %d; before: %s at %d", i, m.MemberID, m.MemberEpoch, before.Members[i].MemberID, before.Members[i].MemberEpoch)
		}
	}
	// The members carry on heartbeating at their epochs: nothing moves.
	time.Sleep(2 * time.Second)
	if now := own.byMember(); fmt.Sprint(now) != fmt.Sprint(owned) {
		t.Fatalf("ownership changed across the restart: %v, before %v", now, owned)
	}
	if g := describe848(t, admin, group); g.Epoch != before.Epoch || g.State != "Stable" {
		t.Fatalf("after the members heartbeated again: epoch %d state %s, want epoch %d Stable", g.Epoch, g.State, before.Epoch)
	}
	if v := own.errs(); len(v) > 0 {
		t.Fatalf("a partition was owned by two members at once: %v", v)
	}
}

func TestConsumerGroup848OffsetCommitsAreCheckedByMemberEpoch(t *testing.T) {
	b, _ := startBroker(t, fast848)
	addr := b.Addr()
	const topic, group = "cg848-commit", "cg848-commit-g"
	createTopic(t, newAdmin(t, addr), topic, 2, nil)
	produceSpread(t, addr, topic, 0, 10)
	own := newOwnership()
	m := startMember848(t, addr, group, topic, "a", own, kgo.DisableAutoCommit())
	waitOwnership(t, own, "one member", balanced(2, "a"))
	g := describe848(t, newClient(t, addr), group)
	memberID, epoch := g.Members[0].MemberID, g.Members[0].MemberEpoch

	raw := newClient(t, addr)
	commit := func(member string, gen int32) int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.MemberID, req.Generation = group, member, gen
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = 0, 3
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(testCtx(t), raw)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	if code := commit(memberID, epoch+1); code != kerr.StaleMemberEpoch.Code {
		t.Fatalf("commit at an epoch the member is not at: %v, want STALE_MEMBER_EPOCH", kerr.ErrorForCode(code))
	}
	if code := commit("not-a-member", epoch); code != kerr.UnknownMemberID.Code {
		t.Fatalf("commit by an unknown member: %v, want UNKNOWN_MEMBER_ID", kerr.ErrorForCode(code))
	}
	if code := commit(memberID, epoch); code != 0 {
		t.Fatalf("commit at the member's epoch: %v", kerr.ErrorForCode(code))
	}
	// The member's own commits go through kgo at its epoch.
	var commitErr error
	m.cl.CommitOffsetsSync(testCtx(t), map[string]map[int32]kgo.EpochOffset{topic: {1: {Epoch: -1, Offset: 5}}},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err == nil {
				err = kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode)
			}
			commitErr = err
		})
	if commitErr != nil {
		t.Fatalf("the member's own commit: %v", commitErr)
	}
	offs, err := newAdmin(t, addr).FetchOffsets(testCtx(t), group)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := offs.Lookup(topic, 0); o.At != 3 {
		t.Fatalf("partition 0 committed at %d, want 3", o.At)
	}
	if o, _ := offs.Lookup(topic, 1); o.At != 5 {
		t.Fatalf("partition 1 committed at %d, want 5", o.At)
	}

	// A classic member cannot join the group while it has members.
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.ProtocolType, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = group, "consumer", 10000, 10000
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{}}}
	jr, err := join.RequestWith(testCtx(t), raw)
	if err != nil {
		t.Fatal(err)
	}
	if jr.ErrorCode != kerr.InconsistentGroupProtocol.Code {
		t.Fatalf("classic JoinGroup on a consumer group with members: %v, want INCONSISTENT_GROUP_PROTOCOL", kerr.ErrorForCode(jr.ErrorCode))
	}
}
