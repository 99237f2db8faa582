package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A proxy stands in front of one node's Kafka listener in the lab's
// cluster: every node advertises its proxy, so clients and the other
// nodes reach it only through the proxy. That lets the lab cut one node's
// replication fetches from another while everything else still flows (a
// follower that is alive, heartbeats and votes in the metadata quorum, but
// cannot copy its leader's log: the lagging follower), and lets it count
// the error codes the node answers the lab's producer with.
//
// Requests are read frame by frame (a size, then the request header:
// API key, version, correlation id, client id). Nodes fetch from each
// other through a client whose id is "weir-broker-<node id>", which is
// how a replication fetch is told from a consumer's.

// maxFrameBytes bounds a frame the proxy reads, like the broker's own
// socket.request.max.bytes.
const maxFrameBytes = 100 << 20

// fetchAPIKey is the Kafka API key of Fetch.
const fetchAPIKey = 1

// replicaClientID is the client id node uses for its requests to other
// nodes, replication fetches among them.
func replicaClientID(node int32) string { return fmt.Sprintf("weir-broker-%d", node) }

// proxy forwards one listener to one node.
type proxy struct {
	listen string
	tally  *errorTally

	mu      sync.Mutex
	ln      net.Listener    // nil while the node is down
	target  string          // the node's own listener; "" until known
	cut     map[string]bool // client ids whose fetches are refused
	conns   map[net.Conn]struct{}
	closed  bool
	refused int // fetches refused so far: proof the cut acted
}

// newProxy listens on addr; connections are refused until setTarget.
func newProxy(addr string, tally *errorTally) (*proxy, error) {
	p := &proxy{listen: addr, tally: tally, cut: map[string]bool{}, conns: map[net.Conn]struct{}{}}
	if err := p.up(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *proxy) addr() string { return p.listen }

// up listens (again). While the node is down the proxy does not listen,
// so that clients find the port refused, as they would the node's own.
func (p *proxy) up() error {
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", p.listen); err == nil {
			p.mu.Lock()
			p.ln = ln
			p.mu.Unlock()
			go p.accept(ln)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("proxy: %w", err)
}

// down stops listening and ends every connection through the proxy, as
// the node's death ends those to it.
func (p *proxy) down() {
	p.mu.Lock()
	ln, conns := p.ln, p.conns
	p.ln, p.conns = nil, map[net.Conn]struct{}{}
	p.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for c := range conns {
		c.Close()
	}
}

func (p *proxy) setTarget(addr string) {
	p.mu.Lock()
	p.target = addr
	p.mu.Unlock()
}

// cutFetches refuses, from now on, the fetches of clients with these ids
// (closing their connections), or, with none, refuses none.
func (p *proxy) cutFetches(clientIDs ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = map[string]bool{}
	for _, id := range clientIDs {
		p.cut[id] = true
	}
}

// refusedFetches is how many fetches the proxy has refused.
func (p *proxy) refusedFetches() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}

func (p *proxy) isCut(clientID string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut[clientID] {
		p.refused++
		return true
	}
	return false
}

func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.down()
}

func (p *proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		c.Close()
	}
}

func (p *proxy) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go p.serve(c)
	}
}

// serve forwards one connection until either side ends it.
func (p *proxy) serve(client net.Conn) {
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	if target == "" {
		client.Close()
		return
	}
	server, err := net.Dial("tcp", target)
	if err != nil {
		client.Close() // the node is down: refused, as it would be
		return
	}
	if !p.track(client, server) {
		client.Close()
		server.Close()
		return
	}
	defer p.untrack(client, server)
	// Correlation ids of the lab producer's produce requests on this
	// connection, with their versions, for reading the answers.
	pending := &produceWatch{versions: map[int32]int16{}}
	done := make(chan struct{}, 2)
	go func() {
		p.upstream(client, server, pending)
		done <- struct{}{}
	}()
	go func() {
		p.downstream(server, client, pending)
		done <- struct{}{}
	}()
	<-done // one side ended: untrack closes both, which ends the other
}

// produceWatch maps the correlation ids of watched produce requests to
// their versions.
type produceWatch struct {
	mu       sync.Mutex
	versions map[int32]int16
}

