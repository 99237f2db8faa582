package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/twmb/franz-go/pkg/kgo"
)

// CDCTransactionalIDPrefix followed by the relay id is the Kafka
// transactional id of a relay in change-data-capture mode. It does not
// begin with TransactionalIDPrefix, so no polling relay's transactional
// id equals a change-data-capture relay's (with "weir-outbox-cdc-", the
// polling relay "cdc-orders" would fence the change-data-capture relay
// "orders"); within a mode the id follows the fixed prefix, so distinct
// relay ids give distinct transactional ids, and a relay's next
// incarnation fences its zombie.
const CDCTransactionalIDPrefix = "weir-outbox.cdc-"

// ErrSourceChanged is returned by CDCRelay.Run when the database no longer
// holds the history the relay's progress was recorded against: its slot
// is gone, or its WAL is not the one the recorded transactions are in
// (the database was restored from a backup, or failed over to a standby
// that lacked them). Streaming on could lose events, so the relay refuses
// to start; the error says what it found and what to do.
var ErrSourceChanged = errors.New("outbox: the database is not the one the relay's change-data-capture progress was recorded in")

// Progress keys of the change-data-capture relay (see the package doc).
const (
	cdcKeyPrefix      = "cdc/"
	cdcFenceKeyPrefix = "cdc-fence/"
	cdcSkipKeyPrefix  = "cdc-skip/"
	// cdcUnpublishedKeyPrefix keys the records of where the relay
	// stopped because its table left its publication, or the publication
	// stopped streaming its inserts whole (see recordUnpublished), one
	// key per position so that compaction keeps every one.
	cdcUnpublishedKeyPrefix = "cdc-unpublished/"
)

// Crash points of the change-data-capture relay.
const (
	crashCDCBeforeFence   = "cdc-before-fence"   // at start: source identified, Kafka not yet fenced
	crashCDCBeforeStream  = "cdc-before-stream"  // at start: fenced and progress read, nothing streamed
	crashCDCBeforePublish = "cdc-before-publish" // source transaction received, nothing produced
	crashCDCBeforeCommit  = "cdc-before-commit"  // source transaction produced in an open Kafka transaction
	crashCDCBeforeAck     = "cdc-before-ack"     // Kafka transaction committed, slot not yet told
	crashCDCStreaming     = "cdc-streaming"      // at start: replication started
)

// cdcStatusInterval is how often the relay reports its position to
// PostgreSQL when nothing else makes it.
const cdcStatusInterval = 10 * time.Second

// CDCRelay publishes the outbox's events to Kafka, each exactly once,
// reading them through PostgreSQL logical replication instead of polling.
type CDCRelay struct {
	cfg  RelayConfig
	dsn  string
	n    names
	log  *slog.Logger
	slot string // set at each start from the database's names (cdcNames)
	pub  string

	published atomic.Int64
	batches   atomic.Int64

	// crashAt, when set, is called at each crash point with the event ids
	// in hand. Only tests set it.
	crashAt func(point string, ids []int64)
	// skipChecked, when set, is called by SkipTransaction between its
	// check of the progress and its skip record. Only tests set it.
	skipChecked func()
}

// NewCDCRelay checks cfg and returns a relay reading the outbox table of
// the database at dsn through logical replication. BatchSize bounds the
// events of one Kafka transaction (a larger source transaction is
// published in parts); PollInterval is not used. Nothing happens until
// Run.
func NewCDCRelay(dsn string, cfg RelayConfig) (*CDCRelay, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if _, err := pgconn.ParseConfig(dsn); err != nil {
		return nil, fmt.Errorf("outbox: database address: %w", err)
	}
	n, _ := tableNames(cfg.Table)
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &CDCRelay{
		cfg: cfg,
		dsn: dsn,
		n:   n,
		log: logger.With("relay", cfg.RelayID, "mode", "cdc"),
	}, nil
}

// Stats returns the relay's counters.
func (r *CDCRelay) Stats() Stats {
	return Stats{Events: r.published.Load(), Batches: r.batches.Load()}
}

// Run sets up the publication and the replication slot if missing, fences
// the previous incarnation, reads the last committed position from the
// progress topic and streams the outbox's inserts to Kafka until ctx is
// done; it then returns nil.
//
// Run returns an error if the first start fails (bad table, unreachable
// database or brokers), one wrapping ErrFenced if another relay with the
// same relay id took over, and, at any start, one wrapping
// ErrSourceChanged if the database's history no longer holds what the
// progress records (see the package doc), or an error naming the
// publication if it, or another relay id's publication, does not leave
// the table to this relay alone. While the slot is still held by a previous
// process (one that died and whose server connection PostgreSQL has not
// closed yet, or a live relay that the new one fenced in Kafka and that
// stops at its next publish), and after later failures, it waits a second
// and starts over.
func (r *CDCRelay) Run(ctx context.Context) error {
	started := false
	for {
		err := r.run(ctx, &started)
		if ctx.Err() != nil {
			return nil
		}
		if isFenced(err) {
			return fmt.Errorf("%w: %w", ErrFenced, err)
		}
		if errors.Is(err, ErrSourceChanged) || isStop(err) {
			return err
		}
		if !started && !slotInUse(err) {
			return err
		}
		r.log.Warn("outbox cdc relay restarting", "err", err)
		if !sleep(ctx, time.Second) {
			return nil
		}
	}
}

// stopError is a failure that starting over cannot mend (a publication
// that streams another table): Run returns it.
type stopError struct{ err error }

func (e stopError) Error() string { return e.err.Error() }
func (e stopError) Unwrap() error { return e.err }

func isStop(err error) bool {
	var s stopError
	return errors.As(err, &s)
}

