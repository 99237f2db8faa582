package txn

import (
	"errors"
	"testing"
)

// harness drives a Coordinator as a driver would, synchronously: appends
// are recorded (as __transaction_state would keep them) and reported at
// once, marker writes too unless held, and producer ids come from a
// counter. Failures are injected by count.
type harness struct {
	t           *testing.T
	c           *Coordinator
	cfg         Config
	puts        []Meta // every durable record, in order
	markers     []string
	nextPID     int64
	failPuts    int // fail this many appends from now
	failMarkers int // fail this many marker writes from now
	holdMarkers bool
	held        []MarkerWrite
	token       uint64
	responses   map[uint64]Response
	errs        []error
}

var defaultConfig = Config{MaxTimeoutMs: 60000, IDExpirationMs: 1000000}

func newHarness(t *testing.T, cfg Config) *harness {
	return &harness{t: t, c: New(cfg), cfg: cfg, responses: map[uint64]Response{}}
}

func newCoordinator(t *testing.T) *harness { return newHarness(t, defaultConfig) }

// apply carries out a Ready and everything it leads to.
func (h *harness) apply(nowMs int64, rd Ready) {
	for _, r := range rd.Responses {
		h.responses[r.Token] = r
	}
	h.errs = append(h.errs, rd.Errors...)
	for range rd.NeedProducerIDs {
		h.nextPID++
		h.apply(nowMs, h.c.ProducerID(nowMs, h.nextPID, nil))
	}
	for _, a := range rd.Appends {
		var err error
		if h.failPuts > 0 {
			h.failPuts--
			err = errors.New("injected: put failed")
		} else if a.Meta != nil {
			h.puts = append(h.puts, *a.Meta.clone())
		}
		h.apply(nowMs, h.c.AppendDone(nowMs, a.ID, err))
	}
	for _, m := range rd.Markers {
		if h.holdMarkers {
			h.held = append(h.held, m)
			continue
		}
		h.writeMarkers(nowMs, m)
	}
}

func (h *harness) writeMarkers(nowMs int64, m MarkerWrite) {
	var err error
	if h.failMarkers > 0 {
		h.failMarkers--
		err = errors.New("injected: marker write failed")
	} else {
		kind := "abort"
		if m.Commit {
			kind = "commit"
		}
		h.markers = append(h.markers, kind)
	}
	h.apply(nowMs, h.c.MarkersDone(nowMs, m.ID, err))
}

// releaseMarkers writes the held marker writes.
func (h *harness) releaseMarkers(nowMs int64) {
	held := h.held
	h.held = nil
	for _, m := range held {
		h.writeMarkers(nowMs, m)
	}
}

// send steps a request and returns its token.
func (h *harness) send(nowMs int64, req Request) uint64 {
	h.token++
	tok := h.token
	h.apply(nowMs, h.c.Step(nowMs, Input{Token: tok, Req: req}))
	return tok
}

// answer returns the response to token, if there is one yet.
func (h *harness) answer(tok uint64) (Response, bool) {
	r, ok := h.responses[tok]
	return r, ok
}

var errNoAnswer = errors.New("no answer yet")

func (h *harness) do(nowMs int64, req Request) Response {
	r, ok := h.answer(h.send(nowMs, req))
	if !ok {
		return Response{ProducerID: -1, ProducerEpoch: -1, Err: errNoAnswer}
	}
	return r
}

func (h *harness) InitProducerID(id string, timeoutMs int32, pid int64, epoch int16, nowMs int64) (int64, int16, error) {
	r := h.do(nowMs, InitProducerID{TransactionalID: id, TimeoutMs: timeoutMs, ProducerID: pid, ProducerEpoch: epoch})
	return r.ProducerID, r.ProducerEpoch, r.Err
}

func (h *harness) AddPartitions(id string, pid int64, epoch int16, parts []TopicPartition, groups []string, nowMs int64) error {
	return h.do(nowMs, AddPartitions{TransactionalID: id, ProducerID: pid, ProducerEpoch: epoch, Partitions: parts, Groups: groups}).Err
}

func (h *harness) End(id string, pid int64, epoch int16, commit bool, nowMs int64) error {
	return h.do(nowMs, End{TransactionalID: id, ProducerID: pid, ProducerEpoch: epoch, Commit: commit}).Err
}

// Tick runs a tick and returns the errors it (and what it led to)
// reported.
func (h *harness) Tick(nowMs int64) []error {
	h.errs = nil
	h.apply(nowMs, h.c.Tick(nowMs))
	return h.errs
}

// Loaded ends a replay, returning the errors recovery reported.
func (h *harness) Loaded(nowMs int64) []error {
	h.errs = nil
	h.apply(nowMs, h.c.Loaded(nowMs))
	return h.errs
}

func (h *harness) Replay(id string, m *Meta) { h.c.Replay(id, m) }

func (h *harness) Describe(ids []string) map[string]Meta { return h.c.Describe(ids) }

func (h *harness) InTransaction(pid int64, epoch int16, tp TopicPartition) error {
	return h.c.View().InTransaction(pid, epoch, tp)
}

// restart builds a new coordinator from the durable records and recovers.
func (h *harness) restart(t *testing.T) *harness {
	t.Helper()
	h2 := newHarness(t, h.cfg)
	h2.nextPID, h2.puts = h.nextPID, append([]Meta(nil), h.puts...)
	for i := range h.puts {
		m := h.puts[i]
		h2.Replay(m.TransactionalID, &m)
	}
	if err := errors.Join(h2.Loaded(100)...); err != nil {
		t.Fatalf("recover: %v", err)
	}
	return h2
}
