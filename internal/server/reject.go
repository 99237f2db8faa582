package server

import (
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Reasons for closing a connection on a request instead of answering it.
// Kafka answers none of these (it cannot know how to encode an answer to
// an API or version it does not serve, nor trust a frame it cannot read),
// so the client sees only the connection end — "unexpected EOF" — and the
// broker's log is where the user learns why.
const (
	reasonUnsupportedAPI     = "unsupported api"
	reasonUnsupportedVersion = "unsupported version"
	reasonTooLarge           = "too large"
	reasonMalformed          = "malformed"
	reasonUnauthenticated    = "unauthenticated"
)

// rejection is a request the server refuses by closing the connection.
type rejection struct {
	reason  string
	key     int16 // -1 when the request header was not read
	version int16 // -1 when the request header was not read
	detail  string
}

func (r *rejection) Error() string { return r.reason + ": " + r.detail }

func reject(reason string, key, version int16, format string, args ...any) *rejection {
	return &rejection{reason: reason, key: key, version: version, detail: fmt.Sprintf(format, args...)}
}

const (
	// rejectLogWindow is how long a peer host's rejections for one
	// reason are counted rather than logged after one is logged: a
	// client that reconnects and retries at once must not flood the log.
	rejectLogWindow = 30 * time.Second
	// maxRejectLogKeys bounds the memory the limiter keeps: past it,
	// entries older than the window are dropped, and while every entry
	// is recent, rejections from new peers are not logged.
	maxRejectLogKeys = 1024
)

// rejectLog logs rejected requests at info level, at most one line per
// peer host and reason per rejectLogWindow; the next line says how many
// were not logged in between.
type rejectLog struct {
	logger *slog.Logger
	now    func() time.Time

	mu   sync.Mutex // guards last; held for map updates only, never across the log write
	last map[rejectLogKey]*rejectLogEntry
}

type rejectLogKey struct {
	host   string
	reason string
}

type rejectLogEntry struct {
	at         time.Time // when a line was last written
	suppressed int       // rejections since then that were not logged
}

func newRejectLog(logger *slog.Logger, now func() time.Time) *rejectLog {
	return &rejectLog{logger: logger, now: now, last: make(map[rejectLogKey]*rejectLogEntry)}
}

// log records that the connection from remote to listener (client id
// clientID) was closed on rej, writing a line unless one was written for
// the same peer host and reason within the window.
func (l *rejectLog) log(remote net.Addr, listener, clientID string, rej *rejection) {
	k := rejectLogKey{host: hostOf(remote), reason: rej.reason}
	now := l.now()
	l.mu.Lock()
	e := l.last[k]
	if e != nil && now.Sub(e.at) < rejectLogWindow {
		e.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := 0
	if e != nil {
		suppressed = e.suppressed
		e.at, e.suppressed = now, 0
	} else {
		if len(l.last) >= maxRejectLogKeys {
			l.pruneLocked(now)
		}
		if len(l.last) >= maxRejectLogKeys {
			l.mu.Unlock()
			return
		}
		l.last[k] = &rejectLogEntry{at: now}
	}
	l.mu.Unlock()

	attrs := []any{"remote", remote.String(), "listener", listener, "client", clientID, "reason", rej.reason}
	if rej.key >= 0 {
		attrs = append(attrs, "api_key", rej.key)
		if name := kmsg.NameForKey(rej.key); name != "" && name != "Unknown" {
			attrs = append(attrs, "api", name)
		}
		attrs = append(attrs, "api_version", rej.version)
	}
	attrs = append(attrs, "detail", rej.detail)
	if suppressed > 0 {
		attrs = append(attrs, "not_logged_since_last", suppressed)
	}
	l.logger.Info("closing connection: request not served", attrs...)
}

// pruneLocked drops the entries whose window has passed.
func (l *rejectLog) pruneLocked(now time.Time) {
	for k, e := range l.last {
		if now.Sub(e.at) >= rejectLogWindow {
			delete(l.last, k)
		}
	}
}

// hostOf is the peer's host without its port: a client that reconnects
// comes from a new port each time.
func hostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
