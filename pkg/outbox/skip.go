package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// An event Kafka refuses (its topic does not exist, or it is larger than
// the topic's max.message.bytes) fails its Kafka transaction every time,
// and the relay, which publishes in order, cannot go past it. The relay
// logs the event's id (and in change-data-capture mode its source
// transaction's commit LSN) and the command that skips it. A skip is an
// operator's decision, recorded in the progress topic next to the relay's
// own progress and under the same identity (the polling relay's token;
// the change-data-capture relay's system identifier, database oid and
// table), so that it never applies to another database's event with the
// same id:
//
//	skip/TOKEN/RELAY-ID/ID                               polling relay
//	cdc-skip/SYSTEM-ID/DATABASE-OID/SCHEMA.TABLE/RELAY-ID/id/ID    change data capture, one event
//	cdc-skip/SYSTEM-ID/DATABASE-OID/SCHEMA.TABLE/RELAY-ID/lsn/LSN  change data capture, a source transaction
//
// A skip by id carries the event's UUID (its event_uuid, drawn by the
// database), and the relay skips only an event with that id and that
// UUID, so that a sequence reset by hand cannot make it skip a new event
// with an old id.
// The relay reads skips when it starts, and starts over after each failed
// publication, so a skip takes effect within a second or so.
const pollSkipKeyPrefix = "skip/"

// pollSkipPrefix starts the keys of the polling relay's skip records.
func pollSkipPrefix(relayID, token string) string {
	return pollSkipKeyPrefix + token + "/" + relayID + "/"
}