// slotInUse says whether err is PostgreSQL's object_in_use: another
// connection streams from the slot.
func slotInUse(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "55006"
}

func (r *CDCRelay) run(ctx context.Context, started *bool) error {
	conn, err := r.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	src, err := r.identify(ctx, conn)
	if err != nil {
		return err
	}
	if err := markCDC(ctx, conn, src, r.cfg.RelayID); err != nil {
		return err
	}
	// A publication that covers no table, or one table under another
	// name, is judged once the progress says which table it covered.
	var emptied bool
	var elsewhere *publicationElsewhere
	var narrowed *publicationWrong
	if err := r.ensurePublication(ctx, conn, src); err != nil {
		var wrong publicationWrong
		switch {
		case errors.Is(err, errPublicationEmpty):
			emptied = true
		case errors.As(err, &elsewhere):
		case errors.As(err, &wrong) && !wrong.widened:
			// Judged once the slot is looked up: one made before the
			// change holds rows it no longer streams whole.
			narrowed = &wrong
		default:
			return err
		}
	}
	cl, err := kgo.NewClient(r.clientOpts()...)
	if err != nil {
		return fmt.Errorf("outbox: kafka client: %w", err)
	}
	defer cl.Close()
	if err := ensureProgressTopic(ctx, cl, r.cfg.ProgressTopic); err != nil {
		return err
	}
	r.hook(crashCDCBeforeFence, &sourceTxn{})
	fence, err := r.writeFence(ctx, cl)
	if err != nil {
		return err
	}
	last, skipped, err := readCDCProgress(ctx, r.cfg, src, fence)
	if err != nil {
		return err
	}
	r.hook(crashCDCBeforeStream, &sourceTxn{})
	slot, err := lookUpSlot(ctx, conn, r.slot)
	if err != nil {
		return err
	}
	plan, err := resumeCheck(src, r.cfg.RelayID, r.slot, slot, last)
	if err != nil {
		return err
	}
	// An outbox table dropped or moved aside (and maybe created again),
	// or taken out of the publication: the slot still holds what was
	// committed to it before; publish that, then stop (see drain). The
	// progress goes on naming the old table, and the drain takes only its
	// rows, by oid when the progress recorded it.
	var out *drain
	recorded := last != nil && last.TableOID != 0
	// A drain ends past every record written so far, not only those
	// flushed: with synchronous_commit off, a commit is visible before
	// its WAL is flushed.
	var end pglogrepl.LSN
	if narrowed != nil && !slot.exists {
		// A new slot streams what commits from now on: nothing was
		// missed, and the publication must be mended first.
		return stopError{*narrowed}
	}
	if emptied || elsewhere != nil || plan.replacedOID != 0 || narrowed != nil {
		if end, err = walInsertLSN(ctx, conn); err != nil {
			return err
		}
	}
	switch {
	case narrowed != nil:
		// Changed while the relay was down: as when it changes under a
		// running relay (see tableWatch), what the slot streams up to
		// now is published, the relay records where it stopped, and
		// the rows the change kept out of the stream are named.
		out = &drain{to: end, unpublished: true, err: publicationNarrowedDown(src, r.pub, last, end, *narrowed)}
	case elsewhere != nil && (recorded && elsewhere.oid != last.TableOID || !slot.exists):
		return stopError{elsewhere.err}
	case elsewhere != nil && !recorded:
		// The relay's own publication, created for the outbox table,
		// covers a table of another name: the table moved aside before
		// any progress recorded its oid. Drain what the slot holds of
		// it, by that oid.
		out = &drain{to: end, err: tableReplaced(src, r.cfg.RelayID, elsewhere.oid)}
		src.tableOID = elsewhere.oid
	case emptied && !slot.exists:
		return stopError{tableGone(fmt.Sprintf("publication %s covers no table of that name: the outbox table %s was dropped or moved since it was created", r.pub, src.qualified()), r.cfg.RelayID)}
	case emptied && recorded && last.TableOID == src.tableOID:
		out = &drain{to: end, unpublished: true, err: tableUnpublished(src, r.pub, r.cfg.RelayID, lastSeen(last), end)}
	case plan.replacedOID != 0:
		out = &drain{to: end, err: tableReplaced(src, r.cfg.RelayID, plan.replacedOID)}
		src.tableOID = plan.replacedOID
	case emptied:
		out = &drain{to: end, byName: !recorded,
			err: tableGone(fmt.Sprintf("publication %s covers no table: the outbox table %s was dropped since it was created", r.pub, src.qualified()), r.cfg.RelayID)}
	}
	if !slot.exists {
		// No progress for this source: nothing was published from it,
		// and the new slot streams what commits from now on.
		if err := r.createSlot(ctx, conn); err != nil {
			return err
		}
	}
	if err := pglogrepl.StartReplication(ctx, conn, r.slot, 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + r.pub + "'"},
	}); err != nil {
		return fmt.Errorf("outbox: start replication from slot %s: %w", r.slot, err)
	}
	*started = true
	r.hook(crashCDCStreaming, &sourceTxn{})
	resume := "the slot's confirmed position"
	if last != nil {
		resume = last.through().String()
	}
	r.log.Info("outbox cdc relay started", "slot", r.slot, "system", src.systemID, "timeline", src.timeline,
		"database_oid", src.dbOID, "table", src.qualified(), "resume_after", resume, "recheck_last", plan.verify != nil,
		"recheck_heartbeat", plan.quietUntil != 0, "draining", out != nil)
	return r.stream(ctx, conn, cl, src, last, plan, skipped, out)
}

// lastSeen is where a relay starting with progress last last saw its
// table in its publication: a change found at the start was made after
// it.
func lastSeen(last *cdcProgress) string {
	if last == nil {
		return "the slot's creation"
	}
	return last.through().String()
}

