package e2e

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/batch"
)

// rawConn speaks frames to the broker without a client library, so tests
// can send what no client would.
type rawConn struct {
	t  testing.TB
	c  net.Conn
	id int32
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawConn{t: t, c: c}
}

func (r *rawConn) send(req kmsg.Request) int32 {
	r.id++
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw")).AppendRequest(nil, req, r.id)
	r.write(frame)
	return r.id
}

func (r *rawConn) write(b []byte) {
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

// recv reads one response frame into resp (whose version must be set).
func (r *rawConn) recv(resp kmsg.Response, wantID int32) {
	r.t.Helper()
	frame, err := r.readFrame()
	if err != nil {
		r.t.Fatalf("read response: %v", err)
	}
	if id := int32(binary.BigEndian.Uint32(frame)); id != wantID {
		r.t.Fatalf("correlation id %d, want %d", id, wantID)
	}
	body := frame[4:]
	if resp.IsFlexible() && resp.Key() != 18 {
		body = body[1:] // empty header tags
	}
	if err := resp.ReadFrom(body); err != nil {
		r.t.Fatalf("decode response: %v", err)
	}
}

func (r *rawConn) readFrame() ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r.c, size[:]); err != nil {
		return nil, err
	}
	frame := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err := io.ReadFull(r.c, frame)
	return frame, err
}

