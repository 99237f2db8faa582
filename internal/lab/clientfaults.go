package lab

import (
	"context"
	"encoding/binary"
	"math/rand"
	"net"
	"sync"
)

// clientFault is a fault injected on the client's side of the produce
// connections, for clusters whose brokers take no fault spec. It mirrors
// the broker-side specs: the third produce request is hit, then each one
// with probability clientFaultProb.
type clientFault int

const (
	noClientFault clientFault = iota
	// clientLostAck lets a produce request reach the broker, then closes
	// the connection before the response can be read: the broker acted,
	// the client never hears of it.
	clientLostAck
	// clientConnDrop closes the connection instead of sending a produce
	// request; responses still owed on it are lost with it.
	clientConnDrop
)

// clientFaultProb is the chance a produce request is hit after the first.
const clientFaultProb = 0.04

// produceAPIKey is the Kafka API key of Produce.
const produceAPIKey = 0

// faultDialer hands out connections that inject f on produce requests,
// with draws from one seeded source shared by every connection.
type faultDialer struct {
	kind clientFault

	mu       sync.Mutex
	rng      *rand.Rand
	produces int
	fired    int
}

func newFaultDialer(kind clientFault, seed int64) *faultDialer {
	return &faultDialer{kind: kind, rng: rand.New(rand.NewSource(seed))}
}

// dial is a kgo.Dialer.
func (d *faultDialer) dial(ctx context.Context, network, host string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, host)
	if err != nil {
		return nil, err
	}
	return &faultConn{Conn: c, d: d}, nil
}

// hit decides whether this produce request gets the fault.
func (d *faultDialer) hit() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.produces++
	if d.produces == 3 || d.rng.Float64() < clientFaultProb {
		d.fired++
		return true
	}
	return false
}

// firedCount is how many requests were hit.
func (d *faultDialer) firedCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fired
}

// faultConn recognises produce requests in what the client writes: kgo
// writes each request whole, size prefix first, in one Write.
type faultConn struct {
	net.Conn
	d *faultDialer
}

func (c *faultConn) Write(b []byte) (int, error) {
	if len(b) < 6 || int16(binary.BigEndian.Uint16(b[4:6])) != produceAPIKey || !c.d.hit() {
		return c.Conn.Write(b)
	}
	if c.d.kind == clientConnDrop {
		c.Conn.Close()
		return 0, net.ErrClosed
	}
	n, err := c.Conn.Write(b)
	c.Conn.Close()
	return n, err
}