// connect opens a replication connection to the database.
func (r *CDCRelay) connect(ctx context.Context) (*pgconn.PgConn, error) {
	pc, err := pgconn.ParseConfig(r.dsn)
	if err != nil {
		return nil, fmt.Errorf("outbox: database address: %w", err)
	}
	pc.RuntimeParams["replication"] = "database"
	withRelayName(pc.RuntimeParams, "weir outbox relay "+r.cfg.RelayID+" (cdc)")
	conn, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("outbox: replication connection: %w", err)
	}
	return conn, nil
}

// identify identifies the source and sets the relay's slot and
// publication names from it.
func (r *CDCRelay) identify(ctx context.Context, conn *pgconn.PgConn) (cdcSource, error) {
	src, err := identifySource(ctx, conn, r.n.table)
	if err != nil {
		return cdcSource{}, err
	}
	r.slot, r.pub = cdcNames(src, r.cfg.RelayID)
	return src, nil
}

// setup creates the publication and the relay's slot unless they exist.
func (r *CDCRelay) setup(ctx context.Context, conn *pgconn.PgConn) error {
	src, err := r.identify(ctx, conn)
	if err != nil {
		return err
	}
	if err := markCDC(ctx, conn, src, r.cfg.RelayID); err != nil {
		return err
	}
	if err := r.ensurePublication(ctx, conn, src); err != nil {
		var elsewhere *publicationElsewhere
		switch {
		case errors.Is(err, errPublicationEmpty):
			return stopError{tableGone(fmt.Sprintf("publication %s covers no table: the outbox table %s was dropped since it was created", r.pub, src.qualified()), r.cfg.RelayID)}
		case errors.As(err, &elsewhere):
			return stopError{elsewhere.err}
		}
		return err
	}
	slot, err := lookUpSlot(ctx, conn, r.slot)
	if err != nil || slot.exists {
		return err
	}
	return r.createSlot(ctx, conn)
}

// ensurePublication creates the publication (inserts into the outbox
// table only) unless it exists, and checks that it publishes exactly
// that.
//
// It answers errPublicationEmpty or a *publicationElsewhere, unwrapped,
// when the publication covers no table or one table of another name: the
// caller decides, from the progress, whether its table was dropped or
// moved aside (and the relay drains what its slot holds before it stops,
// see drain) or the publication is not the relay's.
func (r *CDCRelay) ensurePublication(ctx context.Context, conn *pgconn.PgConn, src cdcSource) error {
	if err := checkOtherRelays(ctx, conn, r.pub, src); err != nil {
		return stopError{err}
	}
	row, err := queryRow(ctx, conn, `SELECT 1 FROM pg_publication WHERE pubname = `+quoteLiteral(r.pub))
	if err != nil {
		return fmt.Errorf("outbox: look up publication %s: %w", r.pub, err)
	}
	if row == nil {
		table := pgx.Identifier{src.schema, src.table}.Sanitize()
		_, err := conn.Exec(ctx, `CREATE PUBLICATION `+r.pub+` FOR TABLE `+table+` WITH (publish = 'insert')`).ReadAll()
		if err != nil && !isDuplicate(err) {
			return fmt.Errorf("outbox: create publication %s: %w", r.pub, err)
		}
	}
	if err := checkPublication(ctx, conn, r.pub, src); err != nil {
		var elsewhere *publicationElsewhere
		if errors.Is(err, errPublicationEmpty) || errors.As(err, &elsewhere) {
			return err
		}
		return stopError{err}
	}
	// Again, now that ours exists: two relay ids starting together on a
	// table each saw no other publication before creating its own; this
	// way both stop rather than both publish every event.
	if err := checkOtherRelays(ctx, conn, r.pub, src); err != nil {
		return stopError{err}
	}
	return nil
}

// createSlot creates the relay's slot; another process of the relay id
// may have created it first.
func (r *CDCRelay) createSlot(ctx context.Context, conn *pgconn.PgConn) error {
	_, err := pglogrepl.CreateReplicationSlot(ctx, conn, r.slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{})
	if err != nil && !isDuplicate(err) {
		return fmt.Errorf("outbox: create replication slot %s: %w", r.slot, err)
	}
	return nil
}

// isDuplicate says whether err is PostgreSQL's duplicate_object: another
// relay created the object first.
func isDuplicate(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42710"
}

// clientOpts are the options of the relay's transactional Kafka client
// (see transactionalClientOpts).
func (r *CDCRelay) clientOpts() []kgo.Opt {
	return transactionalClientOpts(r.cfg, CDCTransactionalIDPrefix+r.cfg.RelayID)
}

// writeFence commits a fence record; its first produce calls
// InitProducerId, which fences the previous incarnation and aborts its
// open transaction.
func (r *CDCRelay) writeFence(ctx context.Context, cl *kgo.Client) (int64, error) {
	v, err := json.Marshal(map[string]string{"relay": r.cfg.RelayID})
	if err != nil {
		return 0, err
	}
	return commitFence(ctx, cl, &kgo.Record{Topic: r.cfg.ProgressTopic, Key: []byte(cdcFenceKeyPrefix + r.cfg.RelayID), Value: v})
}

// sourceTxn is one source transaction's outbox inserts.
type sourceTxn struct {
	xid     uint32
	commit  pglogrepl.LSN // its commit LSN, known from its first message
	skip    bool          // a skip record names the whole transaction
	replay  bool          // published before the transaction the relay resumes after
	quiet   bool          // before the recorded heartbeat: may hold no outbox event
	covered int           // its first events in Kafka already (progress of a part)
	seen    int           // its events streamed so far
	hash    eventHash     // of the events streamed so far
	pending []claimed     // streamed, not yet published: at most BatchSize

	recorded *cdcProgress // the progress record of the last part published
	last     *sourceTxn   // the events of that part, for the crash hooks
	events   []claimed    // the events in hand at a crash hook
}

