package server

// SASL on SASL_PLAINTEXT and SASL_SSL listeners (KIP-43, KIP-152,
// KIP-368). Authentication is a property of the connection, so the
// server runs it: a client sends SaslHandshake v1 naming a mechanism, then
// SaslAuthenticate requests carrying the mechanism's messages until the
// exchange ends. Before it has authenticated, a client may send only
// ApiVersions and those two; anything else closes the connection, as
// does a failed exchange (after connection.failed.authentication.delay.ms,
// so guessing passwords is slow). With connections.max.reauth.ms set, the
// session lasts that long: the client re-authenticates on the same
// connection before it ends, as the same principal, or the connection is
// closed at its next request.
//
// SaslHandshake v0, after which raw SASL tokens would follow without
// Kafka framing, is answered UNSUPPORTED_VERSION and the connection
// closed: every maintained client sends v1. (ApiVersions still lists v0:
// librdkafka enables SASL only when the range includes it.)

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SASL authenticates the clients of a SASL listener.
type SASL interface {
	// Mechanisms are the enabled mechanisms (sasl.enabled.mechanisms).
	Mechanisms() []string
	// Begin starts an exchange of mechanism for a client at remote; ok is
	// false when the mechanism is not enabled.
	Begin(mechanism string, remote net.Addr) (ex SASLExchange, ok bool)
}

// SASLExchange is one authentication attempt.
type SASLExchange interface {
	// Step takes the client's next message and returns the server's
	// answer. Once the exchange has succeeded, principal names the client
	// (User:NAME); err means it failed.
	Step(in []byte) (out []byte, principal string, err error)
}

// SASLSettings are the limits of SASL listeners.
type SASLSettings struct {
	// Reauth is connections.max.reauth.ms: the session's lifetime; 0 for
	// no limit.
	Reauth time.Duration
	// FailureDelay is connection.failed.authentication.delay.ms: how long
	// a failed attempt's answer waits before the connection closes.
	FailureDelay time.Duration
	// Timeout is how long a new connection has to authenticate.
	Timeout time.Duration
	// MaxReceive is sasl.server.max.receive.size: the largest frame a
	// client may send before it has authenticated.
	MaxReceive int32
}

// saslState is a connection's authentication.
type saslState struct {
	mechanism string
	ex        SASLExchange // the exchange in progress, or nil
	authed    atomic.Bool  // read by the timeout's goroutine
	expiry    time.Time    // zero: none
	failed    bool         // the connection closes after the answer
}

const (
	keySaslHandshake    = 17
	keyApiVersions      = 18
	keySaslAuthenticate = 36
)

// gate refuses a request the connection may not send yet.
func (s *Server) gate(c *Conn, key, version int16, now time.Time) error {
	if s.listener.SASL == nil || key == keyApiVersions || key == keySaslHandshake || key == keySaslAuthenticate {
		return nil
	}
	if !c.sasl.authed.Load() {
		return reject(reasonUnauthenticated, key, version, "%s before SASL authentication", kmsg.NameForKey(key))
	}
	if !c.sasl.expiry.IsZero() && now.After(c.sasl.expiry) {
		return reject(reasonUnauthenticated, key, version, "%s after the SASL session expired (connections.max.reauth.ms): the client did not re-authenticate", kmsg.NameForKey(key))
	}
	return nil
}