// upstream copies requests from the client to the node, frame by frame,
// and ends the connection on a fetch of a cut client.
func (p *proxy) upstream(client, server net.Conn, pending *produceWatch) {
	for {
		frame, err := readFrame(client)
		if err != nil {
			return
		}
		key, version, corr, clientID, ok := requestHeader(frame)
		if ok && key == fetchAPIKey && p.isCut(clientID) {
			return // the replica's fetch never arrives
		}
		if ok && key == produceAPIKey && p.tally != nil && p.tally.watches(clientID) {
			pending.mu.Lock()
			pending.versions[corr] = version
			pending.mu.Unlock()
		}
		if _, err := server.Write(frame); err != nil {
			return
		}
	}
}

// downstream copies responses from the node to the client, counting the
// error codes of watched produce responses.
func (p *proxy) downstream(server, client net.Conn, pending *produceWatch) {
	for {
		frame, err := readFrame(server)
		if err != nil {
			return
		}
		if len(frame) >= 8 {
			corr := int32(binary.BigEndian.Uint32(frame[4:8]))
			pending.mu.Lock()
			version, ok := pending.versions[corr]
			delete(pending.versions, corr)
			pending.mu.Unlock()
			if ok {
				p.tally.countProduce(frame[8:], version)
			}
		}
		if _, err := client.Write(frame); err != nil {
			return
		}
	}
}

// readFrame reads one size-prefixed frame, prefix included.
func readFrame(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(size[:]))
	if n < 0 || n > maxFrameBytes {
		return nil, fmt.Errorf("proxy: frame of %d bytes", n)
	}
	frame := make([]byte, 4+int(n))
	copy(frame, size[:])
	if _, err := io.ReadFull(r, frame[4:]); err != nil {
		return nil, err
	}
	return frame, nil
}

// requestHeader parses a request frame's header up to the client id.
func requestHeader(frame []byte) (key, version int16, corr int32, clientID string, ok bool) {
	b := frame[4:]
	if len(b) < 10 {
		return 0, 0, 0, "", false
	}
	key = int16(binary.BigEndian.Uint16(b[0:2]))
	version = int16(binary.BigEndian.Uint16(b[2:4]))
	corr = int32(binary.BigEndian.Uint32(b[4:8]))
	n := int16(binary.BigEndian.Uint16(b[8:10]))
	if n > 0 && len(b) >= 10+int(n) {
		clientID = string(b[10 : 10+int(n)])
	}
	return key, version, corr, clientID, true
}

// errorTally counts the error codes in the produce responses to one
// client id, across every proxy of the cluster.
type errorTally struct {
	clientID string

	mu     sync.Mutex
	counts map[string]int
}

func newErrorTally(clientID string) *errorTally {
	return &errorTally{clientID: clientID, counts: map[string]int{}}
}

func (t *errorTally) watches(clientID string) bool { return clientID == t.clientID }

// countProduce decodes a produce response body (after the correlation
// id) and counts each partition's error.
func (t *errorTally) countProduce(body []byte, version int16) {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(version)
	if req.IsFlexible() {
		// The flexible response header carries tagged fields.
		rest, err := skipTags(body)
		if err != nil {
			return
		}
		body = rest
	}
	resp := kmsg.NewPtrProduceResponse()
	resp.SetVersion(version)
	if err := resp.ReadFrom(body); err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tp := range resp.Topics {
		for _, pp := range tp.Partitions {
			if err := kerr.ErrorForCode(pp.ErrorCode); err != nil {
				t.counts[errorName(err)]++
			}
		}
	}
}

// snapshot returns the counts so far.
func (t *errorTally) snapshot() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int, len(t.counts))
	for k, v := range t.counts {
		out[k] = v
	}
	return out
}

// errorName is a Kafka error's protocol name, or the error's text.
func errorName(err error) string {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Message
	}
	return strings.TrimSpace(err.Error())
}

// skipTags skips a tagged-field section: a count, then per field a tag,
// a size and that many bytes, all unsigned varints but the bytes.
func skipTags(b []byte) ([]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, errors.New("bad tag count")
	}
	b = b[k:]
	for range n {
		if _, k = binary.Uvarint(b); k <= 0 {
			return nil, errors.New("bad tag")
		}
		b = b[k:]
		size, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < size {
			return nil, errors.New("bad tag size")
		}
		b = b[k+int(size):]
	}
	return b, nil
}
