package server

import "github.com/twmb/franz-go/pkg/kmsg"

// releasing is a response that lends buffers the handler wants back once
// the response has been encoded (a fetch's record sets, read into pooled
// buffers).
type releasing struct {
	kmsg.Response
	release func()
}

// WithRelease wraps resp so that the server calls release once it has
// encoded resp into its own buffer, or has dropped it unencoded. The
// handler must not touch what release returns before then, and the
// server never touches resp after it.
func WithRelease(resp kmsg.Response, release func()) kmsg.Response {
	return releasing{Response: resp, release: release}
}

// releaseResponse gives back what resp lent, if anything.
func releaseResponse(resp kmsg.Response) {
	if r, ok := resp.(releasing); ok {
		r.release()
	}
}

// Unwrap returns the response a WithRelease wrapper holds, or resp
// itself.
func Unwrap(resp kmsg.Response) kmsg.Response {
	if r, ok := resp.(releasing); ok {
		return r.Response
	}
	return resp
}