// handleSASL serves SaslHandshake and SaslAuthenticate.
func (s *Server) handleSASL(c *Conn, req kmsg.Request) Reply {
	switch r := req.(type) {
	case *kmsg.SASLHandshakeRequest:
		resp := r.ResponseKind().(*kmsg.SASLHandshakeResponse)
		if s.listener.SASL == nil {
			resp.ErrorCode = kerr.IllegalSaslState.Code
			c.sasl.failed = true
			return answer(resp)
		}
		resp.SupportedMechanisms = s.listener.SASL.Mechanisms()
		if r.Version < 1 {
			// v0 would be followed by raw SASL tokens outside Kafka's
			// framing; every maintained client sends v1.
			resp.ErrorCode = kerr.UnsupportedVersion.Code
			c.sasl.failed = true
			return answer(resp)
		}
		if c.sasl.ex != nil {
			resp.ErrorCode = kerr.IllegalSaslState.Code
			c.sasl.failed = true
			return answer(resp)
		}
		if c.sasl.authed.Load() && r.Mechanism != c.sasl.mechanism {
			// KIP-368: a re-authentication keeps the mechanism.
			resp.ErrorCode = kerr.IllegalSaslState.Code
			c.sasl.failed = true
			return answer(resp)
		}
		ex, ok := s.listener.SASL.Begin(r.Mechanism, c.Remote)
		if !ok {
			resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
			c.sasl.failed = true
			return answer(resp)
		}
		c.sasl.mechanism, c.sasl.ex = r.Mechanism, ex
		return answer(resp)
	case *kmsg.SASLAuthenticateRequest:
		resp := r.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		if c.sasl.ex == nil {
			resp.ErrorCode = kerr.IllegalSaslState.Code
			msg := "SaslAuthenticate without a SaslHandshake naming the mechanism first"
			resp.ErrorMessage = &msg
			c.sasl.failed = true
			return answer(resp)
		}
		if s.authFailures.backlogged(hostOf(c.Remote), time.Now()) {
			// The source's failures are queued far ahead: refuse without
			// spending the exchange's work (PLAIN derives the key).
			c.sasl.ex = nil
			c.sasl.failed = true
			resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
			msg := "too many failed authentications from this address; try again later"
			resp.ErrorMessage = &msg
			return answer(resp)
		}
		out, principal, err := c.sasl.ex.Step(r.SASLAuthBytes)
		if err != nil {
			c.sasl.ex = nil
			c.sasl.failed = true
			resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
			msg := fmt.Sprintf("Authentication failed with SASL mechanism %s: %v", c.sasl.mechanism, publicReason(err))
			resp.ErrorMessage = &msg
			s.authFailures.note(s, c, err)
			if s.observer != nil {
				s.observer.AuthenticationFailed()
			}
			delay := s.authFailures.pace(hostOf(c.Remote), s.listener.Auth.FailureDelay, time.Now())
			return func() (kmsg.Response, error) {
				time.Sleep(delay)
				return resp, nil
			}
		}
		resp.SASLAuthBytes = out
		if principal == "" {
			return answer(resp) // the exchange goes on
		}
		c.sasl.ex = nil
		if c.sasl.authed.Load() && principal != c.Principal {
			// KIP-368: re-authentication may not change who the client is.
			resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
			msg := "re-authentication as another principal is not allowed"
			resp.ErrorMessage = &msg
			c.sasl.failed = true
			return answer(resp)
		}
		c.Principal = principal
		c.sasl.authed.Store(true)
		if s.listener.Auth.Reauth > 0 {
			c.sasl.expiry = time.Now().Add(s.listener.Auth.Reauth)
			resp.SessionLifetimeMillis = s.listener.Auth.Reauth.Milliseconds()
		}
		return answer(resp)
	}
	return nil
}

func answer(resp kmsg.Response) Reply { return func() (kmsg.Response, error) { return resp, nil } }

// ErrBadCredentials is the error an exchange returns for a wrong user or
// password; its text is what the client is told. Other errors (malformed
// messages) are told as they are.
var ErrBadCredentials = errors.New("invalid credentials")

// publicReason is what a client is told of a failure: never more than
// that the credentials were wrong, so a client cannot tell an unknown
// user from a wrong password.
func publicReason(err error) error {
	if errors.Is(err, ErrBadCredentials) {
		return ErrBadCredentials
	}
	return err
}

// authFailureLog rate-limits the log lines of failed authentications:
// one per source host a minute, with the count of those not logged. The
// secret is never logged, only the mechanism and the reason.
type authFailureLog struct {
	mu    sync.Mutex
	hosts map[string]*hostFailures
}

type hostFailures struct {
	logged  time.Time
	skipped int
	// next is when the source's next failed attempt may be answered:
	// failures from one address are answered one per delay, however many
	// connections it opens.
	next time.Time
}

// maxFailureBacklog is how far ahead a source's failures may be queued;
// beyond it new attempts are refused without being checked.
const maxFailureBacklog = 10 * time.Second

// pace returns how long the answer to a failed attempt from host waits:
// one delay after the source's previous failure answer.
func (l *authFailureLog) pace(host string, delay time.Duration, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	hf := l.hostLocked(host)
	at := now
	if hf.next.After(at) {
		at = hf.next
	}
	at = at.Add(delay)
	hf.next = at
	return at.Sub(now)
}

// backlogged reports whether host's failures are queued more than
// maxFailureBacklog ahead.
func (l *authFailureLog) backlogged(host string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	hf := l.hosts[host]
	return hf != nil && hf.next.Sub(now) > maxFailureBacklog
}

func (l *authFailureLog) hostLocked(host string) *hostFailures {
	if l.hosts == nil {
		l.hosts = make(map[string]*hostFailures)
	}
	hf := l.hosts[host]
	if hf == nil {
		hf = &hostFailures{}
		l.hosts[host] = hf
	}
	return hf
}

const authFailureLogEvery = time.Minute

func (l *authFailureLog) note(s *Server, c *Conn, err error) {
	host := hostOf(c.Remote)
	now := time.Now()
	l.mu.Lock()
	hf := l.hostLocked(host)
	logIt := now.Sub(hf.logged) >= authFailureLogEvery
	skipped := hf.skipped
	if logIt {
		hf.logged, hf.skipped = now, 0
	} else {
		hf.skipped++
	}
	if len(l.hosts) > 10000 {
		// Bounded memory under a spray of source addresses.
		for h, f := range l.hosts {
			if now.Sub(f.logged) >= authFailureLogEvery && now.After(f.next) {
				delete(l.hosts, h)
			}
		}
	}
	l.mu.Unlock()
	if logIt {
		s.logger.Info("SASL authentication failed", "remote", c.Remote, "listener", c.Listener,
			"mechanism", c.sasl.mechanism, "reason", err, "failures_not_logged_since_last", skipped)
	}
}

// isSASLKey reports whether key is one of the APIs the server answers
// itself for authentication.
func isSASLKey(key int16) bool { return key == keySaslHandshake || key == keySaslAuthenticate }
