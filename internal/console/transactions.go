package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// openStates are the states of a transaction that holds read_committed
// consumers back: begun, or decided and not yet complete.
var openStates = []string{"Ongoing", "PrepareCommit", "PrepareAbort"}

// txnRow is one open transaction.
type txnRow struct {
	ID          string
	ProducerID  int64
	Epoch       int16
	StartMs     int64 // the coordinator's start of the transaction: with the producer id and epoch, it names it
	State       string
	AgeMs       int64
	TimeoutMs   int32
	Overdue     bool // open past its timeout: the coordinator should have aborted it
	Partitions  string
	Coordinator int32
	Err         string
}

type txnsPage struct {
	Rows   []txnRow
	Notice string
}

// transactions lists the open transactions of every coordinator, oldest
// first: the oldest is what holds a stuck read_committed consumer back.
func (c *Console) transactions(ctx context.Context, s *session, r *http.Request) (view, error) {
	listed, err := s.adm.ListTransactions(ctx, nil, openStates)
	if err != nil && !isShardErr(err) {
		return view{}, err
	}
	p := txnsPage{}
	if id := r.URL.Query().Get("aborted"); id != "" {
		p.Notice = fmt.Sprintf("Aborted the transaction of %q.", id)
	}
	ids := make([]string, 0, len(listed))
	for id := range listed {
		ids = append(ids, id)
	}
	if len(ids) > 0 {
		described, err := s.adm.DescribeTransactions(ctx, ids...)
		if err != nil && !isShardErr(err) {
			return view{}, err
		}
		now := time.Now().UnixMilli()
		for _, id := range ids {
			d, ok := described[id]
			row := txnRow{ID: id, ProducerID: listed[id].ProducerID, Epoch: -1, State: listed[id].State, Coordinator: listed[id].Coordinator}
			switch {
			case !ok:
				row.Err = "not described"
			case d.Err != nil:
				row.Err = d.Err.Error()
			default:
				if !isOpen(d.State) {
					continue // completed between the list and the describe
				}
				row.ProducerID, row.Epoch, row.State, row.TimeoutMs, row.StartMs = d.ProducerID, d.ProducerEpoch, d.State, d.TimeoutMillis, d.StartTimestamp
				if d.StartTimestamp > 0 {
					row.AgeMs = max(0, now-d.StartTimestamp)
					row.Overdue = row.AgeMs > int64(d.TimeoutMillis)
				}
				var parts []string
				for _, tp := range d.Topics.Sorted() {
					parts = append(parts, tp.Topic+":"+joinIDs(tp.Partitions))
				}
				row.Partitions = strings.Join(parts, " ")
			}
			p.Rows = append(p.Rows, row)
		}
	}
	sort.Slice(p.Rows, func(i, j int) bool {
		if p.Rows[i].AgeMs != p.Rows[j].AgeMs {
			return p.Rows[i].AgeMs > p.Rows[j].AgeMs
		}
		return p.Rows[i].ID < p.Rows[j].ID
	})
	return view{name: "transactions", title: "Open transactions", data: p}, nil
}

func isOpen(state string) bool {
	for _, s := range openStates {
		if s == state {
			return true
		}
	}
	return false
}

// abortPage confirms an abort.
type abortPage struct {
	ID         string
	ProducerID int64
	Epoch      int16
	StartMs    int64
	Started    string // StartMs in UTC
}

// errGone is an action on something that changed since the page that
// asked for it was shown.
var errGone = errors.New("no longer as the page showed it")

// abort aborts an open transaction through its coordinator, after a
// confirmation: the first POST shows what will happen, a POST with
// confirm=yes does it. The producer id, epoch and start name the
// transaction the operator saw: a producer keeps its id and epoch from
// one transaction to the next (KIP-98), so the start is what tells the
// transaction shown from a newer one of the same id, which is not
// aborted in its place. The coordinator compares them in the step that
// aborts, so nothing can begin in between.
func (c *Console) abort(ctx context.Context, s *session, r *http.Request) (view, error) {
	if err := r.ParseForm(); err != nil {
		return view{}, badRequestf("%v", err)
	}
	id := r.PostForm.Get("id")
	pid, err1 := strconv.ParseInt(r.PostForm.Get("producer_id"), 10, 64)
	epoch, err2 := strconv.ParseInt(r.PostForm.Get("epoch"), 10, 16)
	start, err3 := strconv.ParseInt(r.PostForm.Get("start"), 10, 64)
	if id == "" || err1 != nil || err2 != nil || err3 != nil || start < 0 {
		return view{}, badRequestf("a transactional id, producer id, epoch and start time (ms) are required")
	}
	coordinator, err := c.mayAbort(ctx, s, r, id)
	if err != nil {
		return view{}, err
	}
	if r.PostForm.Get("confirm") != "yes" {
		return view{name: "abort", title: "Abort transaction " + id, data: abortPage{ID: id, ProducerID: pid, Epoch: int16(epoch),
			StartMs: start, Started: time.UnixMilli(start).UTC().Format("2006-01-02 15:04:05.000")}}, nil
	}
	if err := c.cfg.Node.AbortTransaction(id, pid, int16(epoch), start); err != nil {
		switch {
		case errors.Is(err, kerr.NotCoordinator):
			return view{}, fmt.Errorf("node %d coordinates %q: abort it from that node's console, or end it at each partition from the topic pages (%w)", coordinator, id, err)
		case errors.Is(err, kerr.InvalidTxnState):
			return view{}, fmt.Errorf("the transaction of %q shown (producer %d, epoch %d, begun at %d ms) is no longer open: it ended, or the producer began another, which was left alone; reload the transactions page (%w: %w)", id, pid, epoch, start, errGone, err)
		}
		return view{}, err
	}
	return view{redirect: "/transactions?aborted=" + url.QueryEscape(id)}, nil
}

// errDenied is an action the user's ACLs do not allow.
var errDenied = errors.New("not allowed by the ACLs")

// mayAbort checks that the user may see the transactional id (its
// describe goes through the broker's ACLs like any client's) and may
// write it: Write on the TransactionalId is what its producer needs to
// end the transaction, or to fence it with a new InitProducerId, and
// Kafka lets no other operation be granted on one. The abort runs
// in-process, so this check is made here, for the browser's host, with or
// without a login (see allowed).
// It returns the node that coordinates id.
func (c *Console) mayAbort(ctx context.Context, s *session, r *http.Request, id string) (int32, error) {
	if err := c.allowed(s, r, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, id); err != nil {
		return -1, fmt.Errorf("%s may not abort %q: it needs Write on the TransactionalId: %w", s.principal(), id, err)
	}
	described, err := s.adm.DescribeTransactions(ctx, id)
	if err != nil {
		return -1, err
	}
	d, ok := described[id]
	switch {
	case !ok:
		return -1, badRequestf("transactional id %q is not in the response", id)
	case d.Err != nil:
		return -1, d.Err
	}
	return d.Coordinator, nil
}
