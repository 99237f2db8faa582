package e2e

import (
	"net/url"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// An offset reset to a time before 1970 is bad input: Kafka's consumer
// refuses a negative target time for offsetsForTimes, so
// kafka-consumer-groups --reset-offsets --to-datetime cannot do it. Two
// such times are also ListOffsets' special timestamps (-1 is "latest",
// -2 "earliest"), so passing them on would reset a group to the end of
// the log when the user asked for a time before every record. The correct
// outcome: an error page and the group's committed offset
// unchanged.
func TestConsoleResetToATimeBefore1970IsRefusedAndChangesNoOffset(t *testing.T) {
	addr, admin := startConsoleBroker(t)
	ctx := testCtx(t)
	adm := newAdmin(t, addr)
	const topic, group = "pre-epoch", "pre-epoch-group"
	createTopic(t, adm, topic, 1, nil)
	prod := newClient(t, addr, kgo.DefaultProduceTopic(topic))
	for range 5 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("r")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	offsets := kadm.Offsets{}
	offsets.Add(kadm.Offset{Topic: topic, Partition: 0, At: 1, LeaderEpoch: -1})
	if resp, err := adm.CommitOffsets(ctx, group, offsets); err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}
	for _, at := range []string{"1969-12-31T23:59:59.999Z", "1969-07-20T20:17:40Z"} {
		form := url.Values{"name": {group}, "topic": {topic}, "to": {"timestamp"}, "at": {at}, "confirm": {"yes"}}
		code, body := consolePost(t, admin, "/group/reset", form, nil)
		fetched, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := fetched.Lookup(topic, 0)
		if code < 400 {
			t.Errorf("reset of %s to %s answered %d, want an error page (a time before 1970):\n%s", group, at, code, body)
		}
		if got.At != 1 {
			t.Errorf("after the reset to %s the committed offset is %d, want 1 (unchanged)", at, got.At)
			offsets := kadm.Offsets{}
			offsets.Add(kadm.Offset{Topic: topic, Partition: 0, At: 1, LeaderEpoch: -1})
			if _, err := adm.CommitOffsets(ctx, group, offsets); err != nil {
				t.Fatal(err)
			}
		}
	}
}
