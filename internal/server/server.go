// Package server is Weir's network edge: it accepts connections, reads
// length-prefixed Kafka frames, decodes them with kmsg, hands them to a
// Handler and writes the responses back in request order. It knows nothing
// of storage.
//
// Each connection has one reader and one writer goroutine. The reader calls
// Handler.Handle for each request in arrival order, so order-sensitive work
// (appends) happens in that order; Handle returns a Reply, and the writer
// calls the Replies in the same order. A Reply may block (waiting for an
// fsync or for fetchable data) without stopping the reader from handling
// the requests behind it: that is pipelining, bounded by
// queued.max.requests per connection.
package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/faults"
	"github.com/weir-broker/weir/internal/netretry"
)

// Reply produces the response to one request. A nil response sends
// nothing (acks=0); an error closes the connection after the responses
// before it have been written.
type Reply func() (kmsg.Response, error)

// Handler serves decoded requests.
type Handler interface {
	// Handle is called in the connection's reader goroutine, in arrival
	// order. req is at a version the handler advertises.
	Handle(ctx context.Context, c *Conn, req kmsg.Request) Reply
	// APIVersions lists the keys and version ranges the handler serves.
	APIVersions() []kmsg.ApiVersionsResponseApiKey
}

// Limits bound what one client can make the server hold.
type Limits struct {
	MaxFrameBytes   int32 // socket.request.max.bytes
	MaxConnections  int   // max.connections
	MaxInflightReqs int   // queued.max.requests, per connection
}

// responsePoints names the fault point of each API's response.
var responsePoints = func() [kmsg.MaxKey + 1]string {
	var p [kmsg.MaxKey + 1]string
	for k := range p {
		p[k] = strings.ToLower(kmsg.NameForKey(int16(k))) + ".response"
	}
	return p
}()

// Conn is one client connection as handlers see it.
type Conn struct {
	Remote   net.Addr
	ClientID string
	// Listener is the name of the listener the connection came in on
	// (PLAINTEXT, SSL, …): Metadata answers with that listener's
	// addresses.
	Listener string
	// Principal is who the client is, as Kafka writes it (User:NAME);
	// User:ANONYMOUS until something authenticates it.
	Principal string

	sasl saslState // read and written by the connection's reader only, but authed

	// followerFetch marks the request just dispatched as a follower's
	// fetch, for the observer (set and read by the reader only).
	followerFetch bool

	// muteUntil (Unix nanoseconds) holds back the connection's next
	// request while a quota throttles it (Mute).
	muteUntil atomic.Int64
}

// Mute stops reading the connection's requests for d, as Kafka mutes a
// throttled client's channel (KIP-219): the answer that says so goes out
// at once, the requests behind it wait. Safe from any goroutine.
func (c *Conn) Mute(d time.Duration) {
	if d <= 0 {
		return
	}
	until := time.Now().Add(d).UnixNano()
	for {
		old := c.muteUntil.Load()
		if old >= until || c.muteUntil.CompareAndSwap(old, until) {
			return
		}
	}
}

// Anonymous is the principal of a client nothing has authenticated.
const Anonymous = "User:ANONYMOUS"

// handshakeTimeout bounds a TLS handshake: a client that never finishes
// one is dropped.
const handshakeTimeout = 10 * time.Second

// Listener says what a Server's connections are.
type Listener struct {
	// Name is the listener's name; PLAINTEXT when empty.
	Name string
	// Principal, when set, names the client of a TLS connection from the
	// certificate it presented (nil when it presented none) once the
	// handshake has verified it; an error refuses the connection.
	Principal func(cert *x509.Certificate) (string, error)
	// SASL, when set, makes clients authenticate with SASL before any
	// other request (SASL_PLAINTEXT and SASL_SSL listeners; sasl.go).
	SASL SASL
	// Auth bounds the SASL exchange.
	Auth SASLSettings
	// Observer, when set, is told of requests, connections and failed
	// authentications (metrics).
	Observer Observer
}

