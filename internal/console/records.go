package console

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Record browser limits: records per page, bytes of a key or value
// shown, and how long a consumer waits for a record that may never come
// (one a read_committed consumer drops).
const (
	defaultRecords = 50
	maxRecords     = 500
	maxShownBytes  = 200
	quietWait      = 1500 * time.Millisecond
)

// recordsPage is one partition as two consumers see it.
type recordsPage struct {
	Topic                  string
	Partition              int32
	From, Limit            int64
	LogStart, LSO, HW      int64
	Committed, Uncommitted []recordRow
	Prev, Next             int64 // -1: none
}

// recordRow is one record or control marker a consumer received.
type recordRow struct {
	Offset    int64
	Key       string
	Value     string
	Time      int64
	Control   string // "COMMIT" or "ABORT" for a marker
	Txn       bool   // written in a transaction
	Aborted   bool   // of an aborted transaction: read_committed skips it
	Undecided bool   // of a transaction still open (at or past the LSO)
}

// records shows a partition's records from an offset as a read_committed
// and a read_uncommitted consumer receive them: each is a real consumer
// of this cluster, keeping control records so the markers show. A
// record the read_uncommitted consumer got below the last stable offset
// that the read_committed one did not is of an aborted transaction.
func (c *Console) records(ctx context.Context, s *session, r *http.Request) (view, error) {
	q := r.URL.Query()
	topic := q.Get("topic")
	partition, err := strconv.ParseInt(q.Get("partition"), 10, 32)
	if topic == "" || err != nil || partition < 0 {
		return view{}, badRequestf("which partition? (?topic=&partition=)")
	}
	p := recordsPage{Topic: topic, Partition: int32(partition), Limit: defaultRecords, Prev: -1, Next: -1}
	if v := q.Get("limit"); v != "" {
		if p.Limit, err = strconv.ParseInt(v, 10, 64); err != nil || p.Limit < 1 {
			return view{}, badRequestf("limit %q: want a positive number", v)
		}
		p.Limit = min(p.Limit, maxRecords)
	}
	starts, err := s.adm.ListStartOffsets(ctx, topic)
	if err != nil && !isShardErr(err) {
		return view{}, err
	}
	ends, err := s.adm.ListEndOffsets(ctx, topic)
	if err != nil && !isShardErr(err) {
		return view{}, err
	}
	stables, err := s.adm.ListCommittedOffsets(ctx, topic)
	if err != nil && !isShardErr(err) {
		return view{}, err
	}
	p.LogStart, p.HW, p.LSO = offsetOf(starts, topic, p.Partition), offsetOf(ends, topic, p.Partition), offsetOf(stables, topic, p.Partition)
	if p.LogStart < 0 || p.HW < 0 || p.LSO < 0 {
		return view{}, fmt.Errorf("%s-%d: %w", topic, partition, kerr.UnknownTopicOrPartition)
	}
	p.From = max(p.LogStart, p.HW-p.Limit)
	if v := q.Get("from"); v != "" {
		if p.From, err = strconv.ParseInt(v, 10, 64); err != nil || p.From < 0 {
			return view{}, badRequestf("from %q: want an offset", v)
		}
		p.From = max(p.From, p.LogStart)
	}
	if p.From > p.LogStart {
		p.Prev = max(p.LogStart, p.From-p.Limit)
	}
	if p.From+p.Limit < p.HW {
		p.Next = p.From + p.Limit
	}
	if p.Uncommitted, err = c.consume(ctx, s, topic, p.Partition, p.From, min(p.HW, p.From+p.Limit), kgo.ReadUncommitted()); err != nil {
		return view{}, err
	}
	if p.Committed, err = c.consume(ctx, s, topic, p.Partition, p.From, min(p.LSO, p.From+p.Limit), kgo.ReadCommitted()); err != nil {
		return view{}, err
	}
	seen := make(map[int64]bool, len(p.Committed))
	for _, rec := range p.Committed {
		seen[rec.Offset] = true
	}
	for i := range p.Uncommitted {
		rec := &p.Uncommitted[i]
		switch {
		case rec.Control != "" || !rec.Txn:
		case rec.Offset >= p.LSO:
			rec.Undecided = true
		case !seen[rec.Offset]:
			rec.Aborted = true
		}
	}
	return view{name: "records", title: fmt.Sprintf("Records of %s-%d", topic, partition), data: p}, nil
}

// consume reads [from, end) of one partition with a consumer of the
// given isolation level and returns what it received, markers included.
// It stops at end, or when nothing more arrives for quietWait: a
// read_committed consumer never receives an aborted record, so it may
// not reach end.
func (c *Console) consume(ctx context.Context, s *session, topic string, partition int32, from, end int64, isolation kgo.IsolationLevel) ([]recordRow, error) {
	if from >= end {
		return nil, nil
	}
	cl, err := kgo.NewClient(c.clientOpts(s,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}}),
		kgo.FetchIsolationLevel(isolation),
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(8<<20),
		kgo.FetchMaxWait(500*time.Millisecond),
	)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var rows []recordRow
	for {
		pctx, cancel := context.WithTimeout(ctx, quietWait)
		fs := cl.PollFetches(pctx)
		cancel()
		got := false
		for _, fe := range fs.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) && !errors.Is(fe.Err, context.Canceled) {
				return nil, fe.Err
			}
		}
		for _, rec := range fs.Records() {
			if rec.Offset >= end {
				continue
			}
			got = true
			rows = append(rows, rowOf(rec))
		}
		if !got || (len(rows) > 0 && rows[len(rows)-1].Offset >= end-1) || ctx.Err() != nil {
			return rows, nil
		}
	}
}

func rowOf(rec *kgo.Record) recordRow {
	row := recordRow{Offset: rec.Offset, Time: rec.Timestamp.UnixMilli(), Txn: rec.Attrs.IsTransactional()}
	if rec.Attrs.IsControl() {
		// A control record's key is a version and a type: 0 abort,
		// 1 commit.
		row.Control = "marker"
		if len(rec.Key) >= 4 {
			switch binary.BigEndian.Uint16(rec.Key[2:4]) {
			case 0:
				row.Control = "ABORT"
			case 1:
				row.Control = "COMMIT"
			}
		}
		return row
	}
	row.Key, row.Value = shown(rec.Key), shown(rec.Value)
	return row
}

// shown is bytes as text for a page, cut at maxShownBytes; bytes that
// are not UTF-8 are quoted.
func shown(b []byte) string {
	cut := len(b) > maxShownBytes
	if cut {
		b = b[:maxShownBytes]
	}
	s := string(b)
	if !utf8.ValidString(s) {
		s = strconv.Quote(s)
	}
	if cut {
		s += "…"
	}
	return s
}
