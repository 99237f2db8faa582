package saga

import (
	"slices"
	"strconv"

	"github.com/weir-broker/weir/pkg/eos"
)

// Order statuses. Completed and Cancelled are terminal: an order enters
// one of them once and never leaves it.
const (
	AwaitingStock   = "AwaitingStock"
	AwaitingPayment = "AwaitingPayment"
	Completed       = "Completed"
	Cancelled       = "Cancelled"
)

// Why an order was cancelled.
const (
	OutOfStock    = "out-of-stock"
	PaymentDenied = "payment-failed"
	TimedOut      = "timeout"
	Invalid       = "invalid"    // refused at placement, followed by why
	Overloaded    = "overloaded" // refused at placement: too many orders fall due with it
)

// Progress of a step with the other services, as the order service knows it.
const (
	Requested       = "requested"    // command sent, no reply yet
	Reserved        = "reserved"     // stock held for the order
	Rejected        = "rejected"     // not enough stock
	ReleaseSent     = "release-sent" // compensation sent, no reply yet
	Released        = "released"     // compensation applied
	Charged         = "charged"      // customer charged
	Declined        = "declined"     // not enough balance
	RefundSent      = "refund-sent"  // compensation sent, no reply yet
	RefundConfirmed = "refunded"     // compensation applied
)

// Order is the order service's state machine for one order.
type Order struct {
	ID         string `json:"id"`
	Customer   string `json:"customer"`
	Item       string `json:"item"`
	Quantity   int64  `json:"quantity"`
	Amount     int64  `json:"amount"`
	DeadlineMs int64  `json:"deadline_ms"` // event time past which a non-terminal order is cancelled
	Status     string `json:"status"`
	Reason     string `json:"reason,omitempty"`  // why Cancelled
	Stock      string `json:"stock,omitempty"`   // the inventory step
	Payment    string `json:"payment,omitempty"` // the payment step
}

// Terminal reports whether o is Completed or Cancelled.
func (o *Order) Terminal() bool { return o.Status == Completed || o.Status == Cancelled }

// Settled reports whether o is terminal and no command it sent awaits a
// reply: nothing the saga did for it is left to compensate.
func (o *Order) Settled() bool {
	return o.Terminal() && !slices.Contains([]string{Requested, ReleaseSent}, o.Stock) &&
		!slices.Contains([]string{Requested, RefundSent}, o.Payment)
}

// Place starts the saga of a new order: reserve the stock first. An
// order the inventory or payment service could not serve — no item or
// customer, or one too long for a ledger key — is cancelled at once as
// Invalid, with no command sent: nothing is left to settle.
func Place(m Message, deadlineMs int64) (*Order, []Message) {
	o := &Order{ID: m.Order, Customer: m.Customer, Item: m.Item, Quantity: m.Quantity, Amount: m.Amount,
		DeadlineMs: deadlineMs, Status: AwaitingStock, Stock: Requested}
	if why := invalid(m); why != "" {
		o.Status, o.Reason, o.Stock = Cancelled, Invalid+": "+why, ""
		if len(o.Item) > MaxNameBytes || len(o.Customer) > MaxNameBytes {
			// Not kept: the refusal's records stay small.
			o.Item, o.Customer = "", ""
		}
		return o, nil
	}
	return o, []Message{o.command(ReserveStock)}
}

// MaxNameBytes bounds an order's item and customer names. It keeps them
// within a ledger's keys and keeps every record an order causes — its
// stored state, its state changes, its commands and their replies — far
// below the largest record a producer may send (1 MB by default) even
// when JSON escapes every byte of a name as six.
const MaxNameBytes = 1024

// The ledgers key a level by "level/" and the name.
var _ = [eos.MaxKeyBytes - MaxNameBytes - len(ledgerLevelPrefix)]struct{}{}

// invalid says why a placement cannot be served, or "" if it can.
func invalid(m Message) string {
	switch {
	case m.Item == "":
		return "no item"
	case m.Customer == "":
		return "no customer"
	case len(m.Item) > MaxNameBytes:
		return "item name over " + strconv.Itoa(MaxNameBytes) + " bytes"
	case len(m.Customer) > MaxNameBytes:
		return "customer name over " + strconv.Itoa(MaxNameBytes) + " bytes"
	}
	return ""
}

func (o *Order) command(typ string) Message {
	return Message{Type: typ, Order: o.ID, Customer: o.Customer, Item: o.Item, Quantity: o.Quantity, Amount: o.Amount}
}

// Step applies a reply to the order and returns the commands it sends.
// Each reply is expected once, in the state that sent its command; any
// other (a duplicate, or one the order did not ask for) changes nothing.
// A reply reporting a success after the order became terminal — the
// stock reserved or the customer charged after a timeout — is
// compensated at once, and the order stays in its terminal state.
func (o *Order) Step(m Message) []Message {
	switch m.Type {
	case StockReserved:
		if o.Stock != Requested {
			return nil
		}
		o.Stock = Reserved
		if o.Status == AwaitingStock {
			o.Status, o.Payment = AwaitingPayment, Requested
			return []Message{o.command(Charge)}
		}
		o.Stock = ReleaseSent // late: the order was cancelled meanwhile
		return []Message{o.command(ReleaseStock)}
	case StockRejected:
		if o.Stock != Requested {
			return nil
		}
		o.Stock = Rejected
		if o.Status == AwaitingStock {
			o.cancel(OutOfStock)
		}
	case StockReleased:
		if o.Stock == ReleaseSent {
			o.Stock = Released
		}
	case PaymentSucceeded:
		if o.Payment != Requested {
			return nil
		}
		o.Payment = Charged
		if o.Status == AwaitingPayment {
			o.Status = Completed
			return nil
		}
		o.Payment = RefundSent // late: the order was cancelled meanwhile
		return []Message{o.command(Refund)}
	case PaymentFailed:
		if o.Payment != Requested {
			return nil
		}
		o.Payment = Declined
		if o.Status == AwaitingPayment {
			return o.cancel(PaymentDenied)
		}
	case Refunded:
		if o.Payment == RefundSent {
			o.Payment = RefundConfirmed
		}
	}
	return nil
}

// Expire cancels a non-terminal order whose deadline event time nowMs
// has reached, compensating what is known to be done; a step still
// awaiting its reply is compensated when the reply comes (Step).
func (o *Order) Expire(nowMs int64) []Message {
	if o.Terminal() || nowMs < o.DeadlineMs {
		return nil
	}
	return o.cancel(TimedOut)
}

// cancel makes the order Cancelled and releases stock it holds. A charge
// is never known to be done in a non-terminal order: a successful charge
// completes it.
func (o *Order) cancel(reason string) []Message {
	o.Status, o.Reason = Cancelled, reason
	if o.Stock == Reserved {
		o.Stock = ReleaseSent
		return []Message{o.command(ReleaseStock)}
	}
	return nil
}