// Server accepts Kafka connections on one listener.
type Server struct {
	ln       net.Listener
	h        Handler
	limits   Limits
	logger   *slog.Logger
	slots    chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
	versions map[int16][2]int16 // key -> min, max
	faults   *faults.Injector
	listener Listener
	rejects  *rejectLog
	observer Observer // nil: none
	// authFailures rate-limits the log lines of failed authentications.
	authFailures authFailureLog
}

// New serves h on ln until Close. inj, when not nil, injects faults at
// the response points (see internal/faults).
func New(ln net.Listener, h Handler, limits Limits, logger *slog.Logger, inj *faults.Injector) *Server {
	return NewListener(ln, Listener{}, h, limits, logger, inj)
}

// NewListener is New for one of several named listeners. A TLS listener
// (ln from tls.NewListener) has each connection's handshake completed,
// within handshakeTimeout, before its first request is read.
func NewListener(ln net.Listener, l Listener, h Handler, limits Limits, logger *slog.Logger, inj *faults.Injector) *Server {
	if l.Name == "" {
		l.Name = "PLAINTEXT"
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		ln: ln, h: h, limits: limits, logger: logger, listener: l, observer: l.Observer,
		slots: make(chan struct{}, limits.MaxConnections),
		ctx:   ctx, cancel: cancel,
		conns:    make(map[net.Conn]struct{}),
		versions: make(map[int16][2]int16),
		faults:   inj,
		rejects:  newRejectLog(logger, time.Now),
	}
	for _, k := range h.APIVersions() {
		s.versions[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
	}
	s.wg.Add(1)
	go s.accept()
	return s
}

// Addr is the listening address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops accepting, closes every connection and waits for their
// goroutines to end.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.cancel()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	var backoff netretry.Backoff
	var refused refusals
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			pause, log := backoff.Failed()
			if log {
				s.logger.Error("accept failed; accepting again after a pause", "err", err, "pause", pause)
			}
			select {
			case <-time.After(pause):
			case <-s.ctx.Done():
				return
			}
			continue
		}
		backoff.Accepted()
		select {
		case s.slots <- struct{}{}:
		default:
			refused.refuse(s.logger, nc.RemoteAddr(), time.Now())
			nc.Close()
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			<-s.slots
			return
		}
		s.conns[nc] = struct{}{}
		if s.observer != nil {
			s.observer.Connections(1)
		}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(nc)
	}
}

func (s *Server) serve(nc net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, nc)
		if s.observer != nil {
			s.observer.Connections(-1)
		}
		s.mu.Unlock()
		nc.Close()
		<-s.slots
	}()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	c := &Conn{Remote: nc.RemoteAddr(), Listener: s.listener.Name, Principal: Anonymous}
	if tc, ok := nc.(*tls.Conn); ok {
		if err := s.handshake(ctx, tc, c); err != nil {
			s.logger.Info("TLS connection refused", "remote", c.Remote, "listener", c.Listener, "err", err)
			return
		}
	}
	if s.listener.SASL != nil && s.listener.Auth.Timeout > 0 {
		// A client that never authenticates is dropped.
		t := time.AfterFunc(s.listener.Auth.Timeout, func() {
			if !c.sasl.authed.Load() {
				nc.Close()
			}
		})
		defer t.Stop()
	}
	replies := make(chan pending, s.limits.MaxInflightReqs)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		s.write(nc, replies)
		cancel()
		nc.Close() // unblocks the reader
	}()
	err := s.read(ctx, nc, c, replies)
	close(replies)
	<-writerDone
	var rej *rejection
	switch {
	case errors.As(err, &rej):
		s.rejects.log(c.Remote, c.Listener, c.ClientID, rej)
	case err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && ctx.Err() == nil:
		s.logger.Info("closing connection", "remote", c.Remote, "client", c.ClientID, "err", err)
	}
}

type pending struct {
	key           int16
	correlationID int32
	reply         Reply
	// For the observer: when the request arrived, its size, and whether
	// it is a follower's fetch.
	arrived  time.Time
	size     int
	follower bool
}

