package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// autoCreateConfig is the broker config that decides whether a producer's
// request for a missing topic creates it, as in Kafka.
const autoCreateConfig = "auto.create.topics.enable"

// missingTopicError is a produce that failed because its topic does not
// exist, said in words a user can act on. It still matches
// kerr.UnknownTopicOrPartition with errors.Is.
type missingTopicError struct {
	msg   string
	cause error
}

func (e *missingTopicError) Error() string { return e.msg }
func (e *missingTopicError) Unwrap() error { return e.cause }

// explainMissingTopic replaces err, when it says that topic does not exist,
// with one line that names what decided it: the producer asked for the
// topic to be created on first use, so the brokers' auto.create.topics.enable
// did. Any other error is returned unchanged.
func explainMissingTopic(ctx context.Context, cl *kgo.Client, topic string, err error) error {
	if !errors.Is(err, kerr.UnknownTopicOrPartition) {
		return err
	}
	create := fmt.Sprintf("create it with `weir topic create %s`", topic)
	var msg string
	switch enabled, known := brokersAutoCreate(ctx, cl); {
	case known && !enabled:
		msg = fmt.Sprintf("produce to %s: the topic does not exist and the broker does not create topics on first use (%s=false); %s",
			topic, autoCreateConfig, create)
	case known:
		msg = fmt.Sprintf("produce to %s: the topic does not exist and was not created although the broker has %s=true; %s",
			topic, autoCreateConfig, create)
	default:
		msg = fmt.Sprintf("produce to %s: the topic does not exist and was not created on first use (the broker's %s decides); %s",
			topic, autoCreateConfig, create)
	}
	return &missingTopicError{msg: msg, cause: err}
}

// brokersAutoCreate reads auto.create.topics.enable from every broker: it
// is enabled if any broker has it on, and known if at least one answered.
func brokersAutoCreate(ctx context.Context, cl *kgo.Client) (enabled, known bool) {
	// The produce may have failed because ctx ended; the question is
	// short and worth asking anyway.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	meta, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return false, false
	}
	configs, _ := adm.DescribeBrokerConfigs(ctx, meta.Brokers.NodeIDs()...)
	for _, rc := range configs {
		if rc.Err != nil {
			continue
		}
		for i := range rc.Configs {
			if c := &rc.Configs[i]; c.Key == autoCreateConfig {
				known = true
				enabled = enabled || c.MaybeValue() == "true"
			}
		}
	}
	return enabled, known
}
