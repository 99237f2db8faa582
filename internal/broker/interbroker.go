package broker

// Requests a node sends to the other brokers of its cluster, over the
// Kafka protocol as any client would: transaction markers to the leaders
// of the partitions a transaction wrote (WriteTxnMarkers), and the
// KIP-890 check of a transactional write to the transactional id's
// coordinator (AddPartitionsToTxn v4 with VerifyOnly). One franz-go
// client, seeded with the registered brokers, carries them; each request
// is addressed by node id, taken from this node's metadata image.

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/txn"
)

// peerRequestTimeout bounds one request to another broker; a marker
// write that times out is retried by the coordinator's ticker.
const peerRequestTimeout = 10 * time.Second

// peers returns the client for requests to other brokers, created on
// first use.
func (b *Broker) peers() (*kgo.Client, error) {
	b.peerMu.Lock()
	defer b.peerMu.Unlock()
	if b.peerClient != nil {
		return b.peerClient, nil
	}
	var seeds []string
	b.ctrl.View(func(im *metadata.Image) {
		for _, id := range im.BrokerIDs() {
			if id == b.cfg.NodeID {
				// Not itself: it may not serve yet (a coordinator's
				// recovery runs before the server starts).
				continue
			}
			br := im.Brokers[id]
			seeds = append(seeds, net.JoinHostPort(br.Host, strconv.Itoa(int(br.Port))))
		}
	})
	if len(seeds) == 0 {
		return nil, fmt.Errorf("no other broker is registered")
	}
	cl, err := kgo.NewClient(b.peerOpts(kgo.SeedBrokers(seeds...))...)
	if err != nil {
		return nil, err
	}
	b.peerClient = cl
	return cl, nil
}

// peerOpts are the options of every client this node opens to the others:
// it names itself, and speaks TLS when the inter-broker listener does.
func (b *Broker) peerOpts(extra ...kgo.Opt) []kgo.Opt {
	opts := []kgo.Opt{kgo.ClientID("weir-broker-" + strconv.Itoa(int(b.cfg.NodeID)))}
	if b.cfg.PeerDial != nil {
		opts = append(opts, kgo.Dialer(b.cfg.PeerDial))
	}
	if b.cfg.PeerSASL != nil {
		opts = append(opts, kgo.SASL(b.cfg.PeerSASL))
	}
	return append(opts, extra...)
}

// closePeers closes the client, if one was made.
func (b *Broker) closePeers() {
	b.peerMu.Lock()
	defer b.peerMu.Unlock()
	if b.peerClient != nil {
		b.peerClient.Close()
		b.peerClient = nil
	}
}

// peerRequest sends req to node and waits for its answer, for at most
// peerRequestTimeout or until stop is closed.
func (b *Broker) peerRequest(stop <-chan struct{}, node int32, req kmsg.Request) (kmsg.Response, error) {
	cl, err := b.peers()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), peerRequestTimeout)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	// Retried over a broken connection (the peer restarted) within the
	// deadline; an answer is never sent twice.
	return cl.Broker(int(node)).RetriableRequest(ctx, req)
}

// txnSeqTag is the tagged field of a WriteTxnMarkers marker (v1+) in
// which a Weir coordinator sends the transaction's number (txn.Meta
// TxnSeq), so the partition leader applies each transaction's marker once
// (partition.AppendTxnMarker). Kafka defines no such tag; a broker that
// does not know it ignores it, and a marker without it is applied as
// before.
const txnSeqTag = 10000

// markerSeq is the transaction number a marker carries, 0 when none.
func markerSeq(m *kmsg.WriteTxnMarkersRequestMarker) int64 {
	var seq int64
	m.UnknownTags.Each(func(key uint32, val []byte) {
		if key == txnSeqTag {
			if v, n := binary.Varint(val); n > 0 && v > 0 {
				seq = v
			}
		}
	})
	return seq
}

