package txn

import (
	"flag"
	"fmt"
	"math/rand"
	"testing"
)

var simSeeds = flag.Int("txn.seeds", 300, "seeds for TestCoordinatorSimulation")

// simEffect is an effect the simulated driver holds until the schedule
// completes it: effects of different ids complete in any order.
type simEffect struct {
	id     string
	append *Append
	marker *MarkerWrite
	pid    bool
}

// sim drives a Coordinator with a seeded schedule: requests from a few
// clients (some presenting stale producer ids or epochs), effects
// completed in random order or failed, ticks, and crashes that lose
// everything not yet durable. The durable log is what __transaction_state
// would hold.
type sim struct {
	t       *testing.T
	rng     *rand.Rand
	c       *Coordinator
	now     int64
	log     []Meta // durable records, in order (a nil Meta is not kept: tombstones are Status "")
	pool    []simEffect
	nextPID int64
	token   uint64
	waiting map[uint64]string          // token -> transactional id
	pairs   map[string]ProducerIDEpoch // last pair each client got
	trace   []string
}

var simCfg = Config{MaxTimeoutMs: 60000, IDExpirationMs: 50000, SettleWaitMs: 1000}

func (s *sim) logf(format string, args ...any) {
	s.trace = append(s.trace, fmt.Sprintf("%6d ", s.now)+fmt.Sprintf(format, args...))
}

func (s *sim) fail(format string, args ...any) {
	s.t.Helper()
	for _, l := range s.trace {
		s.t.Log(l)
	}
	s.t.Fatalf(format, args...)
}

// latest is the last durable record of id (nil: none or a tombstone).
func (s *sim) latest(id string) *Meta {
	for i := len(s.log) - 1; i >= 0; i-- {
		if s.log[i].TransactionalID == id {
			if s.log[i].Status == "" {
				return nil
			}
			return &s.log[i]
		}
	}
	return nil
}

func (s *sim) apply(rd Ready) {
	for _, r := range rd.Responses {
		id, ok := s.waiting[r.Token]
		if !ok {
			s.fail("response to token %d, which waits for none", r.Token)
		}
		delete(s.waiting, r.Token)
		if r.Err == nil && r.ProducerID >= 0 {
			s.pairs[id] = ProducerIDEpoch{r.ProducerID, r.ProducerEpoch}
		}
		s.logf("response %d: %d/%d %v", r.Token, r.ProducerID, r.ProducerEpoch, r.Err)
	}
	for i := range rd.Appends {
		a := rd.Appends[i]
		s.pool = append(s.pool, simEffect{id: a.TransactionalID, append: &a})
	}
	for i := range rd.Markers {
		m := rd.Markers[i]
		// A marker is asked for only once the transaction's Prepare is
		// durable: its outcome is fixed.
		l := s.latest(m.Meta.TransactionalID)
		want := PrepareAbort
		if m.Commit {
			want = PrepareCommit
		}
		if l == nil || l.Status != want || l.ProducerID != m.Meta.ProducerID || l.ProducerEpoch != m.Meta.ProducerEpoch {
			s.fail("markers (commit=%v) for %+v asked while the durable record is %+v", m.Commit, *m.Meta, l)
		}
		s.pool = append(s.pool, simEffect{id: m.Meta.TransactionalID, marker: &m})
	}
	for range rd.NeedProducerIDs {
		s.pool = append(s.pool, simEffect{pid: true})
	}
	// One operation per id at a time: never two effects of one id.
	seen := map[string]bool{}
	for _, e := range s.pool {
		if e.pid {
			continue
		}
		if seen[e.id] {
			s.fail("two effects of %q in flight", e.id)
		}
		seen[e.id] = true
	}
	s.checkView()
}

// checkView: the view never lets a write into a transaction that is not
// durably open with that partition, at that producer id and epoch.
func (s *sim) checkView() {
	for _, id := range simIDs {
		l := s.latest(id)
		for _, tp := range simTPs {
			for pid := int64(1); pid <= s.nextPID; pid++ {
				for _, epoch := range []int16{0, 1, 2, 3, 4, 5, 6} {
					if s.c.View().InTransaction(pid, epoch, tp) != nil {
						continue
					}
					p := s.c.View().shards[shardOf(pid)][pid]
					if p.TransactionalID != id {
						continue
					}
					if l == nil || l.Status != Ongoing || l.ProducerID != pid || l.ProducerEpoch != epoch || !containsTP(l.Partitions, tp) {
						s.fail("view verifies %d/%d %v of %q; durable: %+v", pid, epoch, tp, id, l)
					}
				}
			}
		}
	}
}

var (
	simIDs = []string{"a", "b", "c"}
	simTPs = []TopicPartition{{"t", 0}, {"t", 1}}
)

