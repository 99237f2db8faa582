package broker

// Fetch v4-16. Partitions are read up to the high watermark
// (read_uncommitted) or the last stable offset (read_committed, v4+).
// v7+ fetch sessions (KIP-227) are declined: the response carries session
// id 0, so clients send full fetches. v9+ checks the current leader epoch;
// v13+ names topics by id. A partition led elsewhere gets
// NOT_LEADER_OR_FOLLOWER with the current leader (v12+) and its endpoint
// (v16+), KIP-951 (leader_hints.go). The response stays within max.bytes (v3+) and
// each partition within its partition max bytes, except that the first
// batch of the first partition with data is returned whole (KIP-74). An
// answer with fewer than min.bytes waits up to max.wait.ms, woken whenever
// a high watermark moves; one with a partition in error (a fetch past the
// log end among them) is answered at once.

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/partition"
	"github.com/weir-broker/weir/internal/server"
)

// fetchTarget is one requested partition, resolved.
type fetchTarget struct {
	part *partition.Partition
	req  *kmsg.FetchRequestTopicPartition
	resp *kmsg.FetchResponseTopicPartition
}

func (b *Broker) handleFetch(ctx context.Context, c *server.Conn, req *kmsg.FetchRequest) server.Reply {
	return func() (kmsg.Response, error) {
		var bufs readBuffers
		var resp kmsg.Response
		if replica := replicaOf(req); replica >= 0 {
			resp = b.replicaFetch(ctx, req, replica, &bufs)
		} else {
			resp = b.fetch(ctx, c.Listener, req, &bufs)
		}
		return server.WithRelease(resp, bufs.release), nil
	}
}

// bufs holds the buffers the response's record sets were read into until
// the server has encoded the response; listener names the one the request
// came in on, whose addresses leader hints give.
func (b *Broker) fetch(ctx context.Context, listener string, req *kmsg.FetchRequest, bufs *readBuffers) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	resp.Topics = make([]kmsg.FetchResponseTopic, len(req.Topics))
	var targets []fetchTarget
	hasError := false
	var hints hintedBrokers
	for i := range req.Topics {
		rt := &req.Topics[i]
		ot := &resp.Topics[i]
		*ot = kmsg.NewFetchResponseTopic()
		ot.Topic, ot.TopicID = rt.Topic, rt.TopicID
		name := rt.Topic
		topicErr := kerr.UnknownTopicOrPartition
		if req.Version >= 13 {
			topicErr = kerr.UnknownTopicID
			if n, ok := b.topicName(rt.TopicID); ok {
				name = n
			} else {
				name = ""
			}
		}
		ot.Partitions = make([]kmsg.FetchResponseTopicPartition, len(rt.Partitions))
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			op := &ot.Partitions[j]
			*op = kmsg.NewFetchResponseTopicPartition()
			op.Partition = rp.Partition
			// Empty, not null, also with an error: librdkafka fails to parse
			// a null record set (a size of -1 before v12) and never reads
			// the error code, so a consumer asking a replica that no longer
			// leads would retry it forever instead of finding the leader.
			op.RecordBatches = []byte{}
			op.HighWatermark, op.LastStableOffset, op.LogStartOffset = -1, -1, -1
			var part *partition.Partition
			partErr := topicErr
			if name != "" {
				var kerrc *kerr.Error
				if part, kerrc = b.partition(name, rp.Partition); kerrc == kerr.NotLeaderForPartition {
					partErr = kerrc
					if req.Version >= 12 {
						if leader, epoch, br, ok := b.leaderHint(name, rp.Partition); ok {
							op.CurrentLeader.LeaderID, op.CurrentLeader.LeaderEpoch = leader, epoch
							if req.Version >= 16 {
								hints.add(br)
							}
						}
					}
				}
			}
			if part == nil {
				op.ErrorCode = partErr.Code
				hasError = true
				continue
			}
			if code := checkLeaderEpoch(part, rp.CurrentLeaderEpoch); code != 0 {
				op.ErrorCode = code
				hasError = true
				continue
			}
			targets = append(targets, fetchTarget{part: part, req: rp, resp: op})
		}
	}

	for _, br := range hints {
		if host, port, ok := br.Endpoint(listener); ok {
			resp.Brokers = append(resp.Brokers, kmsg.FetchResponseBroker{NodeID: br.NodeID, Host: host, Port: port})
		}
	}

	maxBytes := int(req.MaxBytes)
	if req.Version < 3 || maxBytes <= 0 {
		maxBytes = int(b.settings.Int("fetch.max.bytes"))
	}
	maxBytes = min(maxBytes, int(b.settings.Int("fetch.max.bytes")))
	readCommitted := req.IsolationLevel == 1

	got, readErr := b.readTargets(targets, maxBytes, readCommitted, bufs)
	if f := b.afterFetchRead.Load(); f != nil {
		(*f)()
	}
	// Any partition's error is answered at once, as Kafka does: waiting
	// could not mend it, and a fetch past the log end (OFFSET_OUT_OF_RANGE)
	// held for max.wait.ms stalls the client's reset.
	if hasError || readErr || got >= int(req.MinBytes) || req.MaxWaitMillis <= 0 || len(targets) == 0 {
		return resp
	}
	select {
	case b.fetchWaiting <- struct{}{}:
		defer func() { <-b.fetchWaiting }()
	default:
		return resp // fetch.max.waiting reached: answer now rather than hold more
	}
	wake := make(chan struct{}, 1)
	for _, t := range targets {
		t.part.Watch(wake)
	}
	defer func() {
		for _, t := range targets {
			t.part.Unwatch(wake)
		}
	}()
	// A high watermark that moved between the read above and the
	// watches woke nobody: read again, now that every later move wakes
	// this fetch, before sleeping.
	got, readErr = b.readTargets(targets, maxBytes, readCommitted, bufs)
	timer := time.NewTimer(time.Duration(req.MaxWaitMillis) * time.Millisecond)
	defer timer.Stop()
	for got < int(req.MinBytes) && !readErr {
		select {
		case <-wake:
		case <-timer.C:
			return resp
		case <-ctx.Done():
			return resp
		}
		got, readErr = b.readTargets(targets, maxBytes, readCommitted, bufs)
	}
	return resp
}

