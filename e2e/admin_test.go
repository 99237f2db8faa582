package e2e

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// The topic lifecycle through kadm: create, list, describe, grow, alter
// configs, delete; each failure with the Kafka error a client expects.
func TestTopicAdministrationWithKafkaErrors(t *testing.T) {
	b, dir := startBroker(t, nil)
	adm := newAdmin(t, b.Addr())
	ctx := testCtx(t)
	retention := "3600000"
	createTopic(t, adm, "events", 2, map[string]*string{"retention.ms": &retention})

	resp, err := adm.CreateTopics(ctx, 1, 1, nil, "events")
	if err != nil || !errors.Is(resp["events"].Err, kerr.TopicAlreadyExists) {
		t.Fatalf("second create: %v %v", err, resp["events"].Err)
	}
	resp, _ = adm.CreateTopics(ctx, 1, 3, nil, "replicated")
	if !errors.Is(resp["replicated"].Err, kerr.InvalidReplicationFactor) {
		t.Fatalf("replication factor 3: %v", resp["replicated"].Err)
	}
	resp, _ = adm.CreateTopics(ctx, 1, 1, nil, "bad/name")
	if !errors.Is(resp["bad/name"].Err, kerr.InvalidTopicException) {
		t.Fatalf("bad name: %v", resp["bad/name"].Err)
	}
	bogus := "x"
	resp, _ = adm.CreateTopics(ctx, 1, 1, map[string]*string{"retention.ms": &bogus}, "badconfig")
	if !errors.Is(resp["badconfig"].Err, kerr.InvalidConfig) {
		t.Fatalf("bad config: %v", resp["badconfig"].Err)
	}

	td, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !td.Has("events") || td.Has("replicated") || len(td["events"].Partitions) != 2 {
		t.Fatalf("topics: %v", td.Names())
	}

	if _, err := adm.UpdatePartitions(ctx, 5, "events"); err != nil {
		t.Fatal(err)
	}
	cp, _ := adm.UpdatePartitions(ctx, 3, "events")
	if !errors.Is(cp["events"].Err, kerr.InvalidPartitions) {
		t.Fatalf("shrinking partitions: %v", cp["events"].Err)
	}

	rc, err := adm.DescribeTopicConfigs(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	c, err := rc.On("events", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]kadm.Config{}
	for _, cfg := range c.Configs {
		got[cfg.Key] = cfg
	}
	if v := got["retention.ms"]; v.MaybeValue() != "3600000" || v.Source.String() != "DYNAMIC_TOPIC_CONFIG" {
		t.Fatalf("retention.ms: %+v", v)
	}
	if v := got["cleanup.policy"]; v.MaybeValue() != "delete" || v.Source.String() != "DEFAULT_CONFIG" {
		t.Fatalf("cleanup.policy: %+v", v)
	}

	alter, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "segment.bytes", Value: &bogus},
	}, "events")
	if err != nil || alter[0].Err == nil {
		t.Fatalf("invalid segment.bytes accepted: %v %v", err, alter)
	}
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.DeleteConfig, Name: "retention.ms"},
		{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: kmsgString("compact")},
	}, "events"); err != nil {
		t.Fatal(err)
	}

	// Topic metadata is a log replayed at start: a restart shows the same.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = startBrokerIn(t, dir, nil)
	adm = newAdmin(t, b.Addr())
	rc, err = adm.DescribeTopicConfigs(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	c, _ = rc.On("events", nil)
	for _, cfg := range c.Configs {
		if cfg.Key == "retention.ms" && cfg.Source.String() != "DEFAULT_CONFIG" {
			t.Fatalf("retention.ms override survived its deletion: %+v", cfg)
		}
		if cfg.Key == "cleanup.policy" && cfg.MaybeValue() != "delete,compact" {
			t.Fatalf("cleanup.policy after append: %q", cfg.MaybeValue())
		}
	}
	td, _ = adm.ListTopics(ctx, "events")
	if len(td["events"].Partitions) != 5 {
		t.Fatalf("partitions after restart: %d", len(td["events"].Partitions))
	}

	dr, err := adm.DeleteTopics(ctx, "events", "missing")
	if err != nil {
		t.Fatal(err)
	}
	if dr["events"].Err != nil || !errors.Is(dr["missing"].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("delete: %v / %v", dr["events"].Err, dr["missing"].Err)
	}
	td, _ = adm.ListTopics(ctx)
	if td.Has("events") {
		t.Fatal("deleted topic still listed")
	}
}

func kmsgString(s string) *string { return &s }