// expectClosed asserts the broker closes the connection without sending
// a response.
func (r *rawConn) expectClosed() {
	r.t.Helper()
	if frame, err := r.readFrame(); err == nil {
		r.t.Fatalf("broker answered (%d bytes) instead of closing", len(frame))
	} else if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isReset(err) {
		r.t.Fatalf("waiting for close: %v", err)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}

func produceReq(topic string, records []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks = -1
	req.TimeoutMillis = 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func produceErr(t *testing.T, conn *rawConn, topic string, records []byte) int16 {
	t.Helper()
	req := produceReq(topic, records)
	id := conn.send(req)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	conn.recv(resp, id)
	return resp.Topics[0].Partitions[0].ErrorCode
}

func endOffset(t *testing.T, addr, topic string) int64 {
	t.Helper()
	ends, err := newAdmin(t, addr).ListEndOffsets(testCtx(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := ends.Lookup(topic, 0)
	if o.Err != nil {
		t.Fatal(o.Err)
	}
	return o.Offset
}

func goodBatch() []byte {
	return batch.Build(batch.Spec{Timestamp: time.Now().UnixMilli(), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
		[]batch.Record{{Value: []byte("hello")}})
}

// Batches that are not what they claim are refused with Kafka's error
// code, the log is left untouched, and the connection stays usable.
func TestBadBatchesGetKafkaErrorsAndStoreNothing(t *testing.T) {
	b, _ := startBroker(t, map[string]string{"message.max.bytes": "2000"})
	createTopic(t, newAdmin(t, b.Addr()), "t", 1, nil)
	conn := dialRaw(t, b.Addr())

	if code := produceErr(t, conn, "t", goodBatch()); code != 0 {
		t.Fatalf("good batch: error %d", code)
	}
	flipped := goodBatch()
	flipped[len(flipped)-1] ^= 1
	magic1 := goodBatch()
	magic1[16] = 1
	big := batch.Build(batch.Spec{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, []batch.Record{{Value: make([]byte, 3000)}})
	two := append(goodBatch(), goodBatch()...)
	control := batch.Build(batch.Spec{Attributes: batch.AttrControl, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, []batch.Record{{Value: []byte("x")}})
	cases := []struct {
		name    string
		records []byte
		want    *kerr.Error
	}{
		{"wrong crc", flipped, kerr.CorruptMessage},
		{"truncated", goodBatch()[:50], kerr.CorruptMessage},
		{"two batches", two, kerr.CorruptMessage},
		{"old magic", magic1, kerr.UnsupportedForMessageFormat},
		{"too large", big, kerr.MessageTooLarge},
		{"control batch", control, kerr.InvalidRecord},
	}
	for _, c := range cases {
		if code := produceErr(t, conn, "t", c.records); code != c.want.Code {
			t.Errorf("%s: error %v, want %v", c.name, kerr.ErrorForCode(code), c.want)
		}
	}
	if code := produceErr(t, conn, "missing", goodBatch()); code != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("unknown topic: error %d", code)
	}
	if end := endOffset(t, b.Addr(), "t"); end != 1 {
		t.Fatalf("log end offset %d after one good batch", end)
	}
}

// Frames a broker cannot trust close the connection; the broker serves
// the next client as before.
func TestMalformedFramesCloseTheConnectionOnly(t *testing.T) {
	b, _ := startBroker(t, map[string]string{"socket.request.max.bytes": "1048576"})
	frame := func(body []byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
	}
	cases := map[string][]byte{
		"oversized frame":   binary.BigEndian.AppendUint32(nil, 1<<30),
		"negative size":     binary.BigEndian.AppendUint32(nil, 0xffffffff),
		"short header":      frame([]byte{0, 3}),
		"unknown api key":   frame([]byte{0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff}),
		"unserved version":  frame([]byte{0, 3, 0x7f, 0x00, 0, 0, 0, 1, 0xff, 0xff}),
		"garbage body":      frame([]byte{0, 3, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0, 0x99, 0x99, 0x99}),
		"client id overrun": frame([]byte{0, 3, 0, 1, 0, 0, 0, 1, 0x10, 0x00}),
	}
	for name, bytes := range cases {
		t.Run(name, func(t *testing.T) {
			conn := dialRaw(t, b.Addr())
			conn.write(bytes)
			conn.expectClosed()
		})
	}
	// Still serving.
	createTopic(t, newAdmin(t, b.Addr()), "after", 1, nil)
}

// A client asking ApiVersions at a version newer than the broker's gets
// a v0 answer with UNSUPPORTED_VERSION and the broker's ranges (KIP-511).
func TestApiVersionsFallsBackForNewerClients(t *testing.T) {
	b, _ := startBroker(t, nil)
	conn := dialRaw(t, b.Addr())
	conn.id++
	conn.write(append(binary.BigEndian.AppendUint32(nil, 10), 0, 18, 0, 99, 0, 0, 0, byte(conn.id), 0xff, 0xff))
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(0)
	conn.recv(resp, conn.id)
	if resp.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("error code %d", resp.ErrorCode)
	}
	found := false
	for _, k := range resp.ApiKeys {
		if k.ApiKey == 18 && k.MaxVersion >= 3 {
			found = true
		}
	}
	if !found {
		t.Fatalf("ApiVersions range missing from %+v", resp.ApiKeys)
	}
	// And the negotiated client works.
	cl := newClient(t, b.Addr())
	if err := cl.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// A fetch waiting for data (long poll) is answered when a producer
// appends, not only when max.wait.ms expires.
func TestFetchLongPollIsWokenByAppend(t *testing.T) {
	b, _ := startBroker(t, nil)
	createTopic(t, newAdmin(t, b.Addr()), "t", 1, nil)
	conn := dialRaw(t, b.Addr())
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(11)
	req.MaxWaitMillis = 120000 // far beyond the test's patience
	req.MinBytes = 1
	req.MaxBytes = 1 << 20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	id := conn.send(req)

	produceValues(t, b.Addr(), "t", 0, 1)
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	conn.recv(resp, id)
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 || len(p.RecordBatches) == 0 || p.HighWatermark != 1 {
		t.Fatalf("fetch: error %d, %d bytes, hw %d", p.ErrorCode, len(p.RecordBatches), p.HighWatermark)
	}
}

// ListOffsets answers earliest, latest and by timestamp; DeleteRecords
// moves the earliest and a consumer starting there sees only what is left.
func TestListOffsetsAndDeleteRecords(t *testing.T) {
	b, _ := startBroker(t, nil)
	adm := newAdmin(t, b.Addr())
	createTopic(t, adm, "t", 1, nil)
	cl := newClient(t, b.Addr(), kgo.DefaultProduceTopic("t"))
	for i := range 10 {
		r := &kgo.Record{Value: []byte{byte(i)}, Timestamp: time.UnixMilli(int64(1000 * (i + 1)))}
		if err := cl.ProduceSync(testCtx(t), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	ctx := testCtx(t)
	byTime, err := adm.ListOffsetsAfterMilli(ctx, 4500, "t")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := byTime.Lookup("t", 0); o.Offset != 4 {
		t.Fatalf("offset for timestamp 4500: %d, want 4", o.Offset)
	}
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: "t", Partition: 0, At: 6})
	dr, err := adm.DeleteRecords(ctx, offs)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := dr.Lookup("t", 0); r.Err != nil || r.LowWatermark != 6 {
		t.Fatalf("delete records: %+v", r)
	}
	start, _ := adm.ListStartOffsets(ctx, "t")
	if o, _ := start.Lookup("t", 0); o.Offset != 6 {
		t.Fatalf("start offset %d, want 6", o.Offset)
	}
	recs := consumeAll(t, b.Addr(), "t", 4)
	if recs[0].Offset != 6 || recs[0].Value[0] != 6 {
		t.Fatalf("first record after delete: offset %d value %v", recs[0].Offset, recs[0].Value)
	}
	offs = kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "t", Partition: 0, At: 11})
	dr, _ = adm.DeleteRecords(ctx, offs)
	if r, _ := dr.Lookup("t", 0); !errors.Is(r.Err, kerr.OffsetOutOfRange) {
		t.Fatalf("delete beyond the high watermark: %v", r.Err)
	}
}

// The coordinators' internal topics are theirs alone: clients can neither
// create them, grow them, nor produce to them.
func TestInternalTopicsAreProtected(t *testing.T) {
	b, _ := startBroker(t, map[string]string{"group.initial.rebalance.delay.ms": "0"})
	adm := newAdmin(t, b.Addr())
	ctx := testCtx(t)
	resp, _ := adm.CreateTopics(ctx, 1, 1, nil, "__transaction_state")
	if !errors.Is(resp["__transaction_state"].Err, kerr.InvalidRequest) {
		t.Fatalf("creating __transaction_state: %v", resp["__transaction_state"].Err)
	}
	// A group commit makes the coordinator create __consumer_offsets.
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: "t", Partition: 0, At: 0})
	createTopic(t, adm, "t", 1, nil)
	if _, err := adm.CommitOffsets(ctx, "g", offs); err != nil {
		t.Fatal(err)
	}
	cp, _ := adm.UpdatePartitions(ctx, 60, "__consumer_offsets")
	if !errors.Is(cp["__consumer_offsets"].Err, kerr.InvalidPartitions) {
		t.Fatalf("growing __consumer_offsets: %v", cp["__consumer_offsets"].Err)
	}
	conn := dialRaw(t, b.Addr())
	if code := produceErr(t, conn, "__consumer_offsets", goodBatch()); code != kerr.InvalidTopicException.Code {
		t.Fatalf("producing to __consumer_offsets: error %d", code)
	}
}
