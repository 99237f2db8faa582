package controller

import (
	"encoding/json"
	"slices"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/weir-broker/weir/internal/metadata"
)

// applyLoop applies committed entries in order, once SetListener started
// it.
func (q *quorum) applyLoop() {
	defer q.wg.Done()
	select {
	case <-q.started:
	case <-q.stop:
		return
	}
	for {
		select {
		case <-q.stop:
			return
		case t := <-q.applyc:
			if err := q.applyTask(t); err != nil {
				q.fail(err)
				return
			}
		}
	}
}

// applyTask installs a task's snapshot, if newer than the image, then
// applies its entries in order.
func (q *quorum) applyTask(t applyTask) error {
	if t.snap != nil {
		si := t.snap.GetMetadata().GetIndex()
		if int64(si) > q.c.image.Offset {
			im, err := metadata.DecodeImage(t.snap.GetData(), int64(si))
			if err != nil {
				return err
			}
			q.c.replace(im)
			q.snapIndex, q.bytesSinceSnap = si, 0
			q.snapshotsInstalled.Add(1)
			if q.tr != nil {
				for id, addr := range im.Learners {
					q.tr.addPeer(uint64(id), addr)
				}
			}
		}
	}
	for _, e := range t.entries {
		q.applyEntry(e)
	}
	return q.maybeSnapshot()
}

// applyEntry applies one committed entry and answers its proposer when
// that is this process.
func (q *quorum) applyEntry(e *pb.Entry) {
	idx := int64(e.GetIndex())
	if idx <= q.c.image.Offset {
		return // already in the image (a snapshot covered it)
	}
	if e.GetType() != pb.EntryType_EntryNormal || len(e.GetData()) == 0 {
		// The leader's empty entry of a new term, or a configuration
		// change: a learner joining (join.go), recorded with its address.
		if id, addr, ok := decodeLearner(e, q.voters); ok {
			q.c.addLearner(int32(id), addr, idx)
			// The leader sends a lagging learner its latest snapshot, which
			// the learner refuses unless it is a member there: take one
			// that includes it.
			if snapshotOnJoin {
				q.bytesSinceSnap = max(q.bytesSinceSnap, q.snapEveryBytes)
			}
			return
		}
		q.c.setOffset(idx)
		return
	}
	q.bytesSinceSnap += int64(len(e.GetData()))
	var d entryData
	if err := json.Unmarshal(e.GetData(), &d); err != nil {
		// Every node skips it alike.
		q.c.logger.Error("undecodable metadata entry skipped", "index", idx, "err", err)
		q.c.setOffset(idx)
		return
	}
	err := q.c.apply(d.Records, idx, true)
	if d.Node == int32(q.id) && d.Nonce == q.nonce {
		q.waitMu.Lock()
		w := q.waiters[d.Seq]
		q.waitMu.Unlock()
		if w != nil {
			w.answer(err)
		}
	}
}

// maybeSnapshot hands the driver a snapshot of the image once enough
// record bytes were applied since the last one (inline: takes it).
func (q *quorum) maybeSnapshot() error {
	if q.bytesSinceSnap < q.snapEveryBytes {
		return nil
	}
	q.c.mu.RLock()
	req := snapRequest{index: uint64(q.c.image.Offset), data: q.c.image.Encode()}
	for id := range q.c.image.Learners {
		req.learners = append(req.learners, uint64(id))
	}
	q.c.mu.RUnlock()
	slices.Sort(req.learners)
	if q.inline {
		q.snapIndex, q.bytesSinceSnap = req.index, 0
		return q.compact(req)
	}
	select {
	case q.snapc <- req:
		q.snapIndex, q.bytesSinceSnap = req.index, 0
	default: // one is pending; try after the next batch
	}
	return nil
}