// read handles frames until the connection fails or a frame is bad.
func (s *Server) read(ctx context.Context, nc net.Conn, c *Conn, replies chan<- pending) error {
	br := bufio.NewReaderSize(nc, 64<<10)
	var sizeBuf [4]byte
	for {
		if until := c.muteUntil.Load(); until != 0 {
			if wait := time.Until(time.Unix(0, until)); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		if _, err := io.ReadFull(br, sizeBuf[:]); err != nil {
			return err
		}
		size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
		limit, limitName := s.limits.MaxFrameBytes, "socket.request.max.bytes"
		if s.listener.SASL != nil && !c.sasl.authed.Load() {
			// A client still authenticating is a stranger: its frames are
			// bounded far lower, as Kafka bounds them.
			limit, limitName = s.listener.Auth.MaxReceive, "sasl.server.max.receive.size"
		}
		if size < 0 || size > limit {
			// Name the API when its header has already arrived; never
			// wait for more of a frame that is refused.
			key, version := int16(-1), int16(-1)
			if b, err := br.Peek(min(4, br.Buffered())); err == nil && len(b) == 4 {
				key, version = int16(binary.BigEndian.Uint16(b)), int16(binary.BigEndian.Uint16(b[2:]))
			}
			return reject(reasonTooLarge, key, version, "frame of %d bytes is outside 0..%d (%s)", size, limit, limitName)
		}
		frame, err := readFrame(br, int(size))
		if err != nil {
			return err
		}
		h, body, err := parseHeader(frame)
		if err != nil {
			key, version := int16(-1), int16(-1)
			if len(frame) >= 4 {
				key, version = int16(binary.BigEndian.Uint16(frame)), int16(binary.BigEndian.Uint16(frame[2:]))
			}
			return reject(reasonMalformed, key, version, "request header: %v", err)
		}
		c.ClientID = h.clientID
		arrived := time.Now()
		reply, err := s.dispatch(ctx, c, h, body)
		if err != nil {
			return err
		}
		select {
		case replies <- pending{key: h.key, correlationID: h.correlationID, reply: reply, arrived: arrived, size: int(size) + 4, follower: c.followerFetch}:
		case <-ctx.Done():
			return ctx.Err()
		}
		if c.sasl.failed {
			return errAuthFailed
		}
	}
}

// errAuthFailed ends a connection whose SASL authentication failed, once
// the answer saying so is on its way.
var errAuthFailed = errors.New("SASL authentication failed")

func (s *Server) dispatch(ctx context.Context, c *Conn, h header, body []byte) (Reply, error) {
	vr, known := s.versions[h.key]
	if h.key == 18 && (!known || h.version > vr[1]) {
		// A client newer than us: answer at v0 with UNSUPPORTED_VERSION and
		// our ranges, so it can retry at a version we serve.
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.ErrorCode = 35
		resp.ApiKeys = s.h.APIVersions()
		return func() (kmsg.Response, error) { return resp, nil }, nil
	}
	if !known {
		return nil, reject(reasonUnsupportedAPI, h.key, h.version, "api key %d is not served (ApiVersions lists those that are)", h.key)
	}
	if h.version < vr[0] || h.version > vr[1] {
		return nil, reject(reasonUnsupportedVersion, h.key, h.version, "%s v%d is not served (v%d to v%d are)", kmsg.NameForKey(h.key), h.version, vr[0], vr[1])
	}
	if err := s.gate(c, h.key, h.version, time.Now()); err != nil {
		return nil, err
	}
	req, err := decodeRequest(h, body)
	if err != nil {
		return nil, reject(reasonMalformed, h.key, h.version, "%v", err)
	}
	if isSASLKey(h.key) {
		return s.handleSASL(c, req), nil
	}
	if f, ok := req.(*kmsg.FetchRequest); ok {
		c.followerFetch = f.ReplicaID >= 0 || (f.Version >= 15 && f.ReplicaState.ID >= 0)
	} else {
		c.followerFetch = false
	}
	return s.h.Handle(ctx, c, req), nil
}

// readFrame reads a frame of size bytes without trusting the size prefix
// with one allocation: it first reads up to 1 MiB, and only a peer that
// has sent that much gets a buffer of the full size. A peer that claims a
// large frame and sends little holds little memory.
func readFrame(r io.Reader, size int) ([]byte, error) {
	const first = 1 << 20
	buf := make([]byte, min(size, first))
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	if size <= first {
		return buf, nil
	}
	full := make([]byte, size)
	copy(full, buf)
	if _, err := io.ReadFull(r, full[first:]); err != nil {
		return nil, err
	}
	return full, nil
}

// refusalLogWindow is how long connections refused at max.connections
// are counted rather than logged after one is: clients that reconnect at
// once must not flood the log.
const refusalLogWindow = 30 * time.Second

// refusals logs connections refused at max.connections, one line per
// refusalLogWindow saying how many were refused since the last line.
// The accept loop owns it.
type refusals struct {
	logged     time.Time
	suppressed int
}

func (r *refusals) refuse(logger *slog.Logger, remote net.Addr, now time.Time) {
	if !r.logged.IsZero() && now.Sub(r.logged) < refusalLogWindow {
		r.suppressed++
		return
	}
	logger.Warn("connection refused: max.connections reached", "remote", remote, "refused_not_logged_since_last", r.suppressed)
	r.logged, r.suppressed = now, 0
}

// write sends replies in order until the channel closes or a write fails.
func (s *Server) write(nc net.Conn, replies <-chan pending) {
	bw := bufio.NewWriterSize(nc, 64<<10)
	var buf []byte
	failed := false
	for p := range replies {
		if failed {
			continue // drain so the reader never blocks on a dead writer
		}
		resp, err := p.reply()
		if err != nil {
			s.logger.Info("closing connection after request error", "remote", nc.RemoteAddr(), "err", err)
			failed = true
			bw.Flush()
			nc.Close()
			continue
		}
		closeAfter := false
		switch a := s.faults.Fire(responsePoints[p.key]); a.Kind {
		case faults.Drop:
			s.logger.Warn("fault: response dropped, connection closed", "point", responsePoints[p.key])
			releaseResponse(resp)
			failed = true
			bw.Flush()
			nc.Close()
			continue
		case faults.Delay:
			time.Sleep(a.Delay)
		case faults.Close:
			closeAfter = true
		case faults.Exit:
			fmt.Fprintf(os.Stderr, "weir: fault: exiting at %s\n", responsePoints[p.key])
			os.Exit(3)
		}
		if resp == nil {
			if closeAfter {
				failed = true
				bw.Flush()
				nc.Close()
			}
			continue
		}
		if s.observer != nil {
			s.observer.Errors(p.key, p.follower, Unwrap(resp))
		}
		buf = appendResponse(buf[:0], p.correlationID, resp)
		releaseResponse(resp) // encoded: what it lent is no longer read
		if _, err := bw.Write(buf); err != nil {
			failed = true
			nc.Close()
			continue
		}
		if s.observer != nil {
			s.observer.Request(p.key, p.follower, time.Since(p.arrived), p.size, len(buf))
		}
		if closeAfter {
			failed = true
			bw.Flush()
			nc.Close()
			continue
		}
		if len(replies) == 0 {
			if err := bw.Flush(); err != nil {
				failed = true
				nc.Close()
			}
		}
	}
	if !failed {
		bw.Flush()
	}
}

// handshake completes a TLS handshake within handshakeTimeout and names
// the client from its certificate.
func (s *Server) handshake(ctx context.Context, tc *tls.Conn, c *Conn) error {
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return err
	}
	if s.listener.Principal == nil {
		return nil
	}
	var cert *x509.Certificate
	if peers := tc.ConnectionState().PeerCertificates; len(peers) > 0 {
		cert = peers[0]
	}
	p, err := s.listener.Principal(cert)
	if err != nil {
		return err
	}
	c.Principal = p
	return nil
}
