package bench

// The replay server is a measurement instrument, not a broker: it answers
// just enough of the Kafka protocol for a kgo consumer (ApiVersions,
// Metadata, ListOffsets, Fetch) and serves one topic's record batches,
// captured once from a real broker, from memory. A Fetch answer is a few
// dozen header bytes per partition written in front of slices of the
// captured bytes with one writev: no log read, no copy, no encoding of the
// records. What a consumer reaches against it is the most any broker could
// give that consumer on the same machine.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// replayBatch locates one record batch in a replayPartition's bytes.
type replayBatch struct {
	base int64 // first offset
	next int64 // offset after the batch's last
	pos  int   // start in replayPartition.data
	size int
}

// replayPartition holds one partition's captured batches back to back.
type replayPartition struct {
	data    []byte
	batches []replayBatch
}

// end is the partition's high watermark.
func (p *replayPartition) end() int64 {
	if len(p.batches) == 0 {
		return 0
	}
	return p.batches[len(p.batches)-1].next
}

// chunk returns the whole batches from the one holding offset onward that
// fit in maxBytes, at least one batch (KIP-74), as one slice of p.data.
func (p *replayPartition) chunk(offset int64, maxBytes int) []byte {
	i := sort.Search(len(p.batches), func(i int) bool { return p.batches[i].next > offset })
	if i == len(p.batches) {
		return nil
	}
	first := p.batches[i]
	end := first.pos + first.size
	for j := i + 1; j < len(p.batches) && p.batches[j].pos+p.batches[j].size-first.pos <= maxBytes; j++ {
		end = p.batches[j].pos + p.batches[j].size
	}
	return p.data[first.pos:end]
}

// newReplayPartition indexes data, whole v2 record batches back to back.
func newReplayPartition(data []byte) (*replayPartition, error) {
	p := &replayPartition{data: data}
	for pos := 0; pos < len(data); {
		if len(data)-pos < 61 {
			return nil, fmt.Errorf("truncated batch header at byte %d", pos)
		}
		base := int64(binary.BigEndian.Uint64(data[pos:]))
		size := 12 + int(binary.BigEndian.Uint32(data[pos+8:]))
		lastDelta := int64(binary.BigEndian.Uint32(data[pos+23:]))
		if size < 61 || pos+size > len(data) {
			return nil, fmt.Errorf("batch at byte %d claims %d bytes of %d", pos, size, len(data)-pos)
		}
		p.batches = append(p.batches, replayBatch{base: base, next: base + lastDelta + 1, pos: pos, size: size})
		pos += size
	}
	return p, nil
}

// captureTopic reads every record batch of every partition of topic from
// brokers with raw Fetch requests, as the broker serves them.
func captureTopic(ctx context.Context, brokers []string, topic string) ([]*replayPartition, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := mreq.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	if len(mresp.Topics) != 1 || mresp.Topics[0].ErrorCode != 0 {
		return nil, fmt.Errorf("metadata of %q: %+v", topic, mresp.Topics)
	}
	parts := make([]*replayPartition, len(mresp.Topics[0].Partitions))
	for _, mp := range mresp.Topics[0].Partitions {
		if int(mp.Partition) >= len(parts) {
			return nil, fmt.Errorf("metadata of %q: partition %d of %d", topic, mp.Partition, len(parts))
		}
		var data []byte
		for offset := int64(0); ; {
			freq := kmsg.NewPtrFetchRequest()
			freq.MaxBytes = 64 << 20
			ft := kmsg.NewFetchRequestTopic()
			ft.Topic, ft.TopicID = topic, mresp.Topics[0].TopicID // kgo picks the version
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = mp.Partition, offset, 16<<20
			ft.Partitions = append(ft.Partitions, fp)
			freq.Topics = append(freq.Topics, ft)
			fresp, err := freq.RequestWith(ctx, cl)
			if err != nil {
				return nil, err
			}
			if len(fresp.Topics) != 1 || len(fresp.Topics[0].Partitions) != 1 {
				return nil, fmt.Errorf("fetch of %s[%d] answered %d topics", topic, mp.Partition, len(fresp.Topics))
			}
			rp := fresp.Topics[0].Partitions[0]
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				return nil, fmt.Errorf("fetch of %s[%d]: %w", topic, mp.Partition, err)
			}
			got, err := newReplayPartition(rp.RecordBatches)
			if err != nil {
				return nil, err
			}
			if len(got.batches) == 0 {
				if offset < rp.HighWatermark {
					return nil, fmt.Errorf("fetch of %s[%d] at %d returned nothing below high watermark %d", topic, mp.Partition, offset, rp.HighWatermark)
				}
				break
			}
			data = append(data, rp.RecordBatches...)
			offset = got.end()
		}
		if parts[mp.Partition], err = newReplayPartition(data); err != nil {
			return nil, err
		}
	}
	return parts, nil
}

