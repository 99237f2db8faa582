package outbox

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// The progress topic is the record of what was published: a batch record
// removed by time or size retention makes a relay that crashed before
// marking that batch sent publish it again. A relay refuses a progress
// topic that deletes records instead of only compacting them.
func TestRelayRefusesAProgressTopicThatDeletesRecords(t *testing.T) {
	for _, policy := range []string{"delete", "compact,delete"} {
		t.Run(policy, func(t *testing.T) {
			e := newEnv(t)
			ctx := testCtx(t)
			adm := kadm.NewClient(e.client())
			p := policy
			resp, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": &p}, DefaultProgressTopic)
			if err == nil {
				err = resp.Err
			}
			if err != nil {
				t.Fatal(err)
			}
			e.placeOrders(3)
			r, err := NewRelay(e.pool, e.config("r1", 5))
			if err != nil {
				t.Fatal(err)
			}
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- r.Run(runCtx) }()
			var runErr error
		wait:
			for {
				select {
				case runErr = <-done:
					break wait
				case <-ctx.Done():
					t.Fatal("relay neither failed nor published")
				case <-time.After(20 * time.Millisecond):
				}
				if s := e.states(ctx); s[StateSent] > 0 {
					cancel()
					<-done
					t.Fatalf("relay published on a progress topic with cleanup.policy=%s: rows %v", policy, s)
				}
			}
			cancel()
			if runErr == nil || !strings.Contains(runErr.Error(), "cleanup.policy") {
				t.Fatalf("Run returned %v, want an error naming cleanup.policy", runErr)
			}
			if s := e.states(ctx); s[StatePending] != 3 {
				t.Errorf("rows %v, want all 3 still pending", s)
			}
		})
	}
}
