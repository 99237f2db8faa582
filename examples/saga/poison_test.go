package saga_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-broker/weir/examples/saga"
)

// TestAPlacementOfAFifthOfTheRecordLimitDoesNotStopTheOrderService
// places an order whose customer name is 200,000 '<' characters, a
// 200 KB record that the broker accepts, and then ordinary orders on the
// same partition: they must be placed. The order service re-encodes the
// order as JSON into its store, its changelog and its state change, and
// Go's encoding/json writes each '<' as the six bytes \u003c: the
// records it must produce are 1.2 MB, over the largest record a
// producer may send, so the transaction fails, the worker exits, and
// every restart fails on the same record: the partition stops for good.
func TestAPlacementOfAFifthOfTheRecordLimitDoesNotStopTheOrderService(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	r := startRig(t, ctx, 1, time.Minute, "order")
	big := `{"type":"OrderPlaced","order":"big","customer":"` + strings.Repeat("<", 200_000) + `","item":"apple","quantity":1,"amount":10}`
	if err := r.cl.ProduceSync(ctx, &kgo.Record{Key: []byte("big"), Value: []byte(big)}).FirstErr(); err != nil {
		t.Fatalf("the broker refused the placement: %v", err)
	}
	ids := r.place(t, ctx, "after-", 0, 5)
	r.waitFor(t, ctx, 30*time.Second, "placed", ids, func(o saga.Order, ok bool) bool { return ok && o.Status == saga.AwaitingStock })
}
