package outbox

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// An event no Kafka cluster can accept would fail its batch at every
// attempt and stop the relay (see the package doc's Limits): Write
// refuses topic names Kafka refuses, and accepts the ones it allows.
func TestWriteRejectsTopicsKafkaRefuses(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	write := func(topic string) error {
		return pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
			_, err := Write(ctx, tx, Event{Topic: topic, Payload: []byte("x")})
			return err
		})
	}
	for _, topic := range []string{"a b", "orders/eu", ".", "..", "ordérs", strings.Repeat("t", 250), "t\n"} {
		if err := write(topic); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("topic %q: err = %v, want ErrInvalidEvent", topic, err)
		}
	}
	for _, topic := range []string{"orders", "orders.v2", "eu-orders_2", strings.Repeat("t", 249)} {
		if err := write(topic); err != nil {
			t.Errorf("topic %q: %v", topic, err)
		}
	}
}
