// Package netretry is how a listener's accept loop survives a failed
// accept: out of file descriptors or memory, or a connection aborted
// before it was taken, the listener itself is fine, and what the
// operating system refuses now it may allow once some connections close.
// Ending the loop instead would leave the node looking alive while it
// takes no connection until restarted.
package netretry

import "time"

const (
	firstPause = 5 * time.Millisecond
	maxPause   = time.Second
)

// Backoff is the pause after each failed accept in a row: 5 ms, doubling
// up to 1 s. The zero value is ready; one loop owns it.
type Backoff struct{ pause time.Duration }

// Failed returns how long to pause after a failed accept, and whether to
// log this failure: the first of a run, then about once a second, so a
// listener out of descriptors does not flood its log.
func (b *Backoff) Failed() (pause time.Duration, log bool) {
	b.pause = min(max(2*b.pause, firstPause), maxPause)
	return b.pause, b.pause == firstPause || b.pause == maxPause
}

// Accepted ends a run of failures.
func (b *Backoff) Accepted() { b.pause = 0 }
