package txn

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
)

// The requests. Each runs while its id is idle, and may span several
// effects; the id stays busy until the last one is reported.

// initProducerID serves InitProducerId with a transactional id: a new id
// gets a producer id at epoch 0; a known one has its epoch bumped, which
// fences every older instance, and any transaction it left open is
// aborted first (one left prepared is completed first). With a producer
// id and epoch given (KIP-360), they must be the current ones, or the
// ones the last bump was asked with: that is a retry of the bump,
// answered with the current pair and no new bump.
func (c *Coordinator) initProducerID(nowMs int64, token uint64, r InitProducerID) {
	if r.TimeoutMs <= 0 || int64(r.TimeoutMs) > c.cfg.MaxTimeoutMs {
		c.respond(token, kerr.InvalidTransactionTimeout)
		return
	}
	id := r.TransactionalID
	answer := func(_ int64, err error) {
		if err != nil {
			c.respond(token, err)
			return
		}
		m := c.txns[id]
		c.out.Responses = append(c.out.Responses, Response{Token: token, ProducerID: m.ProducerID, ProducerEpoch: m.ProducerEpoch})
	}
	m, ok := c.txns[id]
	if !ok {
		c.withProducerID(id, func(nowMs int64, pid int64, err error) {
			if err != nil {
				c.respond(token, err)
				return
			}
			c.put(id, &Meta{TransactionalID: id, ProducerID: pid, ProducerEpoch: 0, TimeoutMs: r.TimeoutMs, Status: Empty, StartMs: -1, UpdateMs: nowMs}, answer)
		})
		return
	}
	if r.ProducerID >= 0 && (r.ProducerID != m.ProducerID || r.ProducerEpoch != m.ProducerEpoch) {
		if m.Last != nil && *m.Last == (ProducerIDEpoch{r.ProducerID, r.ProducerEpoch}) {
			answer(nowMs, nil)
			return
		}
		c.respond(token, kerr.ProducerFenced)
		return
	}
	bump := func(nowMs int64, err error) {
		if err != nil {
			c.respond(token, err)
			return
		}
		c.bump(nowMs, r, answer)
	}
	switch m.Status {
	case PrepareCommit, PrepareAbort:
		c.complete(m, m.Status == PrepareCommit, bump)
	case Ongoing:
		// The previous instance left a transaction open: abort it at a
		// bumped epoch so that instance is fenced from the partitions too.
		// When the producer itself asked for the bump (KIP-360), the abort
		// remembers its pair already: a retry after a crash between the
		// abort and the bump is answered, not fenced.
		var last *ProducerIDEpoch
		if r.ProducerID >= 0 {
			last = &ProducerIDEpoch{r.ProducerID, r.ProducerEpoch}
		}
		c.abortFencing(nowMs, m, last, bump)
	default:
		bump(nowMs, nil)
	}
}

// bump makes the epoch bump of an InitProducerId durable: a new producer
// id once the epoch would reach its maximum.
func (c *Coordinator) bump(nowMs int64, r InitProducerID, done func(int64, error)) {
	id := r.TransactionalID
	install := func(nowMs int64, pid int64, epoch int16) {
		next := c.txns[id].clone()
		next.ProducerID, next.ProducerEpoch = pid, epoch
		next.TimeoutMs, next.Status, next.Partitions, next.Groups, next.StartMs, next.UpdateMs = r.TimeoutMs, Empty, nil, nil, -1, nowMs
		next.Last = nil
		if r.ProducerID >= 0 {
			// Remembered durably, so the retry is recognised after a
			// restart and across a new producer id (the epoch was
			// exhausted).
			next.Last = &ProducerIDEpoch{r.ProducerID, r.ProducerEpoch}
		}
		c.put(id, next, done)
	}
	m := c.txns[id]
	if m.ProducerEpoch < 1<<15-2 {
		install(nowMs, m.ProducerID, m.ProducerEpoch+1)
		return
	}
	c.withProducerID(id, func(nowMs int64, pid int64, err error) {
		if err != nil {
			done(nowMs, err)
			return
		}
		install(nowMs, pid, 0)
	})
}

// check finds the transaction of id and verifies the caller owns it.
func (c *Coordinator) check(id string, pid int64, epoch int16) (*Meta, error) {
	m, ok := c.txns[id]
	switch {
	case !ok || m.ProducerID != pid:
		return nil, kerr.InvalidProducerIDMapping
	case epoch < m.ProducerEpoch:
		return nil, kerr.ProducerFenced
	case epoch > m.ProducerEpoch:
		return nil, kerr.InvalidProducerEpoch
	}
	return m, nil
}

