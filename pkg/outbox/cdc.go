package outbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/twmb/franz-go/pkg/kgo"
)

// CDCTransactionalIDPrefix followed by the relay id is the Kafka
// transactional id of a relay in change-data-capture mode.
const CDCTransactionalIDPrefix = "weir-outbox-cdc-"

// Progress keys of the change-data-capture relay (see the package doc).
const (
	cdcKeyPrefix      = "cdc/"
	cdcFenceKeyPrefix = "cdc-fence/"
)

// Crash points of the change-data-capture relay.
const (
	crashCDCBeforeCommit = "cdc-before-commit" // source transaction produced in an open Kafka transaction
	crashCDCBeforeAck    = "cdc-before-ack"    // Kafka transaction committed, slot not yet told
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
	slot string
	pub  string

	published atomic.Int64
	batches   atomic.Int64

	// crashAt, when set, is called at each crash point with the event ids
	// in hand. Only tests set it.
	crashAt func(point string, ids []int64)
}

// cdcProgress is the value of a change-data-capture progress record.
type cdcProgress struct {
	Relay     string `json:"relay"`
	CommitLSN string `json:"commit_lsn,omitempty"`
	EndLSN    string `json:"end_lsn,omitempty"`
}

// NewCDCRelay checks cfg and returns a relay reading the outbox table of
// the database at dsn through logical replication. BatchSize and
// PollInterval are not used. Nothing happens until Run.
func NewCDCRelay(dsn string, cfg RelayConfig) (*CDCRelay, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	pc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("outbox: database address: %w", err)
	}
	n, _ := tableNames(cfg.Table)
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	base := cfg.Table[strings.LastIndex(cfg.Table, ".")+1:]
	return &CDCRelay{
		cfg:  cfg,
		dsn:  dsn,
		n:    n,
		log:  logger.With("relay", cfg.RelayID, "mode", "cdc"),
		slot: CDCSlotName(pc.Database, cfg.Table, cfg.RelayID),
		pub:  strings.ToLower(base) + "_cdc",
	}, nil
}

// CDCSlotName is the replication slot a change-data-capture relay with
// this relay id uses for this outbox table of this database. Slot names
// are unique in the whole server and allow only a-z, 0-9 and _, so the
// three are hashed.
func CDCSlotName(database, table, relayID string) string {
	if table == "" {
		table = DefaultTable
	}
	h := sha256.Sum256([]byte(database + "\x00" + table + "\x00" + relayID))
	return "weir_outbox_cdc_" + hex.EncodeToString(h[:12])
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
// database or brokers), or one wrapping ErrFenced if another relay with
// the same relay id took over. While the slot is still held by a previous
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
		if !started && !slotInUse(err) {
			return err
		}
		r.log.Warn("outbox cdc relay restarting", "err", err)
		if !sleep(ctx, time.Second) {
			return nil
		}
	}
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
	if err := r.setup(ctx, conn); err != nil {
		return err
	}
	cl, err := kgo.NewClient(r.clientOpts()...)
	if err != nil {
		return fmt.Errorf("outbox: kafka client: %w", err)
	}
	defer cl.Close()
	if err := ensureProgressTopic(ctx, cl, r.cfg.ProgressTopic); err != nil {
		return err
	}
	fence, err := r.writeFence(ctx, cl)
	if err != nil {
		return err
	}
	last, err := r.readProgress(ctx, fence)
	if err != nil {
		return err
	}
	if err := pglogrepl.StartReplication(ctx, conn, r.slot, 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + r.pub + "'"},
	}); err != nil {
		return fmt.Errorf("outbox: start replication from slot %s: %w", r.slot, err)
	}
	*started = true
	r.log.Info("outbox cdc relay started", "slot", r.slot, "resume_after", last.commit)
	return r.stream(ctx, conn, cl, last)
}

// connect opens a replication connection to the database.
func (r *CDCRelay) connect(ctx context.Context) (*pgconn.PgConn, error) {
	pc, err := pgconn.ParseConfig(r.dsn)
	if err != nil {
		return nil, fmt.Errorf("outbox: database address: %w", err)
	}
	pc.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("outbox: replication connection: %w", err)
	}
	return conn, nil
}