// stream receives the replication stream and publishes each source
// transaction with outbox events, in commit order.
//
// last is the relay's last progress record for src (nil if none); plan
// says what of it the slot streams again (see resumeCheck). If
// plan.verify is not nil, the slot was confirmed before that
// transaction: the transactions streamed before it were published
// already, and it must come next, the same transaction at the same
// position, or the server's history is not the recorded one and the
// relay stops with ErrSourceChanged. If plan.quietUntil is set, the
// transactions streamed before it must hold no outbox event, or the
// relay stops the same way. Nothing is confirmed until then.
//
// With out set (and once the table watch finds the outbox table
// replaced), the relay publishes what the slot streams up to out.to and
// then stops with out.err.
//
// The slot is only ever confirmed at the end of a transaction it streamed
// and that is committed in Kafka, or at a heartbeat's position once the
// heartbeat is committed (see heartbeat). Events and transactions in skipped are
// left out of the Kafka transaction, whose progress record still names
// the source transaction.
func (r *CDCRelay) stream(ctx context.Context, conn *pgconn.PgConn, cl *kgo.Client, src cdcSource, last *cdcProgress, plan resumePlan, skipped *skips, out *drain) error {
	verify, quietUntil := plan.verify, plan.quietUntil
	rels := map[uint32]*pglogrepl.RelationMessage{}
	partial := map[uint32]error{} // relations streamed without an event column
	types := pgtype.NewMap()
	var txn *sourceTxn
	var acked pglogrepl.LSN // 0 confirms nothing: PostgreSQL ignores it
	recorded := time.Now()  // when the last progress record was written
	nextStatus := time.Now().Add(cdcStatusInterval)
	status := func() error {
		err := pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{
			WALWritePosition: acked, WALFlushPosition: acked, WALApplyPosition: acked,
		})
		if err != nil {
			return fmt.Errorf("outbox: replication status update: %w", err)
		}
		nextStatus = time.Now().Add(cdcStatusInterval)
		return nil
	}
	// idle is the latest position the server reported while no
	// transaction was streaming: every transaction committed before it
	// was streamed. It is recorded (heartbeat) at most every
	// HeartbeatInterval, then confirmed.
	var idle pglogrepl.LSN
	watch := &tableWatch{dsn: r.dsn, pub: r.pub, src: src, seen: lastSeen(last)}
	defer watch.close(context.WithoutCancel(ctx))
	for {
		if out == nil {
			out = watch.check(ctx, r.cfg.RelayID)
		}
		checked := verify == nil && quietUntil == 0 // what the slot streams again is checked
		if out != nil && txn == nil && checked && max(idle, acked) >= out.to {
			// Everything committed before the table was replaced is
			// published.
			return r.stopDrained(ctx, cl, src, out)
		}
		wait := nextStatus
		if txn == nil && checked && idle > acked && (last == nil || idle > last.through()) {
			due := recorded.Add(r.cfg.HeartbeatInterval)
			if !time.Now().Before(due) {
				rec, err := r.heartbeat(ctx, cl, src, last, idle)
				if err != nil {
					return err
				}
				last, recorded, acked = rec, time.Now(), rec.heartbeat
				if err := status(); err != nil {
					return err
				}
				continue
			}
			if due.Before(wait) {
				wait = due
			}
		}
		if time.Now().After(nextStatus) {
			if err := status(); err != nil {
				return err
			}
		}
		if out == nil && watch.next.Before(wait) {
			wait = watch.next
		}
		rctx, cancel := context.WithDeadline(ctx, wait)
		msg, err := conn.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("outbox: receive replication message: %w", err)
		}
		var data []byte
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("outbox: replication: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CopyData:
			data = m.Data
		default:
			return fmt.Errorf("outbox: unexpected replication message %T", msg)
		}
		if len(data) == 0 {
			continue
		}
		switch data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
			if err != nil {
				return fmt.Errorf("outbox: keepalive: %w", err)
			}
			switch {
			case txn != nil || verify != nil:
			case quietUntil != 0 && ka.ServerWALEnd >= quietUntil:
				// Every transaction before the recorded heartbeat has
				// been streamed again, none with an outbox event: the
				// slot may move up to it.
				acked, quietUntil = quietUntil, 0
				if err := status(); err != nil {
					return err
				}
				continue
			case quietUntil == 0:
				idle = max(idle, ka.ServerWALEnd)
			}
			if ka.ReplyRequested {
				if err := status(); err != nil {
					return err
				}
			}
			continue
		case pglogrepl.XLogDataByteID:
		default:
			continue
		}
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("outbox: wal data: %w", err)
		}
		lm, err := pglogrepl.Parse(xld.WALData)
		if err != nil {
			return fmt.Errorf("outbox: logical message: %w", err)
		}
		switch m := lm.(type) {
		case *pglogrepl.RelationMessage:
			rels[m.RelationID] = m
			// Rows streamed without every event column are never
			// published; judged at each insert (see below), as a stop
			// position may already cover them.
			partial[m.RelationID] = wholeRows(m, r.pub)
		case *pglogrepl.BeginMessage:
			if out != nil && out.unpublished && verify == nil && quietUntil == 0 && m.FinalLSN >= out.to {
				// Committed after the drain's end: every transaction
				// before it is published, and this one is the
				// operator's (see recordUnpublished).
				return r.stopDrained(ctx, cl, src, out)
			}
			t := &sourceTxn{xid: m.Xid, commit: m.FinalLSN, skip: skipped.txn(m.FinalLSN), hash: newEventHash()}
			switch {
			case verify != nil && m.FinalLSN < verify.commit:
				// Published before the recorded transaction; its
				// confirmation was lost with the previous process.
				t.replay = true
			case verify != nil && m.FinalLSN == verify.commit && m.Xid == verify.XID:
				t.covered = verify.Events
				if verify.Partial && t.skip {
					// A part of it is published: a skip by LSN is
					// void, as SkipTransaction says (its record may
					// have raced the part's publication). A
					// transaction is never half published and half
					// skipped that way.
					t.skip = false
					r.log.Warn("outbox skip by LSN ignored: a part of the transaction is published; skip the refused event by id",
						"commit_lsn", m.FinalLSN, "published_events", verify.Events)
				}
			case verify != nil:
				return r.historyChanged(src, verify, m.Xid, m.FinalLSN)
			case m.FinalLSN < quietUntil:
				// Before the recorded heartbeat: it must hold no
				// outbox event (checked at its inserts).
				t.quiet = true
			case last != nil && last.published(m.FinalLSN):
				// resumeCheck lets no slot through that streams this.
				return fmt.Errorf("%w: the slot streamed transaction xid %d committed at %s, not after the last published one at %s",
					ErrSourceChanged, m.Xid, m.FinalLSN, last.CommitLSN)
			}
			txn = t
		case *pglogrepl.InsertMessage:
			if txn == nil {
				return errors.New("outbox: insert outside a transaction in the replication stream")
			}
			rel, ok := rels[m.RelationID]
			if !ok {
				return fmt.Errorf("outbox: insert into unknown relation %d", m.RelationID)
			}
			// While draining a replaced table of unknown oid (no
			// progress recorded it), its name at the time is the check:
			// the publication never covered another table.
			ours := rel.RelationID == src.tableOID
			switch {
			case out != nil && out.byName:
				ours = rel.Namespace == src.schema && rel.RelationName == src.table
				if ours {
					// The old table's oid, learnt from its first row:
					// progress records name it, so a restart drains
					// it by oid, not the new table by name.
					src.tableOID, out.byName = rel.RelationID, false
				}
			case ours && out == nil && (rel.Namespace != src.schema || rel.RelationName != src.table):
				// The outbox table, renamed or moved to another schema
				// while the relay streams: starting over finds the
				// publication covering it under its new name and
				// drains what the slot holds of it (see run).
				return fmt.Errorf("outbox: publication %s streamed a row of %s (oid %d) under the name %s.%s: the table was renamed or moved while the relay ran",
					r.pub, src.qualified(), src.tableOID, rel.Namespace, rel.RelationName)
			}
			if !ours {
				// A row of another table put into the publication: it
				// is never an event. The table watch (and the check at
				// start) stops the relay for the publication to be put
				// back; the slot keeps streaming such rows for the
				// transactions committed while it covered that table,
				// whatever the publication is now, so they cannot
				// stop the relay.
				continue
			}
			t := txn
			if before, ok := skipped.unpublished(xld.WALStart, t.commit); ok {
				// Inserted before the relay stopped because its table
				// left the publication (or the publication stopped
				// streaming it whole), committed after: its error told
				// the operator to publish such rows some other way.
				// Checked first, so that a transaction holding only
				// such rows counts as one without events everywhere.
				r.log.Warn("outbox event not published: inserted before the relay stopped for its publication, committed after; publish it some other way if it is not in the topics",
					"commit_lsn", t.commit, "stopped_at", before, "xid", t.xid, "id", eventIdentity(rel, m.Tuple).id)
				continue
			}
			perr := partial[rel.RelationID]
			if perr != nil && (skipped.stoppedAfter(t.commit) || out != nil && out.unpublished && t.commit < out.to) {
				// Streamed without all its columns (the publication had a
				// column list when it was inserted), committed before a
				// stop position: the relay's error at that stop told the
				// operator to publish such rows some other way. The slot
				// streams it so for ever, whatever the publication is
				// now. Checked before the heartbeat's range, as it counts
				// as no event.
				who := eventIdentity(rel, m.Tuple)
				r.log.Warn("outbox event not published: streamed without all its columns (the publication had a column list); publish it some other way if it is not in the topics",
					"commit_lsn", t.commit, "xid", t.xid, "id", who.id, "event_uuid", who.uuid, "err", perr)
				continue
			}
			if t.replay {
				continue
			}
			if t.quiet && !t.skip {
				return r.quietBroken(src, last, t.xid, t.commit)
			}
			if t.quiet {
				continue // skipped by a skip record before the heartbeat
			}
			if perr != nil && !t.skip {
				if out != nil {
					return stopError{perr}
				}
				// A column list given to the publication: publish what
				// the slot streams up to now, leaving out such rows,
				// record the stop position and stop, as when the table
				// watch sees the change (it may not have yet, or the
				// publication may have been mended since).
				to, err := watch.insertLSN(ctx)
				if err != nil {
					return err
				}
				out = &drain{to: to, unpublished: true, err: columnsLeftOut(src, r.pub, to, perr)}
				who := eventIdentity(rel, m.Tuple)
				r.log.Warn("outbox event not published: streamed without all its columns (the publication had a column list); publish it some other way if it is not in the topics",
					"commit_lsn", t.commit, "xid", t.xid, "id", who.id, "event_uuid", who.uuid, "err", perr)
				continue
			}
			ev, err := decodeInsert(types, rel, m.Tuple)
			if err != nil {
				if t.skip {
					continue
				}
				// Skips are checked before a row must be readable: an
				// unreadable row can only be skipped, by id (its
				// transaction may have a part published already) as
				// well as by commit LSN. It counts as an event of its
				// transaction, hashed by its id and UUID, as every
				// restart finds it again with the same skip records.
				who := eventIdentity(rel, m.Tuple)
				if who.uuid != "" && skipped.event(who) {
					ev, err = who, nil
				}
			}
			if err != nil {
				if errors.Is(err, errNoEventUUID) {
					// The column was dropped under the relay (it refuses to
					// start on such a table): starting over cannot mend it.
					return stopError{fmt.Errorf("outbox: an insert into %s committed at %s has no event_uuid (the column was dropped?): "+
						"run weir outbox migrate to add it again, then skip the transaction (weir outbox skip --mode cdc --relay-id %s --lsn %s) "+
						"or publish it some other way; no event is published without %s",
						src.qualified(), t.commit, r.cfg.RelayID, t.commit, EventUUIDHeader)}
				}
				return fmt.Errorf("%w (source transaction committed at %s; skip it with %s)",
					err, t.commit, unreadableSkipHint(r.cfg, eventIdentity(rel, m.Tuple), t))
			}
			t.seen++
			t.hash.add(ev)
			if verify != nil && t.seen > t.covered {
				// More events than the recorded whole transaction: not
				// the same one. Nothing of it may be published.
				return r.historyChanged(src, verify, t.xid, t.commit)
			}
			if t.seen <= t.covered {
				// In Kafka already (the recorded part of a transaction
				// published in parts): checked once all of it is seen.
				if t.seen == t.covered && verify.Partial {
					if t.hash.sum() != verify.Digest {
						return r.historyChanged(src, verify, t.xid, t.commit)
					}
					verify = nil
				}
				continue
			}
			if t.skip || skipped.event(ev) {
				r.log.Warn("outbox event skipped as a skip record in the progress topic says", "id", ev.id, "topic", ev.topic, "commit_lsn", t.commit)
			} else {
				t.pending = append(t.pending, ev)
			}
			if len(t.pending) >= r.cfg.BatchSize {
				if err := r.publishPart(ctx, cl, src, t, 0); err != nil {
					return err
				}
				last = t.recorded
			}
		case *pglogrepl.CommitMessage:
			if txn == nil {
				return errors.New("outbox: commit outside a transaction in the replication stream")
			}
			t := txn
			txn = nil
			if t.replay {
				continue
			}
			if verify != nil {
				// The recorded transaction, published whole: it must be
				// the same one.
				if verify.Partial || t.seen != verify.Events || t.hash.sum() != verify.Digest {
					return r.historyChanged(src, verify, t.xid, t.commit)
				}
				verify = nil
				acked = m.TransactionEndLSN
				if err := status(); err != nil {
					return err
				}
				continue
			}
			if t.seen == 0 {
				continue
			}
			if err := r.publishPart(ctx, cl, src, t, m.TransactionEndLSN); err != nil {
				return err
			}
			last, recorded = t.recorded, time.Now()
			r.hook(crashCDCBeforeAck, t.last)
			acked = m.TransactionEndLSN
			if err := status(); err != nil {
				return err
			}
		}
	}
}

