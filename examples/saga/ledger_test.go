package saga

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// memStore is a state store held in a map: the Process functions are
// pure over their store, so their rules are checked here without a
// broker; the kill test runs them in transactions.
type memStore map[string][]byte

func (s memStore) Get(k []byte) ([]byte, error) { return s[string(k)], nil }
func (s memStore) Put(k, v []byte) error        { s[string(k)] = append([]byte{}, v...); return nil }
func (s memStore) Delete(k []byte) error        { delete(s, string(k)); return nil }

func replies(t *testing.T, outs []*kgo.Record) (types []string, levels []string) {
	t.Helper()
	for _, r := range outs {
		if r.Topic == OrdersTopic {
			m, err := Decode(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			types = append(types, m.Type)
		} else {
			levels = append(levels, string(r.Key)+"="+string(r.Value))
		}
	}
	return types, levels
}

// TestLedgerTakesOncePerOrderAndGivesBackOnlyWhatWasTaken checks the
// inventory's idempotency: a repeated reservation and a repeated or
// unfounded release change no stock (the unfounded one is answered, the
// repeated ones were answered the first time), and a release gives back
// the quantity reserved, whatever the command says.
func TestLedgerTakesOncePerOrderAndGivesBackOnlyWhatWasTaken(t *testing.T) {
	store, process := memStore{}, Inventory()
	steps := []struct {
		msg    Message
		reply  string
		levels string
	}{
		{Message{Type: ReserveStock, Order: "a", Item: "x", Quantity: 40}, StockReserved, "x=20"},
		{Message{Type: ReserveStock, Order: "a", Item: "x", Quantity: 40}, "", ""},
		{Message{Type: ReserveStock, Order: "b", Item: "x", Quantity: 21}, StockRejected, ""},
		{Message{Type: ReleaseStock, Order: "b", Item: "x", Quantity: 21}, StockReleased, ""},
		{Message{Type: ReleaseStock, Order: "c", Item: "x", Quantity: 5}, StockReleased, ""},
		{Message{Type: ReleaseStock, Order: "a", Item: "x", Quantity: 1}, StockReleased, "x=60"},
		{Message{Type: ReleaseStock, Order: "a", Item: "x", Quantity: 40}, "", ""},
		{Message{Type: ReserveStock, Order: "a", Item: "x", Quantity: 40}, "", ""},
	}
	for i, s := range steps {
		outs, err := process(context.Background(), &kgo.Record{Value: s.msg.Encode()}, store)
		if err != nil {
			t.Fatal(err)
		}
		types, levels := replies(t, outs)
		if got := join(types); got != s.reply || join(levels) != s.levels {
			t.Fatalf("step %d %+v: replies %v, levels %v; want %q, %q", i, s.msg, types, levels, s.reply, s.levels)
		}
	}
}

func join(ss []string) string { return strings.Join(ss, ",") }
