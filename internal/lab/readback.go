package lab

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// listEnds is adm.ListEndOffsets, asked again while a partition answers a
// retriable error: a leader elected a moment ago answers
// OFFSET_NOT_AVAILABLE until its followers have fetched (KIP-207).
func listEnds(ctx context.Context, adm *kadm.Client, topic string) (kadm.ListedOffsets, error) {
	for {
		l, err := adm.ListEndOffsets(ctx, topic)
		if err == nil {
			err = l.Error()
		}
		var ke *kerr.Error
		if err == nil || !errors.As(err, &ke) || !ke.Retriable || ctx.Err() != nil {
			return l, err
		}
		select {
		case <-ctx.Done():
			return l, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// readBackTimeout bounds reading a topic back after a scenario.
const readBackTimeout = 30 * time.Second

// logView is a topic as read back after a scenario.
type logView struct {
	// delivered is what a read_committed consumer received, in order.
	delivered []Delivery
	// fates is the fate of every data offset, from a read_uncommitted
	// pass that keeps control records.
	fates map[PartOffset]Fate
	// early counts committed records served before their marker was in
	// the log.
	early int
}

// readBack reads the whole topic as a read_committed consumer would, then
// read_uncommitted with control records to learn each transactional
// record's fate. The fates are read last, once every transaction has its
// marker (or stableWait has passed): a record counts against
// read_committed only if its transaction aborted or never ended, not if
// it committed with its marker written a moment after it was served.
func readBack(ctx context.Context, bk brokers, topic string, partitions int32) (*logView, error) {
	ctx, cancel := context.WithTimeout(ctx, readBackTimeout)
	defer cancel()
	cl, err := bk.client(clientTimeouts()...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	lso, _, err := stableOffsets(ctx, adm, topic)
	if err != nil {
		return nil, fmt.Errorf("read back %s: %w", topic, err)
	}
	committed, err := readUpTo(ctx, bk, topic, offsetsByPartition(lso), kgo.ReadCommitted())
	if err != nil {
		return nil, err
	}
	v := &logView{}
	for _, r := range committed {
		if !r.Attrs.IsControl() {
			v.delivered = append(v.delivered, Delivery{ID: parseID(r.Value), Partition: r.Partition, Offset: r.Offset})
		}
	}
	deadline := time.Now().Add(stableWait)
	for {
		hw, err := listEnds(ctx, adm, topic)
		if err != nil {
			return nil, fmt.Errorf("read back %s: high watermarks: %w", topic, err)
		}
		all, err := readUpTo(ctx, bk, topic, offsetsByPartition(hw), kgo.ReadUncommitted())
		if err != nil {
			return nil, err
		}
		var markerAt map[PartOffset]int64
		v.fates, markerAt = fatesOf(toLogRecords(all))
		if !v.hasOpen() || time.Now().After(deadline) {
			v.early = servedEarly(v, markerAt, offsetsByPartition(lso))
			return v, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func offsetsByPartition(l kadm.ListedOffsets) map[int32]int64 {
	m := map[int32]int64{}
	l.Each(func(o kadm.ListedOffset) { m[o.Partition] = o.Offset })
	return m
}

func (v *logView) hasOpen() bool {
	for _, f := range v.fates {
		if f == Open {
			return true
		}
	}
	return false
}

// servedEarly counts delivered records of committed transactions whose
// commit marker lies at or beyond the last stable offset the consumer read
// up to: the broker's LSO had passed a transaction still open in the log.
func servedEarly(v *logView, markerAt map[PartOffset]int64, lso map[int32]int64) int {
	n := 0
	for _, d := range v.delivered {
		k := PartOffset{d.Partition, d.Offset}
		if m, ok := markerAt[k]; ok && v.fates[k] == Committed && m >= lso[d.Partition] {
			n++
		}
	}
	return n
}

// readUpTo consumes every partition from the start until it has seen the
// record just below its end offset, control records included.
func readUpTo(ctx context.Context, bk brokers, topic string, ends map[int32]int64, iso kgo.IsolationLevel) ([]*kgo.Record, error) {
	offsets := map[int32]kgo.Offset{}
	left := 0
	for p, end := range ends {
		if end > 0 {
			offsets[p] = kgo.NewOffset().AtStart()
			left++
		}
	}
	if left == 0 {
		return nil, nil
	}
	cl, err := bk.client(append([]kgo.Opt{
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchIsolationLevel(iso),
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(200 * time.Millisecond),
	}, clientTimeouts()...)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var out []*kgo.Record
	reached := map[int32]bool{}
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read back %s: %d partitions not read to their end: %w", topic, left, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			if !reached[r.Partition] && r.Offset >= ends[r.Partition]-1 {
				reached[r.Partition] = true
				left--
			}
		})
	}
	return out, nil
}

// logRecord is what fatesOf needs of a record read back.
type logRecord struct {
	part         int32
	off          int64
	pid          int64
	txn, control bool
	commit       bool // a control record's type
}

func toLogRecords(recs []*kgo.Record) []logRecord {
	out := make([]logRecord, 0, len(recs))
	for _, r := range recs {
		// Control record key: version int16, type int16 (1 = commit).
		commit := len(r.Key) >= 4 && r.Key[2] == 0 && r.Key[3] == 1
		out = append(out, logRecord{part: r.Partition, off: r.Offset, pid: r.ProducerID,
			txn: r.Attrs.IsTransactional(), control: r.Attrs.IsControl(), commit: commit})
	}
	return out
}

// fatesOf decides each data record's fate: a transactional record takes
// the outcome of the next marker of its producer in its partition, or is
// open when there is none. markerAt gives that marker's offset.
func fatesOf(recs []logRecord) (fates map[PartOffset]Fate, markerAt map[PartOffset]int64) {
	fates = make(map[PartOffset]Fate, len(recs))
	markerAt = map[PartOffset]int64{}
	type pp struct {
		part int32
		pid  int64
	}
	pending := map[pp][]int64{}
	for _, r := range recs {
		k := pp{r.part, r.pid}
		switch {
		case r.control:
			f := Aborted
			if r.commit {
				f = Committed
			}
			for _, off := range pending[k] {
				fates[PartOffset{r.part, off}] = f
				markerAt[PartOffset{r.part, off}] = r.off
			}
			delete(pending, k)
		case r.txn:
			fates[PartOffset{r.part, r.off}] = Open
			pending[k] = append(pending[k], r.off)
		default:
			fates[PartOffset{r.part, r.off}] = Plain
		}
	}
	return fates, markerAt
}

// fateNote counts the aborted and still open records in the log: what a
// read_committed consumer had to skip.
func (v *logView) fateNote() string {
	aborted, open := 0, 0
	for _, f := range v.fates {
		switch f {
		case Aborted:
			aborted++
		case Open:
			open++
		}
	}
	note := fmt.Sprintf("log holds %d aborted and %d uncommitted records", aborted, open)
	if v.early > 0 {
		note += fmt.Sprintf("; %d committed records were served to read_committed before their commit marker was written (the LSO passed an open transaction)", v.early)
	}
	return note
}

// stableWait bounds how long readBack waits for the topic to settle:
// acks=0 and acks=1 writes become visible only once flushed, after their
// acknowledgement, and the coordinator writes transaction markers after
// EndTxn returns. What has not settled by then counts as not delivered.
const stableWait = 15 * time.Second

// quietFor is how long the high watermarks must stay unchanged for the
// topic to count as settled.
const quietFor = 300 * time.Millisecond

// stableOffsets waits until the topic has settled — no transaction holds
// the LSO back (LSO equal to HW everywhere) and the high watermarks have
// not moved for quietFor — or stableWait passes, and returns the LSOs and
// HWs.
func stableOffsets(ctx context.Context, adm *kadm.Client, topic string) (lso, hw kadm.ListedOffsets, err error) {
	deadline := time.Now().Add(stableWait)
	var last map[int32]int64
	lastChange := time.Now()
	for {
		if lso, err = adm.ListCommittedOffsets(ctx, topic); err == nil {
			err = lso.Error()
		}
		if err != nil {
			return nil, nil, fmt.Errorf("last stable offsets: %w", err)
		}
		hw, err = listEnds(ctx, adm, topic)
		if err != nil {
			return nil, nil, fmt.Errorf("high watermarks: %w", err)
		}
		now := offsetsByPartition(hw)
		if !maps.Equal(now, last) {
			last, lastChange = now, time.Now()
		}
		stable := time.Since(lastChange) >= quietFor
		lso.Each(func(o kadm.ListedOffset) {
			if now[o.Partition] != o.Offset {
				stable = false
			}
		})
		if stable || time.Now().After(deadline) {
			return lso, hw, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
