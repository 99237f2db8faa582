package outbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// MarkPublished marks sent exactly the pending rows of the relay's table
// whose events are in their topics: those whose event UUID a committed
// record of the topic the row names carries in its EventUUIDHeader. It
// is the second step of switching a table from change data capture to
// polling, after DropSlot: the change-data-capture relay leaves the
// rows it publishes pending, and publishes in commit order, not id
// order, so no id bound separates what it published from what it did
// not (a row inserted before a later one may commit after the relay
// stopped). The rows it returns the count of are the ones published;
// every other pending row is left for the polling relay. It reads each
// topic to its last stable offset (so a transaction still open is not
// counted), and may be run again; it fails while a change-data-capture
// relay streams the table, which could publish rows after the read.
func (r *CDCRelay) MarkPublished(ctx context.Context) (int64, error) {
	pcfg, err := pgx.ParseConfig(r.dsn)
	if err != nil {
		return 0, fmt.Errorf("outbox: database address: %w", err)
	}
	delete(pcfg.RuntimeParams, "replication")
	db, err := pgx.ConnectConfig(ctx, pcfg)
	if err != nil {
		return 0, fmt.Errorf("outbox: database: %w", err)
	}
	defer db.Close(context.WithoutCancel(ctx))
	var holders string
	oid := "to_regclass(" + quoteLiteral(r.n.table) + ")::oid"
	if err := db.QueryRow(ctx, markHoldersSQL(cdcModeTag, oid)).Scan(&holders); err != nil {
		return 0, fmt.Errorf("outbox: look up relays of %s: %w", r.n.table, err)
	}
	if holders != "" {
		return 0, fmt.Errorf("outbox: table %s is being published by a change-data-capture relay (%s): stop it first", r.n.table, holders)
	}
	rows, err := db.Query(ctx, `SELECT DISTINCT topic FROM `+r.n.table+` WHERE state = 'pending'`)
	if err != nil {
		return 0, fmt.Errorf("outbox: read %s: %w", r.n.table, err)
	}
	topics, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("outbox: read %s: %w", r.n.table, err)
	}
	if len(topics) == 0 {
		return 0, nil
	}
	uuids, err := publishedUUIDs(ctx, r.cfg, topics)
	if err != nil {
		return 0, err
	}
	if len(uuids) == 0 {
		return 0, nil
	}
	tag, err := db.Exec(ctx, `UPDATE `+r.n.table+` SET state = 'sent', sent_at = now()
		WHERE state = 'pending' AND event_uuid = ANY($1::uuid[])`, uuids)
	if err != nil {
		return 0, fmt.Errorf("outbox: mark published rows of %s sent: %w", r.n.table, err)
	}
	return tag.RowsAffected(), nil
}

// publishedUUIDs reads topics, read_committed, from their start to their
// last stable offsets and returns the event UUIDs their records carry.
// Control records are kept so that the reader knows when it reached an
// offset that only a transaction marker holds.
func publishedUUIDs(ctx context.Context, cfg RelayConfig, topics []string) ([]string, error) {
	opts := append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)
	adm, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("outbox: kafka client: %w", err)
	}
	ends, err := kadm.NewClient(adm).ListCommittedOffsets(ctx, topics...)
	adm.Close()
	if err != nil {
		return nil, fmt.Errorf("outbox: list offsets of %v: %w", topics, err)
	}
	want := map[string]map[int32]kgo.Offset{}
	left := map[string]map[int32]int64{}
	for t, ps := range ends {
		for p, o := range ps {
			if o.Err != nil {
				if errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
					continue // never published to
				}
				return nil, fmt.Errorf("outbox: list offsets of %s/%d: %w", t, p, o.Err)
			}
			if o.Offset <= 0 {
				continue
			}
			if want[t] == nil {
				want[t], left[t] = map[int32]kgo.Offset{}, map[int32]int64{}
			}
			want[t][p] = kgo.NewOffset().AtStart()
			left[t][p] = o.Offset
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumePartitions(want),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return nil, fmt.Errorf("outbox: kafka client: %w", err)
	}
	defer cl.Close()
	var uuids []string
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var readErr error
		fs.EachError(func(t string, p int32, err error) {
			readErr = errors.Join(readErr, fmt.Errorf("outbox: read %s/%d: %w", t, p, err))
		})
		if readErr != nil {
			return nil, readErr
		}
		fs.EachRecord(func(rec *kgo.Record) {
			end, ok := left[rec.Topic][rec.Partition]
			if !ok || rec.Offset >= end {
				return
			}
			if !rec.Attrs.IsControl() {
				for _, h := range rec.Headers {
					if h.Key == EventUUIDHeader && isUUID(h.Value) {
						uuids = append(uuids, string(h.Value))
					}
				}
			}
			if rec.Offset+1 >= end {
				delete(left[rec.Topic], rec.Partition)
				if len(left[rec.Topic]) == 0 {
					delete(left, rec.Topic)
				}
			}
		})
	}
	return uuids, nil
}

// isUUID reports whether v is a UUID in its text form, as the relays
// write it; other values of the header (written by others) are ignored.
func isUUID(v []byte) bool {
	if len(v) != 36 {
		return false
	}
	for i, c := range v {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}