// stopDrained ends the drain out: everything committed before out.to is
// published.
func (r *CDCRelay) stopDrained(ctx context.Context, cl *kgo.Client, src cdcSource, out *drain) error {
	if out.unpublished {
		if err := r.recordUnpublished(ctx, cl, src, out.to); err != nil {
			return err
		}
	}
	return stopError{out.err}
}

// recordUnpublished commits to the progress topic that the relay stopped
// at to because its table left its publication (or the publication
// stopped streaming it whole): from then on the relay publishes no row
// inserted before to in a transaction committed after it, as its error
// tells the operator to publish the rows committed after to some other
// way. PostgreSQL decodes an insert by the publication as of the insert,
// so the slot streams such a row once its transaction commits, even
// after the table is put back. Each position has a record of its own
// (its key ends with it), as the progress topic is compacted: a row
// left out under an earlier stop, streamed again because nothing after
// it was confirmed to the slot, must stay left out after a later one.
func (r *CDCRelay) recordUnpublished(ctx context.Context, cl *kgo.Client, src cdcSource, to pglogrepl.LSN) error {
	v, err := json.Marshal(unpublishedRecord{Relay: r.cfg.RelayID, Before: to.String()})
	if err != nil {
		return err
	}
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.TxnTimeout)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("outbox: begin transaction: %w", err)
	}
	rec := &kgo.Record{Topic: r.cfg.ProgressTopic, Key: []byte(src.unpublishedKey(r.cfg.RelayID) + "/" + to.String()), Value: v}
	if err := cl.ProduceSync(bctx, rec).FirstErr(); err != nil {
		return errors.Join(fmt.Errorf("outbox: record where the relay stopped: %w", err), abort(bctx, cl))
	}
	if err := cl.EndTransaction(bctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("outbox: record where the relay stopped: %w", err)
	}
	return nil
}