// setup creates the publication (inserts into the outbox table only) and
// the relay's slot unless they exist.
func (r *CDCRelay) setup(ctx context.Context, conn *pgconn.PgConn) error {
	exists := func(q string) (bool, error) {
		res, err := conn.Exec(ctx, q).ReadAll()
		if err != nil {
			return false, err
		}
		return len(res) == 1 && len(res[0].Rows) > 0, nil
	}
	ok, err := exists(`SELECT 1 FROM pg_publication WHERE pubname = '` + r.pub + `'`)
	if err != nil {
		return fmt.Errorf("outbox: look up publication %s: %w", r.pub, err)
	}
	if !ok {
		_, err := conn.Exec(ctx, `CREATE PUBLICATION `+r.pub+` FOR TABLE `+r.n.table+` WITH (publish = 'insert')`).ReadAll()
		if err != nil && !isDuplicate(err) {
			return fmt.Errorf("outbox: create publication %s: %w", r.pub, err)
		}
	}
	ok, err = exists(`SELECT 1 FROM pg_replication_slots WHERE slot_name = '` + r.slot + `'`)
	if err != nil {
		return fmt.Errorf("outbox: look up slot %s: %w", r.slot, err)
	}
	if !ok {
		_, err := pglogrepl.CreateReplicationSlot(ctx, conn, r.slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{})
		if err != nil && !isDuplicate(err) {
			return fmt.Errorf("outbox: create replication slot %s: %w", r.slot, err)
		}
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
	v, err := json.Marshal(cdcProgress{Relay: r.cfg.RelayID})
	if err != nil {
		return 0, err
	}
	return commitFence(ctx, cl, &kgo.Record{Topic: r.cfg.ProgressTopic, Key: []byte(cdcFenceKeyPrefix + r.cfg.RelayID), Value: v})
}

// position is the last source transaction committed to Kafka.
type position struct {
	commit, end pglogrepl.LSN
}

// readProgress reads the progress topic read_committed up to the fence
// record at fenceOffset (see readProgress of the polling relay for why the
// fence makes the answer complete) and returns the last recorded position.
func (r *CDCRelay) readProgress(ctx context.Context, fenceOffset int64) (position, error) {
	var last position
	err := scanProgress(ctx, r.cfg, cdcKeyPrefix+r.cfg.RelayID, fenceOffset, func(offset int64, value []byte) error {
		var p cdcProgress
		if err := json.Unmarshal(value, &p); err != nil {
			return fmt.Errorf("outbox: progress record at offset %d: %w", offset, err)
		}
		c, err1 := pglogrepl.ParseLSN(p.CommitLSN)
		e, err2 := pglogrepl.ParseLSN(p.EndLSN)
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("outbox: progress record at offset %d: %w", offset, err)
		}
		last = position{commit: c, end: e}
		return nil
	})
	if err != nil {
		return position{}, err
	}
	return last, nil
}

// sourceTxn is one source transaction's outbox inserts.
type sourceTxn struct {
	events []claimed
}

// stream receives the replication stream and publishes each source
// transaction whose commit comes after last.
func (r *CDCRelay) stream(ctx context.Context, conn *pgconn.PgConn, cl *kgo.Client, last position) error {
	rels := map[uint32]*pglogrepl.RelationMessage{}
	types := pgtype.NewMap()
	var txn *sourceTxn
	acked := last.end // what PostgreSQL may forget
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
	for {
		if time.Now().After(nextStatus) {
			if err := status(); err != nil {
				return err
			}
		}
		rctx, cancel := context.WithDeadline(ctx, nextStatus)
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
		case *pglogrepl.BeginMessage:
			txn = &sourceTxn{}
		case *pglogrepl.InsertMessage:
			if txn == nil {
				return errors.New("outbox: insert outside a transaction in the replication stream")
			}
			rel, ok := rels[m.RelationID]
			if !ok {
				return fmt.Errorf("outbox: insert into unknown relation %d", m.RelationID)
			}
			ev, err := decodeInsert(types, rel, m.Tuple)
			if err != nil {
				return err
			}
			txn.events = append(txn.events, ev)
		case *pglogrepl.CommitMessage:
			if txn == nil {
				return errors.New("outbox: commit outside a transaction in the replication stream")
			}
			t := txn
			txn = nil
			// The slot's confirmed position may lag the progress
			// topic (the status update follows the Kafka commit):
			// what the topic records is published already.
			if m.CommitLSN <= last.commit || len(t.events) == 0 {
				continue
			}
			pos := position{commit: m.CommitLSN, end: m.TransactionEndLSN}
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.TxnTimeout)
			err := r.publish(bctx, cl, t, pos)
			cancel()
			if err != nil {
				return err
			}
			last = pos
			r.published.Add(int64(len(t.events)))
			r.batches.Add(1)
			r.hook(crashCDCBeforeAck, t)
			acked = pos.end
			if err := status(); err != nil {
				return err
			}
		}
	}
}

// publish produces a source transaction's events and the progress record
// naming its commit in one Kafka transaction and commits it.
func (r *CDCRelay) publish(ctx context.Context, cl *kgo.Client, t *sourceTxn, pos position) error {
	v, err := json.Marshal(cdcProgress{Relay: r.cfg.RelayID, CommitLSN: pos.commit.String(), EndLSN: pos.end.String()})
	if err != nil {
		return err
	}
	recs := make([]*kgo.Record, 0, len(t.events)+1)
	for _, e := range t.events {
		recs = append(recs, eventRecord(e))
	}
	recs = append(recs, &kgo.Record{Topic: r.cfg.ProgressTopic, Key: []byte(cdcKeyPrefix + r.cfg.RelayID), Value: v})
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("outbox: begin transaction: %w", err)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return errors.Join(fmt.Errorf("outbox: publish transaction %s: %w", pos.commit, err), abort(ctx, cl))
	}
	r.hook(crashCDCBeforeCommit, t)
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("outbox: commit transaction %s: %w", pos.commit, err)
	}
	return nil
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
