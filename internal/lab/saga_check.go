package lab

import (
	"github.com/weir-broker/weir/examples/saga"
)

// SagaHistory is what the saga row read back, read_committed, from the
// saga's topics.
type SagaHistory struct {
	// Placed are the orders placed: acknowledged to the client, or read
	// back from the orders topic.
	Placed map[string]saga.Message
	// Acked counts the placements the client was told are stored.
	Acked int
	// States are the order service's state changes in log order (an
	// order's changes share a partition, so each order's are in order).
	States []saga.StateChange
	// Messages are the commands and replies of the three input topics,
	// ticks and placements left out.
	Messages []saga.Message
	// Stock and Balances are the last level per item and per customer in
	// the stock and balances topics; a key never written is at its
	// initial level.
	Stock, Balances map[string]int64
}

// SagaResult counts how a saga history breaks the saga's guarantees.
type SagaResult struct {
	// NotOneTerminal counts placed orders that did not enter exactly one
	// terminal state (none, or two or more), and orders with states that
	// were never placed.
	NotOneTerminal int `json:"ordersNotOneTerminal"`
	// LeftTerminal counts orders whose state changed status after a
	// terminal one.
	LeftTerminal int `json:"ordersLeftTerminal"`
	// WrongCompensations counts, per order and per compensation (release
	// of stock, refund of a charge), one where the compensation was sent
	// or applied other than exactly once when required — the order did
	// not complete but its stock was reserved, or it was charged — and
	// never otherwise.
	WrongCompensations int `json:"wrongCompensations"`
	// LevelMismatches counts items and customers whose last stock or
	// balance differs from its initial level minus what the completed
	// orders took.
	LevelMismatches int `json:"levelMismatches"`
	// Completed and Cancelled count the orders whose last state is
	// terminal; Releases and Refunds the compensations applied.
	Completed, Cancelled, Releases, Refunds int `json:"-"`
}

// CheckSaga measures a saga history.
func CheckSaga(h *SagaHistory) SagaResult {
	var r SagaResult
	last := map[string]saga.Order{}
	terminals, left := map[string]int{}, map[string]bool{}
	for _, sc := range h.States {
		o := sc.Order
		if prev, ok := last[o.ID]; ok && prev.Terminal() && o.Status != prev.Status {
			left[o.ID] = true
		}
		if sc.Entered == saga.Completed || sc.Entered == saga.Cancelled {
			terminals[o.ID]++
		}
		last[o.ID] = o
	}
	r.LeftTerminal = len(left)
	for id := range h.Placed {
		if terminals[id] != 1 {
			r.NotOneTerminal++
		}
	}
	for id := range last {
		if _, ok := h.Placed[id]; !ok {
			r.NotOneTerminal++
		}
	}
	count := map[string]map[string]int{}
	for _, m := range h.Messages {
		if count[m.Order] == nil {
			count[m.Order] = map[string]int{}
		}
		count[m.Order][m.Type]++
	}
	wantStock, wantBalance := map[string]int64{}, map[string]int64{}
	for id, p := range h.Placed {
		wantStock[p.Item], wantBalance[p.Customer] = saga.InitialStock, saga.InitialBalance
		o, c := last[id], count[id]
		switch o.Status {
		case saga.Completed:
			r.Completed++
		case saga.Cancelled:
			r.Cancelled++
		}
		completed := o.Status == saga.Completed
		r.Releases += c[saga.StockReleased]
		r.Refunds += c[saga.Refunded]
		for _, k := range []struct{ done, sent, applied string }{
			{saga.StockReserved, saga.ReleaseStock, saga.StockReleased},
			{saga.PaymentSucceeded, saga.Refund, saga.Refunded},
		} {
			want := 0
			if !completed && c[k.done] > 0 {
				want = 1
			}
			if c[k.sent] != want || c[k.applied] != want {
				r.WrongCompensations++
			}
		}
	}
	for id, o := range last {
		if _, ok := h.Placed[id]; ok && o.Status == saga.Completed {
			wantStock[o.Item] -= o.Quantity
			wantBalance[o.Customer] -= o.Amount
		}
	}
	r.LevelMismatches = levelMismatches(wantStock, h.Stock, saga.InitialStock) +
		levelMismatches(wantBalance, h.Balances, saga.InitialBalance)
	return r
}

// levelMismatches counts keys whose level got (initial when never
// written) differs from want, and keys got has that want has not.
func levelMismatches(want, got map[string]int64, initial int64) int {
	n := 0
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			g = initial
		}
		if g != w {
			n++
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			n++
		}
	}
	return n
}