// unpublishedRecord is the value of the record recordUnpublished writes.
type unpublishedRecord struct {
	Relay  string `json:"relay"`
	Before string `json:"unpublished_before"`
}

// historyChanged is the error of a slot that streams, where the progress
// records transaction verify, transaction xid committed at commit.
func (r *CDCRelay) historyChanged(src cdcSource, verify *cdcProgress, xid uint32, commit pglogrepl.LSN) error {
	return fmt.Errorf("%w: the slot streamed transaction xid %d committed at %s where the progress topic records "+
		"the last published transaction, xid %d committed at %s (timeline %d), and this server is at timeline %d: "+
		"the database's history is not the one the relay published from (restored or failed over); "+
		"publish the outbox rows committed after that transaction some other way (or accept their loss), "+
		"then drop this relay id's publication and slot (weir outbox drop-slot --relay-id %s) and start the relay under a new --relay-id",
		ErrSourceChanged, xid, commit, verify.XID, verify.CommitLSN, verify.Timeline, src.timeline, r.cfg.RelayID)
}

// quietBroken is the error of a slot that streams, before the position
// of the recorded heartbeat last, where every transaction had been
// streamed with no outbox event, transaction xid committed at commit
// with one.
func (r *CDCRelay) quietBroken(src cdcSource, last *cdcProgress, xid uint32, commit pglogrepl.LSN) error {
	return fmt.Errorf("%w: the progress topic records a heartbeat at %s (every transaction before it streamed, none with an outbox event), "+
		"but the slot streams transaction xid %d committed at %s with one; this server is at timeline %d: "+
		"the database's history is not the one the relay published from (restored or failed over); "+
		"publish the outbox rows committed after %s some other way (or accept their loss), "+
		"then drop this relay id's publication and slot (weir outbox drop-slot --relay-id %s) and start the relay under a new --relay-id",
		ErrSourceChanged, last.Heartbeat, xid, commit, src.timeline, last.lastPublished(), r.cfg.RelayID)
}

