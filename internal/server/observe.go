package server

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Observer is told what the server does, for metrics: it must be cheap,
// since it is called once per request on the produce and fetch paths, and
// safe for concurrent use.
type Observer interface {
	// Request is one answered request of API key (follower marks a
	// replica's fetch), the time from its arrival to its answer's write,
	// and the bytes of the request and of the answer (0 when none was
	// sent).
	Request(key int16, follower bool, d time.Duration, in, out int)
	// Errors is told each answer before it is sent, to count the error
	// codes it carries; resp must not be kept.
	Errors(key int16, follower bool, resp kmsg.Response)
	// Connections changes the count of open connections by delta.
	Connections(delta int)
	// AuthenticationFailed counts one failed authentication.
	AuthenticationFailed()
}
