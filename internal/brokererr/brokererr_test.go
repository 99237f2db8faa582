package brokererr

import (
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

func TestWithMessageSaysTheCodeOnceAndTheBrokersMessageOnce(t *testing.T) {
	wrapped := fmt.Errorf("create: %w", kerr.InvalidReplicationFactor)
	for _, tc := range []struct {
		name string
		err  error
		msg  string
		want string
	}{
		{"no message", kerr.TopicAlreadyExists, "",
			kerr.TopicAlreadyExists.Error()},
		{"Kafka's message replaces the description", kerr.TopicAlreadyExists, "Topic 'orders' already exists.",
			"TOPIC_ALREADY_EXISTS: Topic 'orders' already exists."},
		{"a message naming the code does not repeat it", kerr.TopicAlreadyExists, `TOPIC_ALREADY_EXISTS: topic "orders" already exists`,
			`TOPIC_ALREADY_EXISTS: topic "orders" already exists`},
		{"a message that is only the code adds nothing", kerr.TopicAlreadyExists, "TOPIC_ALREADY_EXISTS: ",
			kerr.TopicAlreadyExists.Error()},
		{"a message the error already says adds nothing", errors.New("topic orders: gone"), "gone",
			"topic orders: gone"},
		{"a wrapped code keeps its context", wrapped, "INVALID_REPLICATION_FACTOR: 3 > 1 brokers",
			"create: " + kerr.InvalidReplicationFactor.Error() + " (3 > 1 brokers)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := WithMessage(tc.err, tc.msg)
			if got.Error() != tc.want {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
			var code *kerr.Error
			if errors.As(tc.err, &code) && !errors.Is(got, code) {
				t.Fatalf("%v no longer matches %v", got, code)
			}
		})
	}
	if WithMessage(nil, "message without an error") != nil {
		t.Fatal("no error became an error")
	}
}