// publishPart publishes t's pending events with a progress record naming
// every event of t streamed so far: the whole transaction if end (its end
// LSN) is set, else a part of it.
func (r *CDCRelay) publishPart(ctx context.Context, cl *kgo.Client, src cdcSource, t *sourceTxn, end pglogrepl.LSN) error {
	rec := &cdcProgress{
		Relay: r.cfg.RelayID, SystemID: src.systemID, Timeline: src.timeline, Database: src.dbOID,
		Table: src.qualified(), TableOID: src.tableOID, Slot: r.slot,
		CommitLSN: t.commit.String(), XID: t.xid, Events: t.seen, Digest: t.hash.sum(),
		commit: t.commit, end: t.commit,
	}
	if end != 0 {
		rec.EndLSN, rec.end = end.String(), end
	} else {
		rec.Partial = true
	}
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.TxnTimeout)
	defer cancel()
	if err := r.publish(bctx, cl, src, t.pending, rec); err != nil {
		return err
	}
	r.published.Add(int64(len(t.pending)))
	r.batches.Add(1)
	r.log.Info("outbox source transaction published", "commit_lsn", rec.CommitLSN, "xid", rec.XID, "events", len(t.pending), "whole", !rec.Partial)
	t.recorded, t.last, t.pending = rec, &sourceTxn{events: t.pending}, nil
	return nil
}

// heartbeat records that the slot has streamed every transaction
// committed before lsn, a position the server reported while no
// transaction was streaming, with nothing left to publish; the relay may
// then confirm lsn to the slot and keep the history checks of
// resumeCheck, which hold the slot to the recorded progress.
func (r *CDCRelay) heartbeat(ctx context.Context, cl *kgo.Client, src cdcSource, last *cdcProgress, lsn pglogrepl.LSN) (*cdcProgress, error) {
	rec := &cdcProgress{}
	if last != nil {
		*rec = *last // its transaction, checked again on a resume
	}
	rec.Relay, rec.SystemID, rec.Timeline, rec.Database = r.cfg.RelayID, src.systemID, src.timeline, src.dbOID
	rec.Table, rec.TableOID, rec.Slot = src.qualified(), src.tableOID, r.slot
	rec.Heartbeat, rec.heartbeat = lsn.String(), lsn
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.TxnTimeout)
	defer cancel()
	if err := r.publish(bctx, cl, src, nil, rec); err != nil {
		return nil, err
	}
	r.log.Debug("outbox cdc relay idle: position recorded", "lsn", rec.Heartbeat)
	return rec, nil
}

// publish produces events of a source transaction and its progress
// record rec in one Kafka transaction and commits it.
func (r *CDCRelay) publish(ctx context.Context, cl *kgo.Client, src cdcSource, events []claimed, rec *cdcProgress) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	r.hook(crashCDCBeforePublish, &sourceTxn{events: events})
	recs := make([]*kgo.Record, 0, len(events)+1)
	for _, e := range events {
		recs = append(recs, eventRecord(e))
	}
	recs = append(recs, &kgo.Record{Topic: r.cfg.ProgressTopic, Key: []byte(src.progressKey(r.cfg.RelayID)), Value: v})
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("outbox: begin transaction: %w", err)
	}
	if rs := cl.ProduceSync(ctx, recs...); rs.FirstErr() != nil {
		if id, topic, why, ok := refusedEvent(rs); ok {
			r.log.Warn("outbox event refused by Kafka; its source transaction is retried until the cause is fixed or the event skipped (deleting the row changes nothing)",
				"id", id, "topic", topic, "commit_lsn", rec.CommitLSN, "err", why,
				"skip", skipHint(r.cfg, id, rec, len(events)))
		}
		return errors.Join(fmt.Errorf("outbox: publish transaction %s: %w", rec.CommitLSN, rs.FirstErr()), abort(ctx, cl))
	}
	r.hook(crashCDCBeforeCommit, &sourceTxn{events: events})
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("outbox: commit transaction %s: %w", rec.CommitLSN, err)
	}
	return nil
}

// eventColumns are the outbox columns an event is made of.
var eventColumns = []string{"id", "topic", "event_uuid", "key", "payload", "headers"}

// wholeRows checks that the slot streams the outbox table's rows with
// every column an event is made of: a column list given to the
// publication would otherwise publish events without their key, payload
// or headers. PostgreSQL decodes each change by the publication as of
// that change, so rows inserted under a column list are streamed so
// for ever, even once it is mended.
func wholeRows(rel *pglogrepl.RelationMessage, pub string) error {
	have := map[string]bool{}
	for _, c := range rel.Columns {
		have[c.Name] = true
	}
	for _, c := range eventColumns {
		if !have[c] {
			return fmt.Errorf("outbox: publication %s streams rows of %s.%s without column %s (a column list was given to it): "+
				"no event is published without it",
				pub, rel.Namespace, rel.RelationName, c)
		}
	}
	return nil
}