// addPartitions adds partitions (and groups, for AddOffsetsToTxn) to the
// open transaction, opening one if none is. While the previous
// transaction is still being completed it waits, then answers
// CONCURRENT_TRANSACTIONS (retriable).
func (c *Coordinator) addPartitions(nowMs int64, p parked, r AddPartitions) {
	m, err := c.check(r.TransactionalID, r.ProducerID, r.ProducerEpoch)
	if err != nil {
		c.respond(p.in.Token, err)
		return
	}
	if preparing(m.Status) {
		c.concurrent(nowMs, p)
		return
	}
	next := m.clone()
	if m.Status != Ongoing {
		// The start names the transaction (an operator's Abort gives
		// it), so it is later than the previous one's completion, which
		// is no earlier than its start: two transactions of a producer
		// id and epoch never share one, even within a millisecond.
		next.Partitions, next.Groups, next.StartMs = nil, nil, max(nowMs, m.UpdateMs+1)
	}
	added := false
	for _, tp := range r.Partitions {
		if !containsTP(next.Partitions, tp) {
			next.Partitions = append(next.Partitions, tp)
			added = true
		}
	}
	for _, g := range r.Groups {
		if !containsString(next.Groups, g) {
			next.Groups = append(next.Groups, g)
			added = true
		}
	}
	if c.cfg.MaxPartitionsPerTxn > 0 && len(next.Partitions) > c.cfg.MaxPartitionsPerTxn {
		c.respond(p.in.Token, kerr.InvalidRequest)
		return
	}
	if m.Status == Ongoing && !added {
		c.respond(p.in.Token, nil) // a retry: already durable
		return
	}
	next.Status, next.UpdateMs = Ongoing, nowMs
	sortTPs(next.Partitions)
	c.put(r.TransactionalID, next, func(_ int64, err error) { c.respond(p.in.Token, err) })
}

// end commits or aborts the open transaction (EndTxn). The outcome is
// decided, and answered, once PrepareCommit or PrepareAbort is durable:
// from then on recovery would finish it the same way. The markers and the
// Complete record are asked for right after; until they are durable,
// AddPartitions and End for this id wait, then answer
// CONCURRENT_TRANSACTIONS. A retry of an end that went the same way
// succeeds once it is complete.
func (c *Coordinator) end(nowMs int64, p parked, r End) {
	m, err := c.check(r.TransactionalID, r.ProducerID, r.ProducerEpoch)
	if err != nil {
		c.respond(p.in.Token, err)
		return
	}
	switch {
	case preparing(m.Status):
		c.concurrent(nowMs, p)
		return
	case m.Status == Ongoing:
	case m.Status == CompleteCommit && r.Commit, m.Status == CompleteAbort && !r.Commit:
		c.respond(p.in.Token, nil)
		return
	case m.Status == Empty && !r.Commit:
		c.respond(p.in.Token, nil) // nothing was added: nothing to abort
		return
	default:
		c.respond(p.in.Token, kerr.InvalidTxnState)
		return
	}
	c.prepare(nowMs, m, r.Commit, func(_ int64, prepared *Meta, err error) {
		c.respond(p.in.Token, err)
		if err == nil {
			c.completeInBackground(r.TransactionalID, prepared, "complete")
		}
	})
}

// abort serves an operator's Abort: it answers once the abort markers are
// durable everywhere, so the transaction is gone from the coordinator's
// open ones and every partition's LSO has moved past it.
func (c *Coordinator) abort(nowMs int64, p parked, r Abort) {
	m, ok := c.txns[r.TransactionalID]
	switch {
	case !ok:
		c.respond(p.in.Token, kerr.TransactionalIDNotFound)
		return
	case preparing(m.Status):
		c.concurrent(nowMs, p)
		return
	case m.Status != Ongoing || m.ProducerID != r.ProducerID || m.ProducerEpoch != r.ProducerEpoch || m.StartMs != r.StartMs:
		c.respond(p.in.Token, fmt.Errorf("%w: %q has no open transaction under producer %d epoch %d begun at %d ms",
			kerr.InvalidTxnState, r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.StartMs))
		return
	}
	c.abortFencing(nowMs, m, nil, func(_ int64, err error) { c.respond(p.in.Token, err) })
}

// prepare makes PrepareCommit or PrepareAbort durable.
func (c *Coordinator) prepare(nowMs int64, m *Meta, commit bool, done func(int64, *Meta, error)) {
	next := m.clone()
	next.Status, next.UpdateMs, next.TxnSeq = PrepareAbort, nowMs, m.TxnSeq+1
	if commit {
		next.Status = PrepareCommit
	}
	c.put(m.TransactionalID, next, func(nowMs int64, err error) { done(nowMs, next, err) })
}

// complete writes m's markers, then its Complete record.
func (c *Coordinator) complete(m *Meta, commit bool, done func(int64, error)) {
	c.writeMarkers(m, commit, func(nowMs int64, err error) {
		if err != nil {
			done(nowMs, err)
			return
		}
		next := m.clone()
		// Never before the start, so the next transaction's start,
		// taken after this, differs from this one's.
		next.Status, next.Partitions, next.Groups, next.StartMs, next.UpdateMs = CompleteAbort, nil, nil, -1, max(nowMs, m.StartMs)
		if commit {
			next.Status = CompleteCommit
		}
		c.put(m.TransactionalID, next, done)
	})
}

// abortFencing aborts m's open transaction at a bumped epoch, so the
// producer that opened it can write no more (its epoch is now old both
// here and at every partition, through the markers). last is the pair of
// the InitProducerId that asked for the bump, or nil. The markers carry
// the producer id that wrote the data, also when its epoch is exhausted:
// the bump that follows moves to a new id then.
func (c *Coordinator) abortFencing(nowMs int64, m *Meta, last *ProducerIDEpoch, done func(int64, error)) {
	next := m.clone()
	next.ProducerEpoch++
	next.Last = last
	c.prepare(nowMs, next, false, func(nowMs int64, prepared *Meta, err error) {
		if err != nil {
			done(nowMs, err)
			return
		}
		c.complete(prepared, false, done)
	})
}