// skipRecord is the value of a skip record.
type skipRecord struct {
	Relay     string    `json:"relay"`
	ID        int64     `json:"id,omitempty"`
	UUID      string    `json:"uuid,omitempty"` // the event's event_uuid
	CommitLSN string    `json:"commit_lsn,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	At        time.Time `json:"at"`
}

// skips are the events and source transactions a relay was told to skip.
type skips struct {
	events map[int64]string // event id: event_uuid
	txns   map[pglogrepl.LSN]bool
	// stops, in change-data-capture mode, are every position where the
	// relay stopped because its table left its publication: rows
	// inserted before one and committed after it are not published (see
	// CDCRelay.recordUnpublished).
	stops []pglogrepl.LSN
}

// stoppedAfter says whether a stop position is after commit: a row of
// the transaction committed at commit that the relay could not publish
// was named by that stop's error as the operator's to publish.
func (s *skips) stoppedAfter(commit pglogrepl.LSN) bool {
	if s == nil {
		return false
	}
	for _, at := range s.stops {
		if commit < at {
			return true
		}
	}
	return false
}

// unpublished says whether a row inserted at insert, in a transaction
// committed at commit, was left out by a stop position (it returns
// one): inserted before it and committed after.
func (s *skips) unpublished(insert, commit pglogrepl.LSN) (pglogrepl.LSN, bool) {
	if s == nil {
		return 0, false
	}
	for _, at := range s.stops {
		if insert < at && at <= commit {
			return at, true
		}
	}
	return 0, false
}

// add records the skip record value read at offset.
func (s *skips) add(offset int64, value []byte) error {
	var rec skipRecord
	if err := json.Unmarshal(value, &rec); err != nil {
		return fmt.Errorf("outbox: skip record at offset %d: %w", offset, err)
	}
	if rec.ID != 0 {
		if s.events == nil {
			s.events = map[int64]string{}
		}
		s.events[rec.ID] = rec.UUID
	}
	if rec.CommitLSN != "" {
		lsn, err := pglogrepl.ParseLSN(rec.CommitLSN)
		if err != nil {
			return fmt.Errorf("outbox: skip record at offset %d: %w", offset, err)
		}
		if s.txns == nil {
			s.txns = map[pglogrepl.LSN]bool{}
		}
		s.txns[lsn] = true
	}
	return nil
}

// event says whether e is skipped: its id and its UUID were recorded.
func (s *skips) event(e claimed) bool {
	if s == nil {
		return false
	}
	d, ok := s.events[e.id]
	return ok && d == e.uuid
}

// txn says whether the source transaction committed at lsn is skipped.
func (s *skips) txn(lsn pglogrepl.LSN) bool { return s != nil && s.txns[lsn] }

// Skip records that the relay must not publish event id, which Kafka
// refuses: the relay marks its row sent without publishing it (the skip
// record in the progress topic is what says it was skipped). The row must
// be pending or claimed, and the relay id known to the database. With
// several polling relays on one table, skip the event for each relay id
// that reports it. Use it only for an event that can never be published:
// it is lost to consumers.
func (r *Relay) Skip(ctx context.Context, id int64, reason string) error {
	var token string
	err := r.store.pool.QueryRow(ctx, `SELECT token FROM `+r.store.n.relays+` WHERE relay_id = $1`, r.cfg.RelayID).Scan(&token)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("outbox: relay id %q has never run on %s in this database", r.cfg.RelayID, r.cfg.Table)
	}
	if err != nil {
		return fmt.Errorf("outbox: read relay %q: %w", r.cfg.RelayID, err)
	}
	var e claimed
	var state string
	err = r.store.pool.QueryRow(ctx, `SELECT event_uuid::text, state FROM `+r.store.n.table+` WHERE id = $1`, id).
		Scan(&e.uuid, &state)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("outbox: no event %d in %s", id, r.cfg.Table)
	}
	if err != nil {
		return fmt.Errorf("outbox: read event %d: %w", id, err)
	}
	if state == StateSent {
		return fmt.Errorf("outbox: event %d is already sent", id)
	}
	rec := skipRecord{Relay: r.cfg.RelayID, ID: id, UUID: e.uuid, Reason: reason, At: time.Now().UTC()}
	return writeSkip(ctx, r.cfg, pollSkipPrefix(r.cfg.RelayID, token)+strconv.FormatInt(id, 10), rec)
}

// SkipEvent records that the change-data-capture relay must not publish
// event id, which Kafka refuses; the other events of its source
// transaction are published. The row must still be in the table (its
// UUID is recorded); if the application deleted it, skip its source
// transaction with SkipTransaction. Use it only for an event that can
// never be published: it is lost to consumers.
func (r *CDCRelay) SkipEvent(ctx context.Context, id int64, reason string) error {
	src, err := r.identifyOnce(ctx)
	if err != nil {
		return err
	}
	db, err := pgx.Connect(ctx, r.dsn)
	if err != nil {
		return fmt.Errorf("outbox: database: %w", err)
	}
	defer db.Close(context.WithoutCancel(ctx))
	var e claimed
	err = db.QueryRow(ctx, `SELECT event_uuid::text FROM `+pgx.Identifier{src.schema, src.table}.Sanitize()+` WHERE id = $1`, id).
		Scan(&e.uuid)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("outbox: no event %d in %s: if its row was deleted, skip its source transaction by commit LSN (the relay logs it)", id, src.qualified())
	}
	if err != nil {
		return fmt.Errorf("outbox: read event %d: %w", id, err)
	}
	rec := skipRecord{Relay: r.cfg.RelayID, ID: id, UUID: e.uuid, Reason: reason, At: time.Now().UTC()}
	return writeSkip(ctx, r.cfg, src.skipPrefix(r.cfg.RelayID)+"id/"+strconv.FormatInt(id, 10), rec)
}

// SkipTransaction records that the change-data-capture relay must not
// publish any event of the source transaction committed at commitLSN (as
// the relay logs it, e.g. 0/1A2B3C8). Use it only for events that can
// never be published: they are lost to consumers.
//
// It refuses a transaction the relay is past (its last progress record
// is at or after it: published whole, or with nothing to publish), and
// one of which a part is already published (the record names a part of
// it): consumers have seen those events, so the transaction cannot be
// skipped whole; skip the refused event by id (SkipEvent) instead. It
// looks again once its record is written, since the relay may publish
// it, whole or a part, meanwhile, and then fails the same way; and the
// relay ignores a skip by LSN of a transaction of which it finds a part
// published (logging so), so a transaction is never half published and
// half skipped. A skip returns nil only if no publication of the
// transaction had committed when it looked again; the relay reads skip
// records when it starts over, so a Kafka transaction of a session
// started before the record, committing after that look, still
// publishes it.
func (r *CDCRelay) SkipTransaction(ctx context.Context, commitLSN, reason string) error {
	lsn, err := pglogrepl.ParseLSN(commitLSN)
	if err != nil {
		return fmt.Errorf("outbox: commit LSN %q: %w", commitLSN, err)
	}
	src, err := r.identifyOnce(ctx)
	if err != nil {
		return err
	}
	last, err := lastCDCProgress(ctx, r.cfg, src)
	if err != nil {
		return err
	}
	partPublished := func(last *cdcProgress) error {
		switch {
		case last == nil:
			return nil
		case last.commit == lsn && !last.Partial, last.published(lsn) && last.commit != lsn:
			// Past it: its events are in the topics (or it had none,
			// or an earlier skip covered them); a skip now is void.
			return fmt.Errorf("outbox: source transaction %s cannot be skipped: the relay is past it (%s), so its events are "+
				"published already, unless it had none or an earlier skip record covered them", lsn, last.lastPublished())
		case !last.Partial || last.commit != lsn:
			return nil
		}
		return fmt.Errorf("outbox: source transaction %s cannot be skipped whole: its first %d events are published already "+
			"(the relay publishes a transaction of more than %d events in parts); skip the refused event instead "+
			"(weir outbox skip --mode cdc --relay-id %s --id EVENT-ID)", lsn, last.Events, r.cfg.BatchSize, r.cfg.RelayID)
	}
	if err := partPublished(last); err != nil {
		return err
	}
	if r.skipChecked != nil {
		r.skipChecked()
	}
	rec := skipRecord{Relay: r.cfg.RelayID, CommitLSN: lsn.String(), Reason: reason, At: time.Now().UTC()}
	if err := writeSkip(ctx, r.cfg, src.skipPrefix(r.cfg.RelayID)+"lsn/"+lsn.String(), rec); err != nil {
		return err
	}
	// Published, whole or a part, between the check and the record:
	// the relay does not skip it, so say it was refused. (A part whose Kafka transaction
	// commits after this look voids the skip all the same; the relay
	// logs that it ignores it.)
	if last, err = lastCDCProgress(ctx, r.cfg, src); err != nil {
		return fmt.Errorf("outbox: skip recorded, but whether a part of the transaction was published meanwhile is unknown: %w", err)
	}
	return partPublished(last)
}

// lastCDCProgress reads the progress topic, read_committed, up to its
// last stable offset, and returns the last progress recorded for src by
// the relay (nil if none). A relay running meanwhile may record more.
func lastCDCProgress(ctx context.Context, cfg RelayConfig, src cdcSource) (*cdcProgress, error) {
	adm, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("outbox: kafka client: %w", err)
	}
	defer adm.Close()
	if err := ensureProgressTopic(ctx, adm, cfg.ProgressTopic); err != nil {
		return nil, err
	}
	ends, err := kadm.NewClient(adm).ListCommittedOffsets(ctx, cfg.ProgressTopic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: end of progress topic %s: %w", cfg.ProgressTopic, err)
	}
	end, ok := ends.Lookup(cfg.ProgressTopic, 0)
	if !ok || end.Offset <= 0 {
		return nil, nil
	}
	// Control records are kept so that the scan sees the offset just
	// before the end even when a transaction marker holds it.
	cl, err := kgo.NewClient(append(progressReaderOpts(cfg), kgo.KeepControlRecords())...)
	if err != nil {
		return nil, fmt.Errorf("outbox: progress reader: %w", err)
	}
	defer cl.Close()
	key := src.progressKey(cfg.RelayID)
	var last *cdcProgress
	for next := int64(0); next < end.Offset; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var scanErr error
		fs.EachError(func(t string, p int32, err error) {
			scanErr = errors.Join(scanErr, fmt.Errorf("outbox: read progress %s/%d: %w", t, p, err))
		})
		fs.EachRecord(func(rec *kgo.Record) {
			next = max(next, rec.Offset+1)
			if scanErr != nil || rec.Offset >= end.Offset || rec.Attrs.IsControl() || string(rec.Key) != key {
				return
			}
			var p cdcProgress
			if err := json.Unmarshal(rec.Value, &p); err != nil {
				scanErr = fmt.Errorf("outbox: progress record at offset %d: %w", rec.Offset, err)
				return
			}
			if err := p.parse(); err != nil {
				scanErr = fmt.Errorf("outbox: progress record at offset %d: %w", rec.Offset, err)
				return
			}
			last = &p
		})
		if scanErr != nil {
			return nil, scanErr
		}
	}
	return last, nil
}

// identifyOnce identifies the relay's source on a connection of its own.
func (r *CDCRelay) identifyOnce(ctx context.Context) (cdcSource, error) {
	conn, err := r.connect(ctx)
	if err != nil {
		return cdcSource{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return identifySource(ctx, conn, r.n.table)
}

// writeSkip writes a skip record to partition 0 of the progress topic,
// where the relay reads its progress, and waits until it is replicated.
func writeSkip(ctx context.Context, cfg RelayConfig, key string, rec skipRecord) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	opts := append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)
	cl, err := kgo.NewClient(append(opts,
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(partitioner{progressTopic: cfg.ProgressTopic, events: kgo.StickyKeyPartitioner(nil)}),
	)...)
	if err != nil {
		return fmt.Errorf("outbox: kafka client: %w", err)
	}
	defer cl.Close()
	if err := ensureProgressTopic(ctx, cl, cfg.ProgressTopic); err != nil {
		return err
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: cfg.ProgressTopic, Key: []byte(key), Value: v}).FirstErr(); err != nil {
		return fmt.Errorf("outbox: write skip record: %w", err)
	}
	return nil
}

// refusedEvent returns the id and topic of the first event Kafka refused
// among rs, and why.
func refusedEvent(rs kgo.ProduceResults) (id int64, topic string, why error, ok bool) {
	for _, r := range rs {
		if r.Err == nil || r.Record == nil {
			continue
		}
		// The relay's id header comes after the event's own.
		for i := len(r.Record.Headers) - 1; i >= 0; i-- {
			if h := r.Record.Headers[i]; h.Key == EventIDHeader {
				if id, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil {
					return id, r.Record.Topic, r.Err, true
				}
				break
			}
		}
	}
	return 0, "", nil, false
}
