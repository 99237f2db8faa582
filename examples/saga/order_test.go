package saga

import (
	"slices"
	"testing"
)

func types(ms []Message) []string {
	var ts []string
	for _, m := range ms {
		ts = append(ts, m.Type)
	}
	return ts
}

// TestOrderReachesOneTerminalStateAndCompensatesLateSuccessesOnce drives
// the order state machine through every path — completion, each failure,
// a timeout at each step, replies after a timeout and duplicated replies
// — and checks the commands it sends and that it ends settled in the
// terminal state it first entered.
func TestOrderReachesOneTerminalStateAndCompensatesLateSuccessesOnce(t *testing.T) {
	placed := Message{Type: OrderPlaced, Order: "o1", Customer: "c", Item: "i", Quantity: 2, Amount: 30}
	type step struct {
		msg     string // a reply type, or "expire"
		want    []string
		entered string // the status entered, if any
	}
	cases := []struct {
		name  string
		steps []step
		final string
	}{
		{"completes", []step{{StockReserved, []string{Charge}, AwaitingPayment}, {PaymentSucceeded, nil, Completed}}, Completed},
		{"out of stock", []step{{StockRejected, nil, Cancelled}}, Cancelled},
		{"payment failed releases the stock", []step{{StockReserved, []string{Charge}, AwaitingPayment},
			{PaymentFailed, []string{ReleaseStock}, Cancelled}, {StockReleased, nil, ""}}, Cancelled},
		{"timeout awaiting stock, late reservation released", []step{{"expire", nil, Cancelled},
			{StockReserved, []string{ReleaseStock}, ""}, {StockReleased, nil, ""}}, Cancelled},
		{"timeout awaiting stock, late rejection", []step{{"expire", nil, Cancelled}, {StockRejected, nil, ""}}, Cancelled},
		{"timeout awaiting payment, late charge refunded", []step{{StockReserved, []string{Charge}, AwaitingPayment},
			{"expire", []string{ReleaseStock}, Cancelled}, {PaymentSucceeded, []string{Refund}, ""},
			{StockReleased, nil, ""}, {Refunded, nil, ""}}, Cancelled},
		{"timeout awaiting payment, late decline", []step{{StockReserved, []string{Charge}, AwaitingPayment},
			{"expire", []string{ReleaseStock}, Cancelled}, {PaymentFailed, nil, ""}, {StockReleased, nil, ""}}, Cancelled},
		{"duplicated replies change nothing", []step{{StockReserved, []string{Charge}, AwaitingPayment},
			{StockReserved, nil, ""}, {PaymentSucceeded, nil, Completed}, {PaymentSucceeded, nil, ""},
			{PaymentFailed, nil, ""}, {StockReleased, nil, ""}, {Refunded, nil, ""}, {"expire", nil, ""}}, Completed},
		{"a completed order never times out", []step{{StockReserved, []string{Charge}, AwaitingPayment},
			{PaymentSucceeded, nil, Completed}, {"expire", nil, ""}}, Completed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, cmds := Place(placed, 100)
			if !slices.Equal(types(cmds), []string{ReserveStock}) || o.Status != AwaitingStock {
				t.Fatalf("placing: %v, status %s", types(cmds), o.Status)
			}
			for i, s := range c.steps {
				before := o.Status
				if s.msg == "expire" {
					if got := o.Expire(99); got != nil || o.Status != before {
						t.Fatalf("step %d: expired before the deadline: %v, %s", i, types(got), o.Status)
					}
					cmds = o.Expire(100)
				} else {
					cmds = o.Step(Message{Type: s.msg, Order: "o1"})
				}
				entered := ""
				if o.Status != before {
					entered = o.Status
				}
				if !slices.Equal(types(cmds), s.want) || entered != s.entered {
					t.Fatalf("step %d (%s): sent %v, entered %q; want %v, %q", i, s.msg, types(cmds), entered, s.want, s.entered)
				}
				for _, c := range cmds {
					if c.Item != "i" || c.Customer != "c" || c.Quantity != 2 || c.Amount != 30 {
						t.Fatalf("step %d: command %+v does not carry the order", i, c)
					}
				}
			}
			if o.Status != c.final || !o.Settled() {
				t.Fatalf("final %+v, want %s and settled", o, c.final)
			}
		})
	}
}
