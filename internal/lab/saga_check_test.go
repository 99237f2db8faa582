package lab

import (
	"testing"

	"github.com/weir-broker/weir/examples/saga"
)

// sagaOrder is an order of one apple for 10 by ada in status st.
func sagaOrder(id, st, reason string) saga.Order {
	return saga.Order{ID: id, Customer: "ada", Item: "apple", Quantity: 1, Amount: 10, Status: st, Reason: reason}
}

func sagaMsgs(order string, types ...string) []saga.Message {
	var out []saga.Message
	for _, t := range types {
		out = append(out, saga.Message{Type: t, Order: order, Customer: "ada", Item: "apple", Quantity: 1, Amount: 10})
	}
	return out
}

// A correct history of three orders — one completed, one cancelled for
// payment (its stock released), one timed out and charged late (its
// stock released and its charge refunded) — counts nothing; each way of
// breaking the saga is counted: an order with two terminal states, one
// that left its terminal state, a double refund, a compensation never
// applied or sent when none was due, a stock that does not match the
// completed orders.
func TestSagaCheckerCountsBrokenSagas(t *testing.T) {
	placed := map[string]saga.Message{}
	for _, id := range []string{"a", "b", "c"} {
		placed[id] = saga.Message{Type: saga.OrderPlaced, Order: id, Customer: "ada", Item: "apple", Quantity: 1, Amount: 10}
	}
	change := func(id, entered, st, reason string) saga.StateChange {
		return saga.StateChange{Entered: entered, Order: sagaOrder(id, st, reason)}
	}
	good := func() *SagaHistory {
		var msgs []saga.Message
		msgs = append(msgs, sagaMsgs("a", saga.ReserveStock, saga.StockReserved, saga.Charge, saga.PaymentSucceeded)...)
		msgs = append(msgs, sagaMsgs("b", saga.ReserveStock, saga.StockReserved, saga.Charge, saga.PaymentFailed, saga.ReleaseStock, saga.StockReleased)...)
		msgs = append(msgs, sagaMsgs("c", saga.ReserveStock, saga.StockReserved, saga.Charge, saga.ReleaseStock, saga.StockReleased,
			saga.PaymentSucceeded, saga.Refund, saga.Refunded)...)
		return &SagaHistory{Placed: placed, Acked: 3, Messages: msgs,
			States: []saga.StateChange{
				change("a", saga.AwaitingStock, saga.AwaitingStock, ""),
				change("b", saga.AwaitingStock, saga.AwaitingStock, ""),
				change("c", saga.AwaitingStock, saga.AwaitingStock, ""),
				change("a", saga.Completed, saga.Completed, ""),
				change("b", saga.Cancelled, saga.Cancelled, saga.PaymentDenied),
				change("c", saga.Cancelled, saga.Cancelled, saga.TimedOut),
				change("c", "", saga.Cancelled, saga.TimedOut), // the late charge, refunded
			},
			Stock:    map[string]int64{"apple": saga.InitialStock - 1},
			Balances: map[string]int64{"ada": saga.InitialBalance - 10},
		}
	}
	for _, tc := range []struct {
		name  string
		spoil func(h *SagaHistory)
		want  SagaResult
	}{
		{"correct", func(*SagaHistory) {}, SagaResult{}},
		{"two terminal states", func(h *SagaHistory) {
			h.States = append(h.States, change("b", saga.Cancelled, saga.Cancelled, saga.TimedOut))
		}, SagaResult{NotOneTerminal: 1}},
		{"no terminal state", func(h *SagaHistory) {
			h.States = h.States[:len(h.States)-2] // c never cancelled
		}, SagaResult{NotOneTerminal: 1}},
		// Its last state no longer Completed, a's reservation and charge
		// are owed back and the levels no longer match either.
		{"left a terminal state", func(h *SagaHistory) {
			h.States = append(h.States, change("a", "", saga.AwaitingPayment, ""))
		}, SagaResult{LeftTerminal: 1, WrongCompensations: 2, LevelMismatches: 2}},
		{"double refund", func(h *SagaHistory) {
			h.Messages = append(h.Messages, sagaMsgs("c", saga.Refund, saga.Refunded)...)
		}, SagaResult{WrongCompensations: 1}},
		{"release never applied", func(h *SagaHistory) {
			for i, m := range h.Messages {
				if m.Order == "b" && m.Type == saga.StockReleased {
					h.Messages = append(h.Messages[:i:i], h.Messages[i+1:]...)
					break
				}
			}
		}, SagaResult{WrongCompensations: 1}},
		{"refund of a completed order", func(h *SagaHistory) {
			h.Messages = append(h.Messages, sagaMsgs("a", saga.Refund, saga.Refunded)...)
		}, SagaResult{WrongCompensations: 1}},
		{"stock off by one", func(h *SagaHistory) {
			h.Stock["apple"]--
		}, SagaResult{LevelMismatches: 1}},
		{"a state for an order never placed", func(h *SagaHistory) {
			h.States = append(h.States, change("z", saga.AwaitingStock, saga.AwaitingStock, ""))
		}, SagaResult{NotOneTerminal: 1}},
	} {
		h := good()
		tc.spoil(h)
		got := CheckSaga(h)
		got.Completed, got.Cancelled, got.Releases, got.Refunds = 0, 0, 0, 0
		if got != tc.want {
			t.Errorf("%s: counted %+v, want %+v", tc.name, got, tc.want)
		}
	}
	// The counts break the row's exactly-once claim.
	h := good()
	h.States = append(h.States, change("b", saga.Cancelled, saga.Cancelled, saga.TimedOut))
	h.Messages = append(h.Messages, sagaMsgs("c", saga.Refund, saga.Refunded)...)
	r := Check(History{Sent: 3, Saga: h})
	if v := r.Violations(ExactlyOnce); len(v) != 2 {
		t.Errorf("two terminal states and a double refund: violations %q, want two", v)
	}
	if r := CheckSaga(good()); r.Completed != 1 || r.Cancelled != 2 || r.Releases != 2 || r.Refunds != 1 {
		t.Errorf("correct history: %+v, want 1 completed, 2 cancelled, 2 releases, 1 refund", r)
	}
}
