package outbox

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
)

// EventIDHeader is the Kafka record header in which the relay puts the
// event's id (the outbox row's id, in decimal). It is a value of the
// table's sequence: another table, another database, or the same one
// restored from a backup, issues the same ids to other events, so it is
// no deduplication key; use EventUUIDHeader.
const EventIDHeader = "weir-event-id"

// EventUUIDHeader is the Kafka record header in which the relay puts the
// event's UUID (the row's event_uuid, drawn by the database when the row
// is written; text form). It is the deduplication key to use for what
// the relay may publish more than once: the events a database restored
// from a backup publishes again (see the package doc), or a row published
// again by hand. It does not catch an application that writes one
// business event twice, as two rows: deduplicate those on a business key
// the application puts in a header of its own.
const EventUUIDHeader = "weir-event-uuid"

// Event is one message to publish.
type Event struct {
	// Topic receives the event; required, a name Kafka allows (at most
	// 249 of a-z A-Z 0-9 . _ -), and it must exist when the relay
	// publishes the event.
	Topic string
	// Key is the record key, which picks the partition; nil for none.
	Key []byte
	// Payload is the record value; nil publishes a null value (a
	// tombstone on a compacted topic).
	Payload []byte
	// Headers become record headers, in key order, followed by
	// EventIDHeader and EventUUIDHeader, which they may not contain.
	Headers map[string]string
}

// Kafka's rules for topic names.
const maxTopicLen = 249

var topicRE = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// ErrInvalidEvent is returned by Write for an event it refuses.
var ErrInvalidEvent = errors.New("outbox: invalid event")

// Write inserts ev into the outbox inside the caller's transaction tx;
// returns the event id. The event is published if and only if tx commits.
func Write(ctx context.Context, tx pgx.Tx, ev Event) (int64, error) {
	return WriteTable(ctx, tx, DefaultTable, ev)
}

// WriteTable is Write into an outbox table of another name.
func WriteTable(ctx context.Context, tx pgx.Tx, table string, ev Event) (int64, error) {
	if ev.Topic == "" {
		return 0, fmt.Errorf("%w: topic is required", ErrInvalidEvent)
	}
	// A topic Kafka refuses would fail the event's batch at every
	// attempt and hold the relay back; refuse it here, where the caller
	// can still do something about it.
	if len(ev.Topic) > maxTopicLen || ev.Topic == "." || ev.Topic == ".." || !topicRE.MatchString(ev.Topic) {
		return 0, fmt.Errorf("%w: topic %q: Kafka allows 1 to %d of the characters a-z A-Z 0-9 . _ -, and not . or .. alone",
			ErrInvalidEvent, ev.Topic, maxTopicLen)
	}
	for _, h := range []string{EventIDHeader, EventUUIDHeader} {
		if _, ok := ev.Headers[h]; ok {
			return 0, fmt.Errorf("%w: header %s is set by the relay", ErrInvalidEvent, h)
		}
	}
	n, err := tableNames(table)
	if err != nil {
		return 0, err
	}
	headers := ev.Headers
	if headers == nil {
		headers = map[string]string{}
	}
	var id int64
	err = tx.QueryRow(ctx,
		`INSERT INTO `+n.table+` (topic, key, payload, headers) VALUES ($1, $2, $3, $4) RETURNING id`,
		ev.Topic, ev.Key, ev.Payload, headers).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("outbox: write: %w", err)
	}
	return id, nil
}