// replayTopicID is the topic id the replay server reports (Fetch v13+
// names topics by id).
var replayTopicID = [16]byte{'w', 'e', 'i', 'r', '-', 'b', 'e', 'n', 'c', 'h', '-', 'r', 'e', 'p', 'l', 'y'}

// replayServer serves one topic's captured batches; see the top of the file.
type replayServer struct {
	ln    net.Listener
	topic string
	parts []*replayPartition
	done  chan struct{}
	wg    sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}

	// copying makes every Fetch answer do what a broker reading its log
	// does: copy each partition's batches into a freshly allocated buffer
	// (a read from the log), then encode the whole response with kmsg into
	// a buffer reused across responses and write it. It measures what
	// those copies and allocations cost the consumer.
	copying bool
}

// startReplay listens on a loopback port and serves parts as topic;
// copying sets replayServer.copying.
func startReplay(topic string, parts []*replayPartition, copying bool) (*replayServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &replayServer{ln: ln, topic: topic, parts: parts, done: make(chan struct{}), conns: map[net.Conn]struct{}{}, copying: copying}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is the listen address.
func (s *replayServer) Addr() string { return s.ln.Addr().String() }

// Close stops listening, closes every connection and waits for them.
func (s *replayServer) Close() {
	close(s.done)
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *replayServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		select {
		case <-s.done:
			s.mu.Unlock()
			c.Close()
			return
		default:
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serve(c) // any error ends the connection; the client reconnects
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// replayAPIs are the APIs and versions the replay server answers. Fetch
// starts at v12 so that every answer uses the one flexible layout
// writeFetch encodes by hand.
var replayAPIs = []kmsg.ApiVersionsResponseApiKey{
	{ApiKey: 1, MinVersion: 12, MaxVersion: 16}, // Fetch
	{ApiKey: 2, MinVersion: 1, MaxVersion: 8},   // ListOffsets
	{ApiKey: 3, MinVersion: 1, MaxVersion: 12},  // Metadata
	{ApiKey: 18, MinVersion: 0, MaxVersion: 4},  // ApiVersions
}

func (s *replayServer) serve(c net.Conn) error {
	r := bufio.NewReaderSize(c, 64<<10)
	var frame, out []byte
	for {
		var size [4]byte
		if _, err := io.ReadFull(r, size[:]); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(size[:]))
		if n < 10 || n > 1<<20 {
			return fmt.Errorf("request of %d bytes", n)
		}
		frame = append(frame[:0], make([]byte, n)...)
		if _, err := io.ReadFull(r, frame); err != nil {
			return err
		}
		key := int16(binary.BigEndian.Uint16(frame[0:]))
		version := int16(binary.BigEndian.Uint16(frame[2:]))
		corr := int32(binary.BigEndian.Uint32(frame[4:]))
		idLen := int(int16(binary.BigEndian.Uint16(frame[8:])))
		body := frame[10+max(idLen, 0):]
		req := kmsg.RequestForKey(key)
		if req == nil {
			return fmt.Errorf("api key %d", key)
		}
		if key == 18 && version > 4 {
			// KIP-511: answer at v0 with the ranges served.
			resp := kmsg.NewPtrApiVersionsResponse()
			resp.ErrorCode = kerr.UnsupportedVersion.Code
			resp.ApiKeys = replayAPIs
			if err := writeResponse(c, corr, resp); err != nil {
				return err
			}
			continue
		}
		req.SetVersion(version)
		if req.IsFlexible() {
			if body = skipTagSection(body); body == nil {
				return errors.New("truncated request header")
			}
		}
		if err := req.ReadFrom(body); err != nil {
			return err
		}
		switch req := req.(type) {
		case *kmsg.FetchRequest:
			if s.copying {
				var n int
				out, n = s.encodeFetchCopying(out[:0], corr, req)
				if n == 0 {
					if err := s.idle(req); err != nil {
						return err
					}
				}
				if _, err := c.Write(out); err != nil {
					return err
				}
				continue
			}
			if err := s.writeFetch(c, corr, req); err != nil {
				return err
			}
		case *kmsg.ApiVersionsRequest:
			resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
			resp.ApiKeys = replayAPIs
			if err := writeResponse(c, corr, resp); err != nil {
				return err
			}
		case *kmsg.MetadataRequest:
			if err := writeResponse(c, corr, s.metadata(req)); err != nil {
				return err
			}
		case *kmsg.ListOffsetsRequest:
			if err := writeResponse(c, corr, s.listOffsets(req)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unserved request %s", kmsg.NameForKey(key))
		}
	}
}

// skipTagSection skips a tagged-field section, or returns nil if it is
// malformed.
func skipTagSection(b []byte) []byte {
	count, n := binary.Uvarint(b)
	if n <= 0 {
		return nil
	}
	b = b[n:]
	for range count {
		if _, n = binary.Uvarint(b); n <= 0 {
			return nil
		}
		b = b[n:]
		size, n := binary.Uvarint(b)
		if n <= 0 || size > uint64(len(b)-n) {
			return nil
		}
		b = b[n+int(size):]
	}
	return b
}

// writeResponse encodes resp with kmsg and writes it as one frame.
func writeResponse(w io.Writer, corr int32, resp kmsg.Response) error {
	b := make([]byte, 8, 256)
	binary.BigEndian.PutUint32(b[4:], uint32(corr))
	if resp.IsFlexible() && resp.Key() != 18 {
		b = append(b, 0)
	}
	b = resp.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	_, err := w.Write(b)
	return err
}

func (s *replayServer) metadata(req *kmsg.MetadataRequest) *kmsg.MetadataResponse {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	host, portStr, _ := net.SplitHostPort(s.Addr())
	port, _ := strconv.Atoi(portStr)
	mb := kmsg.NewMetadataResponseBroker()
	mb.NodeID, mb.Host, mb.Port = 0, host, int32(port)
	resp.Brokers = append(resp.Brokers, mb)
	resp.ControllerID = 0
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = kmsg.StringPtr(s.topic)
	mt.TopicID = replayTopicID
	for i := range s.parts {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition, mp.Leader, mp.LeaderEpoch = int32(i), 0, 0
		mp.Replicas, mp.ISR = []int32{0}, []int32{0}
		mt.Partitions = append(mt.Partitions, mp)
	}
	resp.Topics = append(resp.Topics, mt)
	return resp
}

func (s *replayServer) listOffsets(req *kmsg.ListOffsetsRequest) *kmsg.ListOffsetsResponse {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range req.Topics {
		ot := kmsg.NewListOffsetsResponseTopic()
		ot.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			op := kmsg.NewListOffsetsResponseTopicPartition()
			op.Partition = rp.Partition
			switch {
			case rt.Topic != s.topic || rp.Partition < 0 || int(rp.Partition) >= len(s.parts):
				op.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case rp.Timestamp == -1:
				op.Offset = s.parts[rp.Partition].end()
			default: // earliest; the replayed log has no timestamps index
				op.Offset = 0
			}
			op.Timestamp = -1
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return resp
}

// writeFetch answers a Fetch (v12-v16, read_uncommitted) with every
// requested partition's batches from its fetch offset up to the
// partition's max bytes and the request's max bytes, like a broker would,
// encoding only the fixed-size fields and writing the batches from the
// captured bytes. A fetch that finds nothing is held (idle).
func (s *replayServer) writeFetch(c net.Conn, corr int32, req *kmsg.FetchRequest) error {
	type part struct {
		index int32
		hw    int64
		data  []byte
	}
	type topic struct {
		known bool
		parts []part
	}
	topics := make([]topic, len(req.Topics))
	total := 0
	for i, rt := range req.Topics {
		known := rt.Topic == s.topic || (req.Version >= 13 && rt.TopicID == replayTopicID)
		topics[i].known = known
		for _, rp := range rt.Partitions {
			p := part{index: rp.Partition, hw: -1}
			if known && rp.Partition >= 0 && int(rp.Partition) < len(s.parts) {
				src := s.parts[rp.Partition]
				p.hw = src.end()
				room := min(int(rp.PartitionMaxBytes), int(req.MaxBytes)-total)
				if room > 0 || total == 0 {
					d := src.chunk(rp.FetchOffset, max(room, 1))
					if total == 0 || len(d) <= room {
						p.data = d
						total += len(d)
					}
				}
			}
			topics[i].parts = append(topics[i].parts, p)
		}
	}
	if total == 0 {
		if err := s.idle(req); err != nil {
			return err
		}
	}

	// Response header (correlation id, no tags), then the body: throttle,
	// error, session id 0 (sessions declined), topics, no tags.
	head := make([]byte, 0, 64+len(req.Topics)*(40+len(s.topic))+len(s.parts)*48)
	head = binary.BigEndian.AppendUint32(head, 0) // frame size, set below
	head = binary.BigEndian.AppendUint32(head, uint32(corr))
	head = append(head, 0)
	head = binary.BigEndian.AppendUint32(head, 0)
	head = binary.BigEndian.AppendUint16(head, 0)
	head = binary.BigEndian.AppendUint32(head, 0)
	head = binary.AppendUvarint(head, uint64(len(topics)+1))
	bufs := net.Buffers{}
	cur := head
	size := 0
	for i, t := range topics {
		rt := &req.Topics[i]
		if req.Version >= 13 {
			cur = append(cur, rt.TopicID[:]...)
		} else {
			cur = binary.AppendUvarint(cur, uint64(len(rt.Topic)+1))
			cur = append(cur, rt.Topic...)
		}
		cur = binary.AppendUvarint(cur, uint64(len(t.parts)+1))
		for _, p := range t.parts {
			errCode := int16(0)
			if p.hw < 0 {
				errCode = kerr.UnknownTopicOrPartition.Code
				if req.Version >= 13 {
					errCode = kerr.UnknownTopicID.Code
				}
			}
			cur = binary.BigEndian.AppendUint32(cur, uint32(p.index))
			cur = binary.BigEndian.AppendUint16(cur, uint16(errCode))
			cur = binary.BigEndian.AppendUint64(cur, uint64(p.hw)) // high watermark
			cur = binary.BigEndian.AppendUint64(cur, uint64(p.hw)) // last stable offset
			logStart := int64(0)
			if p.hw < 0 {
				logStart = -1
			}
			cur = binary.BigEndian.AppendUint64(cur, uint64(logStart))
			cur = append(cur, 0)                                   // aborted transactions: null
			cur = binary.BigEndian.AppendUint32(cur, 0xffffffff)   // preferred read replica: -1
			cur = binary.AppendUvarint(cur, uint64(len(p.data)+1)) // records: compact bytes
			if len(p.data) > 0 {
				bufs = append(bufs, cur, p.data)
				size += len(cur) + len(p.data)
				cur = make([]byte, 0, 64)
			}
			cur = append(cur, 0) // partition tags
		}
		cur = append(cur, 0) // topic tags
	}
	cur = append(cur, 0) // body tags
	bufs = append(bufs, cur)
	size += len(cur)
	binary.BigEndian.PutUint32(bufs[0], uint32(size-4))
	_, err := bufs.WriteTo(c)
	return err
}

// idle holds a Fetch that found nothing for its max.wait.ms, as a broker
// does: nothing is ever appended here.
func (s *replayServer) idle(req *kmsg.FetchRequest) error {
	if req.MaxWaitMillis <= 0 {
		return nil
	}
	t := time.NewTimer(time.Duration(req.MaxWaitMillis) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-s.done:
		return net.ErrClosed
	}
}

// encodeFetchCopying appends to dst the frame of the answer writeFetch
// gives, built the way a broker reading from its log builds it (see
// replayServer.copying), and returns it with the record bytes it holds.
func (s *replayServer) encodeFetchCopying(dst []byte, corr int32, req *kmsg.FetchRequest) ([]byte, int) {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	total := 0
	for _, rt := range req.Topics {
		ot := kmsg.NewFetchResponseTopic()
		ot.Topic, ot.TopicID = rt.Topic, rt.TopicID
		known := rt.Topic == s.topic || (req.Version >= 13 && rt.TopicID == replayTopicID)
		for _, rp := range rt.Partitions {
			op := kmsg.NewFetchResponseTopicPartition()
			op.Partition = rp.Partition
			op.RecordBatches = []byte{}
			if !known || rp.Partition < 0 || int(rp.Partition) >= len(s.parts) {
				op.ErrorCode = kerr.UnknownTopicOrPartition.Code
				ot.Partitions = append(ot.Partitions, op)
				continue
			}
			src := s.parts[rp.Partition]
			op.HighWatermark, op.LastStableOffset, op.LogStartOffset = src.end(), src.end(), 0
			room := min(int(rp.PartitionMaxBytes), int(req.MaxBytes)-total)
			if room > 0 || total == 0 {
				if d := src.chunk(rp.FetchOffset, max(room, 1)); total == 0 || len(d) <= room {
					read := make([]byte, len(d))
					copy(read, d)
					op.RecordBatches = read
					total += len(d)
				}
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(corr))
	dst = append(dst, 0)
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst, total
}
