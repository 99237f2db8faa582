package partition

// The low watermark: the smallest log start offset of the replicas that
// may lead the partition later. DeleteRecords moves the leader's log
// start at once, but the records below it are gone for good only once
// every such replica has moved its own (followers follow the leader's log
// start on each fetch answer and report theirs with the next fetch), so
// the broker answers DeleteRecords only when the low watermark reached
// the offset asked for, as Kafka does (KIP-107). A follower that has not
// reported a log start under the current leadership (a new leader knows
// nothing of its followers until they fetch) holds the low watermark at
// -1: it may still serve, and later lead with, the records deleted here.
// A follower that never fetches holds DeleteRecords until its timeout,
// which then says the deletion is not known to be complete.

// SetFollowerLogStart records the log start offset follower replica sent
// with its fetch (the Fetch request's LogStartOffset, v5+; -1 is not
// known) and wakes the low watermark's watchers when it moved. Only the
// leader records it.
func (p *Partition) SetFollowerLogStart(replica int32, logStart int64) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.role != roleLeader || logStart < 0 {
		return
	}
	f := p.followers[replica]
	if f == nil {
		f = newFollower()
		p.followers[replica] = f
	}
	if f.logStart == logStart {
		return
	}
	f.logStart = logStart
	p.notifyLowLocked()
}

// LowWatermark is the smallest of the leader's log start and the log
// starts of the followers among replicas (the caller passes the assigned
// replicas on live brokers: a dead one cannot lead, and a removed one no
// longer may); -1 while one of them has not reported its log start under
// this leadership. On a follower it is ErrNotLeader.
func (p *Partition) LowWatermark(replicas []int32) (int64, error) {
	low := p.log.StartOffset()
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.role != roleLeader {
		return -1, ErrNotLeader
	}
	for _, id := range replicas {
		if id == p.opts.ReplicaID {
			continue
		}
		f := p.followers[id]
		if f == nil || f.logStart < 0 {
			return -1, nil
		}
		low = min(low, f.logStart)
	}
	return low, nil
}

// WatchLowWatermark registers ch to receive a non-blocking send whenever
// a follower reports a new log start or the replica stops leading.
// UnwatchLowWatermark removes it.
func (p *Partition) WatchLowWatermark(ch chan<- struct{}) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.lowWatchers == nil {
		p.lowWatchers = make(map[chan<- struct{}]struct{})
	}
	p.lowWatchers[ch] = struct{}{}
}

// UnwatchLowWatermark stops notifications to ch.
func (p *Partition) UnwatchLowWatermark(ch chan<- struct{}) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	delete(p.lowWatchers, ch)
}

// notifyLowLocked wakes the low watermark's watchers. p.wmu is held.
func (p *Partition) notifyLowLocked() {
	for ch := range p.lowWatchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