// sendMarkers writes the COMMIT or ABORT marker of transaction m to
// partitions tps, which node leads, and waits until node answers that
// every one is durable. A partition whose topic was deleted is skipped,
// as locally.
func (b *Broker) sendMarkers(stop <-chan struct{}, node int32, tm *txn.Meta, commit bool, coordEpoch int32, tps []txn.TopicPartition) error {
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch = tm.ProducerID, tm.ProducerEpoch, commit, coordEpoch
	if tm.TxnSeq > 0 {
		m.UnknownTags.Set(txnSeqTag, binary.AppendVarint(nil, tm.TxnSeq))
	}
	byTopic := map[string]int{}
	for _, tp := range tps {
		i, ok := byTopic[tp.Topic]
		if !ok {
			i = len(m.Topics)
			byTopic[tp.Topic] = i
			t := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
			t.Topic = tp.Topic
			m.Topics = append(m.Topics, t)
		}
		m.Topics[i].Partitions = append(m.Topics[i].Partitions, tp.Partition)
	}
	req.Markers = append(req.Markers, m)
	kresp, err := b.peerRequest(stop, node, req)
	if err != nil {
		return fmt.Errorf("markers to node %d: %w", node, err)
	}
	resp := kresp.(*kmsg.WriteTxnMarkersResponse)
	answered := 0
	for _, rm := range resp.Markers {
		for _, rt := range rm.Topics {
			for _, rp := range rt.Partitions {
				answered++
				switch err := kerr.ErrorForCode(rp.ErrorCode); {
				case err == nil:
				case err == kerr.UnknownTopicOrPartition && !b.partitionExists(rt.Topic, rp.Partition):
					// The topic was deleted: nothing left to mark.
				default:
					return fmt.Errorf("marker for %s-%d on node %d: %w", rt.Topic, rp.Partition, node, err)
				}
			}
		}
	}
	if answered != len(tps) {
		return fmt.Errorf("markers to node %d: %d of %d partitions answered", node, answered, len(tps))
	}
	return nil
}

// verifyRemote asks the coordinator of transactional id id whether tp is
// in producer pid's open transaction at epoch. A coordinator that cannot
// be reached makes the write fail with a retriable error
// (NOT_ENOUGH_REPLICAS, as Kafka answers a produce whose verification
// failed that way).
func (b *Broker) verifyRemote(id string, pid int64, epoch int16, tp txn.TopicPartition) error {
	br, ok := b.coordinatorNode(coordinatorTransaction, id)
	if !ok {
		return kerr.CoordinatorNotAvailable
	}
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 4
	t := kmsg.NewAddPartitionsToTxnRequestTransaction()
	t.TransactionalID, t.ProducerID, t.ProducerEpoch, t.VerifyOnly = id, pid, epoch, true
	rt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
	rt.Topic, rt.Partitions = tp.Topic, []int32{tp.Partition}
	t.Topics = append(t.Topics, rt)
	req.Transactions = append(req.Transactions, t)
	kresp, err := b.peerRequest(b.quit, br.NodeID, req)
	if err != nil {
		return wrap(kerr.NotEnoughReplicas, fmt.Errorf("verify with the coordinator, node %d: %w", br.NodeID, err))
	}
	resp := kresp.(*kmsg.AddPartitionsToTxnResponse)
	switch err := kerr.ErrorForCode(resp.ErrorCode); err {
	case nil:
	case kerr.NotCoordinator, kerr.CoordinatorLoadInProgress, kerr.CoordinatorNotAvailable:
		// The coordinator is moving: the producer retries the write.
		return wrap(kerr.NotEnoughReplicas, fmt.Errorf("verify with the coordinator, node %d: %w", br.NodeID, err))
	default:
		return err
	}
	for _, rtx := range resp.Transactions {
		for _, rtt := range rtx.Topics {
			for _, rp := range rtt.Partitions {
				if rtt.Topic == tp.Topic && rp.Partition == tp.Partition {
					return kerr.ErrorForCode(rp.ErrorCode)
				}
			}
		}
	}
	return wrap(kerr.NotEnoughReplicas, fmt.Errorf("the coordinator, node %d, did not answer for %s-%d", br.NodeID, tp.Topic, tp.Partition))
}
