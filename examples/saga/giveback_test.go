package saga

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/pkg/eos"
)

// TestLedgerGivesBackNothingToAResourceTheOrderDidNotTakeFrom checks the
// ledger's rule "give back what was taken, whatever the command says"
// for the resource as well as the amount: a release (a refund) of an
// order that names another item (customer) than its reservation (its
// charge) must leave that other item's stock (balance) as it was. The
// ledger takes the amount from the order's entry but credits the level
// of whatever key the command names: the other item gains stock nothing
// took from it, and the order's entry is marked given back.
func TestLedgerGivesBackNothingToAResourceTheOrderDidNotTakeFrom(t *testing.T) {
	for _, c := range []struct {
		name       string
		process    eos.Process
		take, give Message
		initial    string
	}{
		{"inventory", Inventory(), Message{Type: ReserveStock, Order: "a", Item: "x", Quantity: 40},
			Message{Type: ReleaseStock, Order: "a", Item: "y", Quantity: 40}, "y=60"},
		{"payment", Payment(), Message{Type: Charge, Order: "a", Customer: "x", Amount: 400},
			Message{Type: Refund, Order: "a", Customer: "y", Amount: 400}, "y=1000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			store := memStore{}
			for _, m := range []Message{c.take, c.give} {
				outs, err := c.process(context.Background(), &kgo.Record{Value: m.Encode()}, store)
				if err != nil {
					t.Fatal(err)
				}
				_, levels := replies(t, outs)
				for _, l := range levels {
					if l[0] == 'y' && l != c.initial {
						t.Errorf("after %s of order a naming y: %s, but a took nothing from y (want %s)", m.Type, l, c.initial)
					}
				}
			}
		})
	}
}
