// Package txn is the transaction coordinator (KIP-98): for each
// transactional id, the producer id and epoch that own it, the partitions
// and groups of its open transaction, and the state of that transaction.
//
// Coordinator is a pure state machine, as group.Shard is: requests come in
// through Step, time through Tick, and every effect goes out in a Ready
// for a driver to carry out: state records to make durable (Appends,
// reported back with AppendDone), markers to write (Markers, reported
// back with MarkersDone), producer ids to allocate (NeedProducerIDs,
// reported back with ProducerID) and Responses. It reads no clock, does
// no I/O and takes no lock, so its driver never holds one across an fsync
// or a marker write.
//
// Every change is durable before it takes effect or is answered, and the
// markers that end a transaction are asked for between the
// PrepareCommit/PrepareAbort record and the CompleteCommit/CompleteAbort
// record, so a crash at any point leaves a state that recovery finishes:
// a transaction found in a Prepare state at Loaded has its markers
// written (again; writing a marker twice is harmless) and is completed.
//
// Each transactional id runs one operation at a time: a request for an id
// with an append, marker write or producer-id allocation in flight waits
// (parked in the state machine) until the id is idle. Requests for other
// ids proceed independently.
package txn

import (
	"errors"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Status is where a transactional id's current transaction stands.
type Status string

// Statuses, named as Kafka's ListTransactions reports them.
const (
	Empty          Status = "Empty"
	Ongoing        Status = "Ongoing"
	PrepareCommit  Status = "PrepareCommit"
	PrepareAbort   Status = "PrepareAbort"
	CompleteCommit Status = "CompleteCommit"
	CompleteAbort  Status = "CompleteAbort"
)

// TopicPartition names a partition in a transaction.
type TopicPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// Meta is the durable state of one transactional id.
type Meta struct {
	TransactionalID string           `json:"transactionalId"`
	ProducerID      int64            `json:"producerId"`
	ProducerEpoch   int16            `json:"producerEpoch"`
	TimeoutMs       int32            `json:"timeoutMs"`
	Status          Status           `json:"status"`
	Partitions      []TopicPartition `json:"partitions,omitempty"`
	Groups          []string         `json:"groups,omitempty"`
	StartMs         int64            `json:"startMs"`  // when the open transaction began
	UpdateMs        int64            `json:"updateMs"` // last change
	// Last is the producer id and epoch an InitProducerId presented when
	// it bumped them to the current ones (KIP-360). A retry of that
	// request, whose answer was lost, presents them again and is answered
	// with the current ones instead of being fenced. Nil when the current
	// pair came from anything else (a new instance, a timeout's abort).
	Last *ProducerIDEpoch `json:"last,omitempty"`
	// TxnSeq numbers the id's transactions: it rises by one each time one
	// is prepared, and that transaction's markers carry it, so a
	// partition can tell a late copy of an earlier transaction's marker
	// from the marker of the transaction open there now.
	TxnSeq int64 `json:"txnSeq,omitempty"`
}

// ProducerIDEpoch is a producer id and epoch.
type ProducerIDEpoch struct {
	ProducerID    int64 `json:"producerId"`
	ProducerEpoch int16 `json:"producerEpoch"`
}

func (m *Meta) clone() *Meta {
	c := *m
	c.Partitions = append([]TopicPartition(nil), m.Partitions...)
	c.Groups = append([]string(nil), m.Groups...)
	if m.Last != nil {
		last := *m.Last
		c.Last = &last
	}
	return &c
}

// Config holds the coordinator's limits.
type Config struct {
	MaxTimeoutMs        int64 // transaction.max.timeout.ms
	IDExpirationMs      int64 // transactional.id.expiration.ms
	AbortTimedOutAfter  int64 // grace past the timeout before aborting, ms
	MaxPartitionsPerTxn int
	// SettleWaitMs bounds how long AddPartitions and End wait for the
	// previous transaction of their id to complete before they are
	// answered CONCURRENT_TRANSACTIONS (retriable). Completing takes a
	// marker write and an fsync; waiting that long spares the client a
	// retry backoff, while the bound keeps failing marker writes from
	// holding the request. 0 answers at once.
	SettleWaitMs int64
}

// ErrClosed answers every request once the coordinator is closed;
// clients look for the coordinator again.
var ErrClosed = kerr.NotCoordinator

// ErrOutcomeUnknown wraps the error of a state append that failed after
// its record may have reached the log (it was written but not made
// durable): the driver reports such failures with it, and the
// coordinator then trusts nothing of the id but a reload.
var ErrOutcomeUnknown = errors.New("txn: the record may be in the log")

func preparing(s Status) bool { return s == PrepareCommit || s == PrepareAbort }

func containsTP(tps []TopicPartition, tp TopicPartition) bool {
	for _, x := range tps {
		if x == tp {
			return true
		}
	}
	return false
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func sortTPs(tps []TopicPartition) {
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition < tps[j].Partition
	})
}
