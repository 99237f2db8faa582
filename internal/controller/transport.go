package controller

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/weir-broker/weir/internal/netretry"
)

// Limits of the quorum's transport.
const (
	// maxRaftFrameBytes bounds one message on the wire, a snapshot of the
	// image included; a peer claiming more is disconnected.
	maxRaftFrameBytes = 64 << 20
	// peerQueueLen bounds the messages waiting for one peer; beyond it
	// they are dropped, and Raft sends again.
	peerQueueLen   = 256
	dialTimeout    = time.Second
	writeTimeout   = 2 * time.Second
	redialBackoff  = 200 * time.Millisecond
	maxInboundConn = 64
)

// peerReport tells the Raft node a peer could not be reached, or how a
// snapshot sent to it went.
type peerReport struct {
	id       uint64
	snapshot bool
	status   raft.SnapshotStatus
}

// transport carries Raft messages between the controller listeners as
// length-prefixed protobuf frames over TCP. Each peer has one sender
// goroutine with a bounded queue and one outbound connection; inbound
// connections only carry messages in. Delivery is best effort: Raft
// tolerates loss and retries.
//
// Peers are the voters, known from the configuration, and the learners
// (broker-only nodes), added as their configuration changes are applied.
// A message is accepted from a peer only, but for one kind: a voter
// accepts from a node not yet a member the proposal that adds that very
// node as a learner (join.go), at most one every joinAcceptEvery.
type transport struct {
	self    uint64
	ln      net.Listener
	voters  map[uint64]bool
	deliver func(*pb.Message) // hands an inbound message to the driver
	report  func(peerReport)
	logger  *slog.Logger

	stop chan struct{}
	wg   sync.WaitGroup

	// mu guards conns, peers and stopped; it is held only in memory.
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	peers   map[uint64]*peer
	stopped bool
	// lastJoin is when a join from a non-member was last accepted.
	lastJoin time.Time

	// blocked, set only by tests, holds peers whose messages to and from
	// this node are dropped: a network partition.
	blocked atomic.Pointer[map[uint64]bool]

	// dial opens the connection to a peer: TCP, or TLS when the
	// controller listener is SSL (then the listener requires the peer's
	// certificate too: only holders of a key pair the truststore's CA
	// signed reach the quorum).
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// TransportTLS secures the controller listener: Server wraps the
// listener (requiring client certificates), Dial reaches the peers.
type TransportTLS struct {
	Server *tls.Config
	Dial   func(ctx context.Context, network, addr string) (net.Conn, error)
}

// handshakeTimeout bounds a peer's TLS handshake.
const handshakeTimeout = 10 * time.Second

// isBlocked reports whether a test cut this node off from peer id.
func (t *transport) isBlocked(id uint64) bool {
	b := t.blocked.Load()
	return b != nil && (*b)[id]
}

type peer struct {
	id uint64
	// addr is the peer's controller listener; a learner that joins again
	// from another address changes it.
	addr  atomic.Pointer[string]
	queue chan *pb.Message
}

// newTransport listens on listen and sends to peers (id → address): the
// voters, and the learners the image knows. voters are the quorum's
// voters, whose messages are always accepted.
func newTransport(self uint64, listen string, sec *TransportTLS, voters []uint64, peers map[uint64]string, deliver func(*pb.Message), report func(peerReport), logger *slog.Logger) (*transport, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("controller listener: %w", err)
	}
	var d net.Dialer
	dial := d.DialContext
	if sec != nil {
		ln = tls.NewListener(ln, sec.Server)
		dial = sec.Dial
	}
	t := &transport{self: self, ln: ln, voters: make(map[uint64]bool), peers: make(map[uint64]*peer), deliver: deliver, report: report, logger: logger,
		stop: make(chan struct{}), conns: make(map[net.Conn]struct{}), dial: dial}
	for _, id := range voters {
		t.voters[id] = true
	}
	for id, addr := range peers {
		t.addPeer(id, addr)
	}
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// addPeer starts sending to node id at addr, or changes the address of a
// known peer.
func (t *transport) addPeer(id uint64, addr string) {
	if id == t.self {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	if p := t.peers[id]; p != nil {
		if *p.addr.Load() != addr {
			p.addr.Store(&addr)
		}
		return
	}
	p := &peer{id: id, queue: make(chan *pb.Message, peerQueueLen)}
	p.addr.Store(&addr)
	t.peers[id] = p
	t.wg.Add(1)
	go t.sendLoop(p)
}

func (t *transport) peer(id uint64) *peer {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.peers[id]
}

// send queues m for its peer, or drops it when the queue is full.
func (t *transport) send(m *pb.Message) {
	p := t.peer(m.GetTo())
	if p == nil || t.isBlocked(p.id) {
		return
	}
	select {
	case p.queue <- m:
	default:
		t.failed(p, m)
	}
}

func (t *transport) failed(p *peer, m *pb.Message) {
	t.report(peerReport{id: p.id})
	if m.GetType() == pb.MessageType_MsgSnap {
		t.report(peerReport{id: p.id, snapshot: true, status: raft.SnapshotFailure})
	}
}

func (t *transport) sendLoop(p *peer) {
	defer t.wg.Done()
	var (
		conn    net.Conn
		bw      *bufio.Writer
		retryAt time.Time
	)
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for {
		var m *pb.Message
		select {
		case <-t.stop:
			return
		case m = <-p.queue:
		}
		if conn == nil {
			if time.Now().Before(retryAt) {
				t.failed(p, m)
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
			c, err := t.dial(ctx, "tcp", *p.addr.Load())
			cancel()
			if err != nil {
				retryAt = time.Now().Add(redialBackoff)
				t.failed(p, m)
				continue
			}
			conn, bw = c, bufio.NewWriter(c)
		}
		_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		err := writeFrame(bw, m)
		// Flush when nothing else waits, so a burst goes out in one write;
		// a snapshot is reported only once it is on the wire.
		if err == nil && (len(p.queue) == 0 || m.GetType() == pb.MessageType_MsgSnap) {
			err = bw.Flush()
		}
		if err != nil {
			t.logger.Debug("raft message to peer lost", "peer", p.id, "err", err)
			conn.Close()
			conn = nil
			t.failed(p, m)
			continue
		}
		if m.GetType() == pb.MessageType_MsgSnap {
			t.report(peerReport{id: p.id, snapshot: true, status: raft.SnapshotFinish})
		}
	}
}

func writeFrame(w io.Writer, m *pb.Message) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	if len(b) > maxRaftFrameBytes {
		return fmt.Errorf("raft message of %d bytes is above the %d-byte limit", len(b), maxRaftFrameBytes)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func (t *transport) acceptLoop() {
	defer t.wg.Done()
	var backoff netretry.Backoff
	for {
		c, err := t.ln.Accept()
		if err != nil {
			select {
			case <-t.stop:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			pause, log := backoff.Failed()
			if log {
				t.logger.Error("controller listener: accept failed; accepting again after a pause", "err", err, "pause", pause)
			}
			select {
			case <-time.After(pause):
			case <-t.stop:
				return
			}
			continue
		}
		backoff.Accepted()
		t.mu.Lock()
		if len(t.conns) >= maxInboundConn {
			t.mu.Unlock()
			c.Close()
			continue
		}
		t.conns[c] = struct{}{}
		t.mu.Unlock()
		t.wg.Add(1)
		go t.readLoop(c)
	}
}

func (t *transport) readLoop(c net.Conn) {
	defer t.wg.Done()
	defer func() {
		t.mu.Lock()
		delete(t.conns, c)
		t.mu.Unlock()
		c.Close()
	}()
	if tc, ok := c.(*tls.Conn); ok {
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			t.logger.Warn("controller listener: TLS handshake refused", "remote", c.RemoteAddr().String(), "err", err)
			return
		}
	}
	br := bufio.NewReader(c)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > maxRaftFrameBytes {
			t.logger.Warn("raft frame above the limit; closing the connection", "bytes", n, "remote", c.RemoteAddr().String())
			return
		}
		// Memory grows with the bytes that arrive, not with what the
		// header claims.
		var buf bytes.Buffer
		buf.Grow(int(min(n, 64<<10)))
		if _, err := io.CopyN(&buf, br, int64(n)); err != nil {
			return
		}
		m := &pb.Message{}
		if err := proto.Unmarshal(buf.Bytes(), m); err != nil {
			t.logger.Warn("undecodable raft message; closing the connection", "err", err, "remote", c.RemoteAddr().String())
			return
		}
		deliver, keep := t.accept(m, c)
		if !keep {
			return
		}
		if deliver && !t.isBlocked(m.GetFrom()) {
			t.deliver(m)
		}
	}
}

// accept reports whether m, read from c, is delivered, and whether the
// connection is kept. A message must be addressed to this node
// from a member (a voter, or a learner already added); the one exception
// is a join (see isJoin), which a voter accepts from a node not yet a
// member, and drops (keeping the connection) when another was accepted
// less than joinAcceptEvery ago. A configuration change that is not a
// valid join is refused from anyone: the voters are fixed.
func (t *transport) accept(m *pb.Message, c net.Conn) (deliver, keep bool) {
	from := m.GetFrom()
	join, joinErr := isJoin(m, t.voters)
	switch {
	case m.GetTo() != t.self:
		t.logger.Warn("raft message not addressed to this node; closing the connection", "from", from, "to", m.GetTo(), "remote", c.RemoteAddr().String())
		return false, false
	case joinErr != nil:
		t.logger.Warn("metadata quorum configuration change refused; closing the connection", "from", from, "err", joinErr, "remote", c.RemoteAddr().String())
		return false, false
	case t.peer(from) != nil:
		return true, true
	case !join || !t.voters[t.self]:
		t.logger.Warn("raft message from a node that is not a member of the metadata quorum; closing the connection", "from", from, "to", m.GetTo(), "type", m.GetType().String(), "remote", c.RemoteAddr().String())
		return false, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if now := time.Now(); now.Sub(t.lastJoin) >= joinAcceptEvery {
		t.lastJoin = now
		return true, true
	}
	return false, true // the joining node asks again
}

// close stops the senders and closes every connection.
func (t *transport) close() error {
	t.mu.Lock()
	t.stopped = true
	t.mu.Unlock()
	close(t.stop)
	err := t.ln.Close()
	t.mu.Lock()
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
