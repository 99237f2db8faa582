package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// A partition answered with an error in a Fetch before v12 (records are
// a nullable int32-sized field there) still carries an empty record set,
// never a null one: librdkafka cannot parse a null set, drops the whole
// response without reading the error, and so never learns it must look
// for the partition's new leader.
func TestFetchErrorPartitionsCarryAnEmptyRecordSetNotANullOne(t *testing.T) {
	_, addr := serveBroker(t, nil)
	cl := dialBroker(t, addr, kgo.MaxVersions(kversion.V2_6_0())) // Fetch v11
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "errs"); err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxBytes = -1, 1<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "errs"
	for _, c := range []struct {
		partition, epoch int32
	}{
		{partition: 7, epoch: -1}, // no such partition
		{partition: 0, epoch: 99}, // an epoch the leader has not reached
	} {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.PartitionMaxBytes = c.partition, c.epoch, 1<<20
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	kresp, err := cl.Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	resp := kresp.(*kmsg.FetchResponse)
	if resp.Version != 11 {
		t.Fatalf("answered with Fetch v%d; the test needs v11", resp.Version)
	}
	want := []error{kerr.UnknownTopicOrPartition, kerr.UnknownLeaderEpoch}
	for i, p := range resp.Topics[0].Partitions {
		if err := kerr.ErrorForCode(p.ErrorCode); err != want[i] {
			t.Fatalf("partition %d: %v, want %v", p.Partition, err, want[i])
		}
		if p.RecordBatches == nil {
			t.Fatalf("partition %d (%v): a null record set", p.Partition, want[i])
		}
	}
}
