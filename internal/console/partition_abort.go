package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// partitionAbortPage confirms the abort of a transaction at one
// partition.
type partitionAbortPage struct {
	Topic       string
	Partition   int32
	StartOffset int64
	ProducerID  int64
	Epoch       int16
}

// partitionAbort ends a hanging transaction at one partition as Kafka's
// kafka-transactions.sh abort and `weir txn abort` do (KIP-664): it finds
// the producer whose open transaction there starts at the given offset
// and writes an ABORT marker for it with WriteTxnMarkers, which moves the
// partition's last stable offset past it. The broker checks
// ClusterAction on the cluster, as for any WriteTxnMarkers. The first
// POST shows what will be aborted, a POST with confirm=yes does it.
//
// It is only for a transaction its coordinator no longer holds. One the
// coordinator holds (Ongoing, or PrepareCommit/PrepareAbort: decided, its
// markers on their way) is refused: an ABORT marker at one partition
// would split it (the producer's commit then lands on the others) or
// undo a commit the producer has been told succeeded. The transactions
// page aborts such a one at every partition at once. The coordinators
// are asked first and the partition second: a coordinator writes a
// transaction's Complete record only after its markers are durable, so a
// transaction still open at the partition after its coordinator has let
// go of it is one no marker of the coordinator will end.
func (c *Console) partitionAbort(ctx context.Context, s *session, r *http.Request) (view, error) {
	if err := r.ParseForm(); err != nil {
		return view{}, badRequestf("%v", err)
	}
	topic := r.PostForm.Get("topic")
	partition, err1 := strconv.ParseInt(r.PostForm.Get("partition"), 10, 32)
	start, err2 := strconv.ParseInt(r.PostForm.Get("start_offset"), 10, 64)
	if topic == "" || err1 != nil || err2 != nil || partition < 0 || start < 0 {
		return view{}, badRequestf("a topic, partition and start offset are required")
	}
	// The broker checks WriteTxnMarkers too, but for the console's own
	// connection; this checks it for the browser's host.
	if err := c.allowed(s, r, kmsg.ACLOperationClusterAction, kmsg.ACLResourceTypeCluster, "kafka-cluster"); err != nil {
		return view{}, fmt.Errorf("%s may not write transaction markers: it needs ClusterAction on the Cluster: %w", s.principal(), err)
	}
	target, err := openAt(ctx, s.adm, topic, int32(partition), start)
	if err != nil {
		return view{}, err
	}
	if err := notHeld(ctx, s.adm, target.ProducerID); err != nil {
		return view{}, err
	}
	// Again after the coordinators answered: the transaction seen at
	// first may have ended since, its markers landing in between.
	if target, err = openAt(ctx, s.adm, topic, int32(partition), start); err != nil {
		return view{}, err
	}
	if r.PostForm.Get("confirm") != "yes" {
		return view{name: "partabort", title: fmt.Sprintf("Abort at %s-%d", topic, partition), data: partitionAbortPage{
			Topic: topic, Partition: int32(partition), StartOffset: start, ProducerID: target.ProducerID, Epoch: target.ProducerEpoch}}, nil
	}
	resp, err := s.adm.WriteTxnMarkers(ctx, kadm.TxnMarkers{
		ProducerID: target.ProducerID, ProducerEpoch: target.ProducerEpoch, Commit: false,
		CoordinatorEpoch: target.CoordinatorEpoch, Topics: kadm.TopicsSet{topic: {int32(partition): {}}},
	})
	if err != nil {
		return view{}, err
	}
	var failure error
	resp.EachPartition(func(p kadm.TxnMarkersPartitionResponse) {
		if p.Err != nil {
			failure = fmt.Errorf("abort at %s-%d: %w", p.Topic, p.Partition, p.Err)
		}
	})
	if failure != nil {
		return view{}, failure
	}
	return view{redirect: "/topic?name=" + url.QueryEscape(topic) + "&aborted=" + strconv.FormatInt(start, 10)}, nil
}

// openAt finds the producer whose transaction is open at the partition
// since offset start.
func openAt(ctx context.Context, adm *kadm.Client, topic string, partition int32, start int64) (*kadm.DescribedProducer, error) {
	described, err := adm.DescribeProducers(ctx, kadm.TopicsSet{topic: {partition: {}}})
	if err != nil {
		return nil, err
	}
	var target *kadm.DescribedProducer
	described.EachProducer(func(p kadm.DescribedProducer) {
		if p.Partition == partition && p.CurrentTxnStartOffset == start {
			target = &p
		}
	})
	if target == nil {
		return nil, badRequestf("no open transaction starts at offset %d of %s-%d", start, topic, partition)
	}
	return target, nil
}

// errHeld is a partition abort of a transaction its coordinator holds.
var errHeld = errors.New("its coordinator holds it: it is not hanging")

// notHeld asks every transaction coordinator (ListTransactions filtered
// by producer id, KIP-664) whether it holds producer pid's transaction,
// under any epoch: an abort at a bumped epoch, in PrepareAbort, still
// ends the partition's transaction with the coordinator's own markers.
// Any coordinator that does not answer refuses the abort: nothing says
// the transaction is hanging.
//
// The listing shows the transactional ids the user may Describe. A user
// who may write markers (ClusterAction) but not describe the id is not
// stopped here, but could write the same marker with any Kafka client:
// this check keeps an operator from ending the wrong transaction, it is
// not an access control.
func notHeld(ctx context.Context, adm *kadm.Client, pid int64) error {
	listed, err := adm.ListTransactions(ctx, []int64{pid}, openStates)
	if err != nil {
		return fmt.Errorf("not every transaction coordinator answered whether it holds producer %d's transaction, so nothing was aborted: %w", pid, err)
	}
	for id, t := range listed {
		if t.ProducerID == pid && isOpen(t.State) {
			return fmt.Errorf("producer %d's transaction is %s at node %d, the coordinator of %q, which ends it at every partition itself; only a hanging transaction, one no coordinator holds, is aborted here (abort this one on the transactions page): %w", pid, t.State, t.Coordinator, id, errHeld)
		}
	}
	return nil
}