// checkLeaderEpoch compares a fetcher's view of the leader epoch (v9+; -1
// when it has none) with the partition's.
func checkLeaderEpoch(p *partition.Partition, epoch int32) int16 {
	if epoch < 0 {
		return 0
	}
	switch cur := p.LeaderEpoch(); {
	case epoch < cur:
		return kerr.FencedLeaderEpoch.Code
	case epoch > cur:
		return kerr.UnknownLeaderEpoch.Code
	}
	return 0
}

// readTargets (re)reads every target into its response and returns the
// bytes gathered and whether any partition's read failed. A re-read gives
// back the buffers of the previous one.
func (b *Broker) readTargets(targets []fetchTarget, maxBytes int, readCommitted bool, bufs *readBuffers) (total int, failed bool) {
	bufs.release()
	for _, t := range targets {
		p, op := t.part, t.resp
		op.ErrorCode = 0
		op.RecordBatches = []byte{} // empty, not null: librdkafka rejects a null record set
		start, lso, hw := p.Offsets()
		op.HighWatermark, op.LastStableOffset, op.LogStartOffset = hw, lso, start
		limit := hw
		if readCommitted {
			limit = lso
		}
		room := min(int(t.req.PartitionMaxBytes), maxBytes-total)
		if room <= 0 && total > 0 {
			continue
		}
		buf := bufs.get()
		var data []byte
		var aborted []kmsg.FetchResponseTopicPartitionAbortedTransaction
		var err error
		if readCommitted {
			data, aborted, err = p.ReadCommittedInto(*buf, t.req.FetchOffset, limit, max(room, 1))
		} else {
			data, err = p.ReadInto(*buf, t.req.FetchOffset, limit, max(room, 1))
		}
		bufs.hold(buf, data)
		switch {
		case errors.Is(err, wlog.ErrOffsetOutOfRange):
			op.ErrorCode = kerr.OffsetOutOfRange.Code
			failed = true
			continue
		case err != nil:
			op.ErrorCode = kerr.KafkaStorageError.Code
			failed = true
			b.logger.Error("fetch read", "topic", p.Topic, "partition", p.Index, "err", err)
			continue
		}
		if total > 0 && len(data) > room {
			continue // only the first partition with data may exceed its share
		}
		if len(data) > 0 {
			op.RecordBatches = data
			total += len(data)
		}
		if readCommitted {
			// Not null: a read_committed client expects the list.
			op.AbortedTransactions = aborted
		}
	}
	return total, failed
}