func (s *sim) request() {
	id := simIDs[s.rng.Intn(len(simIDs))]
	pair, ok := s.pairs[id]
	if !ok || s.rng.Intn(10) == 0 {
		pair = ProducerIDEpoch{int64(s.rng.Intn(int(s.nextPID) + 1)), int16(s.rng.Intn(4))}
	}
	var req Request
	switch k := s.rng.Intn(10); {
	case k < 2:
		r := InitProducerID{TransactionalID: id, TimeoutMs: 10000, ProducerID: -1, ProducerEpoch: -1}
		if s.rng.Intn(2) == 0 {
			r.ProducerID, r.ProducerEpoch = pair.ProducerID, pair.ProducerEpoch
		}
		req = r
	case k < 6:
		req = AddPartitions{TransactionalID: id, ProducerID: pair.ProducerID, ProducerEpoch: pair.ProducerEpoch, Partitions: []TopicPartition{simTPs[s.rng.Intn(len(simTPs))]}}
	default:
		req = End{TransactionalID: id, ProducerID: pair.ProducerID, ProducerEpoch: pair.ProducerEpoch, Commit: s.rng.Intn(3) > 0}
	}
	s.token++
	s.waiting[s.token] = id
	s.logf("request %d: %+v", s.token, req)
	s.apply(s.c.Step(s.now, Input{Token: s.token, Req: req}))
}

// complete finishes one effect in flight, failing it sometimes.
func (s *sim) complete(fail bool) {
	i := s.rng.Intn(len(s.pool))
	e := s.pool[i]
	s.pool = append(s.pool[:i], s.pool[i+1:]...)
	var err error
	if fail {
		err = fmt.Errorf("injected")
	}
	switch {
	case e.pid:
		s.nextPID++
		s.logf("producer id %d", s.nextPID)
		s.apply(s.c.ProducerID(s.now, s.nextPID, nil))
	case e.append != nil:
		if err == nil {
			m := Meta{TransactionalID: e.id}
			if e.append.Meta != nil {
				m = *e.append.Meta.clone()
			}
			s.log = append(s.log, m)
		}
		s.logf("append %d of %q (%v): %v", e.append.ID, e.id, statusOf(e.append.Meta), err)
		s.apply(s.c.AppendDone(s.now, e.append.ID, err))
	default:
		s.logf("markers %d of %q: %v", e.marker.ID, e.id, err)
		s.apply(s.c.MarkersDone(s.now, e.marker.ID, err))
	}
}

func statusOf(m *Meta) Status {
	if m == nil {
		return "tombstone"
	}
	return m.Status
}

// restart loses everything not durable and rebuilds from the log.
func (s *sim) restart() {
	s.logf("crash and restart")
	s.pool, s.waiting = nil, map[uint64]string{}
	s.c = New(simCfg)
	for i := range s.log {
		m := s.log[i]
		if m.Status == "" {
			s.c.Replay(m.TransactionalID, nil)
		} else {
			s.c.Replay(m.TransactionalID, &m)
		}
	}
	s.apply(s.c.Loaded(s.now))
}

func (s *sim) anyPrepared() bool {
	for _, m := range s.c.List() {
		if preparing(m.Status) {
			return true
		}
	}
	return false
}

// checkOutcomes: in the durable log, a Prepare is always followed, before
// any other state of its id, by the Complete of the same outcome.
func (s *sim) checkOutcomes() {
	prepared := map[string]Status{}
	for _, m := range s.log {
		p, ok := prepared[m.TransactionalID]
		switch {
		case ok && preparing(m.Status) && m.Status != p:
			s.fail("%q prepared as %s, then as %s", m.TransactionalID, p, m.Status)
		case ok && !preparing(m.Status) && !(p == PrepareCommit && m.Status == CompleteCommit || p == PrepareAbort && m.Status == CompleteAbort):
			s.fail("%q prepared as %s, then %s", m.TransactionalID, p, statusOf(&m))
		}
		if preparing(m.Status) {
			prepared[m.TransactionalID] = m.Status
		} else {
			delete(prepared, m.TransactionalID)
		}
	}
}

// The coordinator's safety under any order of effects, failures and
// crashes: one effect per id in flight, markers only after a durable
// Prepare, an outcome never changed once prepared, the view never ahead
// of the durable state, and every request answered once all effects are
// done and its wait bound has passed.
func TestCoordinatorSimulation(t *testing.T) {
	for seed := int64(1); seed <= int64(*simSeeds); seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			s := &sim{t: t, rng: rand.New(rand.NewSource(seed)), c: New(simCfg), waiting: map[uint64]string{}, pairs: map[string]ProducerIDEpoch{}}
			for step := 0; step < 300; step++ {
				s.now += int64(s.rng.Intn(200))
				switch k := s.rng.Intn(100); {
				case k < 40:
					s.request()
				case k < 85 && len(s.pool) > 0:
					s.complete(s.rng.Intn(8) == 0)
				case k < 95:
					s.logf("tick")
					s.apply(s.c.Tick(s.now))
				case k < 97:
					s.now += 70000 // past timeouts and expiration
					s.logf("tick, much later")
					s.apply(s.c.Tick(s.now))
				default:
					s.restart()
				}
			}
			// Quiesce: complete everything, tick past every bound (and
			// so retry failed completions), until nothing is left.
			for round := 0; round < 50; round++ {
				for len(s.pool) > 0 {
					s.complete(false)
				}
				if len(s.waiting) == 0 && !s.anyPrepared() {
					break
				}
				s.now += 2000
				s.logf("tick, quiescing")
				s.apply(s.c.Tick(s.now))
			}
			if len(s.waiting) > 0 || len(s.pool) > 0 {
				s.fail("%d requests unanswered, %d effects in flight after quiescing", len(s.waiting), len(s.pool))
			}
			s.checkOutcomes()
			for _, id := range simIDs {
				if m := s.c.Describe([]string{id})[id]; preparing(m.Status) {
					s.fail("%q still %s after quiescing", id, m.Status)
				}
			}
		})
	}
}