// errNoEventUUID is decodeInsert's error for a row without event_uuid.
var errNoEventUUID = errors.New("outbox: row without event_uuid")

// skipHint is the command that skips event id, refused in a Kafka
// transaction of n events recorded by rec. A transaction an earlier part
// of which went to Kafka cannot be skipped whole (SkipTransaction).
func skipHint(cfg RelayConfig, id int64, rec *cdcProgress, n int) string {
	hint := fmt.Sprintf("weir outbox skip --mode cdc --table %s --relay-id %s --id %d", cfg.Table, cfg.RelayID, id)
	if rec.Events > n {
		return hint + " (an earlier part of its source transaction is published: it cannot be skipped whole)"
	}
	return hint + " (or --lsn " + rec.CommitLSN + " for the whole transaction)"
}

// eventIdentity reads what a skip by id names, the id and the UUID, from
// an inserted outbox row however unreadable its other columns are; what
// it cannot read is left zero.
func eventIdentity(rel *pglogrepl.RelationMessage, tuple *pglogrepl.TupleData) claimed {
	var ev claimed
	if tuple == nil {
		return ev
	}
	for i, col := range tuple.Columns {
		if i >= len(rel.Columns) || col.DataType != pglogrepl.TupleDataTypeText {
			continue
		}
		switch rel.Columns[i].Name {
		case "id":
			ev.id, _ = strconv.ParseInt(string(col.Data), 10, 64)
		case "event_uuid":
			ev.uuid = string(col.Data)
		}
	}
	return ev
}

// unreadableSkipHint is the command that skips the unreadable row who of
// source transaction t: by id when the row has one and UUID, and by
// commit LSN unless a part of t is published already, which
// SkipTransaction refuses.
func unreadableSkipHint(cfg RelayConfig, who claimed, t *sourceTxn) string {
	byLSN := fmt.Sprintf("weir outbox skip --mode cdc --table %s --relay-id %s --lsn %s", cfg.Table, cfg.RelayID, t.commit)
	if who.id == 0 || who.uuid == "" {
		return byLSN
	}
	byID := fmt.Sprintf("weir outbox skip --mode cdc --table %s --relay-id %s --id %d", cfg.Table, cfg.RelayID, who.id)
	if t.covered > 0 || t.recorded != nil {
		return byID + " (a part of the transaction is published: it cannot be skipped whole)"
	}
	return byID + ", or the whole transaction: " + byLSN
}

// decodeInsert turns an inserted outbox row (text format) into an event.
func decodeInsert(types *pgtype.Map, rel *pglogrepl.RelationMessage, tuple *pglogrepl.TupleData) (claimed, error) {
	var ev claimed
	if tuple == nil {
		return ev, errors.New("outbox: insert without a row")
	}
	var haveID, haveTopic bool
	for i, col := range tuple.Columns {
		if i >= len(rel.Columns) {
			return ev, fmt.Errorf("outbox: row of %s has more columns than its relation", rel.RelationName)
		}
		if col.DataType == 'n' {
			continue
		}
		if col.DataType != pglogrepl.TupleDataTypeText {
			return ev, fmt.Errorf("outbox: column %s: unexpected tuple data type %q", rel.Columns[i].Name, col.DataType)
		}
		var err error
		switch rel.Columns[i].Name {
		case "id":
			ev.id, err = strconv.ParseInt(string(col.Data), 10, 64)
			haveID = err == nil
		case "topic":
			ev.topic, haveTopic = string(col.Data), true
		case "event_uuid":
			ev.uuid = string(col.Data)
		case "key":
			err = types.Scan(pgtype.ByteaOID, pgtype.TextFormatCode, col.Data, &ev.key)
		case "payload":
			err = types.Scan(pgtype.ByteaOID, pgtype.TextFormatCode, col.Data, &ev.payload)
		case "headers":
			err = json.Unmarshal(col.Data, &ev.headers)
		}
		if err != nil {
			return ev, fmt.Errorf("outbox: column %s of %s: %w", rel.Columns[i].Name, rel.RelationName, err)
		}
	}
	if !haveID || !haveTopic {
		return ev, fmt.Errorf("outbox: row of %s without id or topic", rel.RelationName)
	}
	if ev.uuid == "" {
		// Published without weir-event-uuid, the event could not be
		// deduplicated by the key the package doc promises.
		return ev, errNoEventUUID
	}
	return ev, nil
}

func (r *CDCRelay) hook(point string, t *sourceTxn) {
	if r.crashAt != nil {
		ids := make([]int64, len(t.events))
		for i, e := range t.events {
			ids[i] = e.id
		}
		r.crashAt(point, ids)
	}
}

// columnsLeftOut is the error of a relay that met rows of its table
// streamed without every event column (perr says which), and stopped at
// to once it published what the slot streamed before.
func columnsLeftOut(src cdcSource, pub string, to pglogrepl.LSN, perr error) error {
	return fmt.Errorf("%w: %w. Every event committed before %s is published, but for the rows streamed without all their "+
		"columns, which the relay logs (id and event UUID) and never publishes: the slot streams them so at every start. "+
		"No row committed after %s is published by this relay until the publication is mended, nor a row inserted before "+
		"%s in a transaction that commits after it. Publish some other way the rows committed since (their event UUIDs "+
		"are not in the topics) and the rows it logged, then %s and start the relay again: it publishes the rows inserted "+
		"from then on", ErrSourceChanged, perr, to, to, to, publicationRemedy(pub, src, false))
}
