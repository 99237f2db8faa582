package broker

// Broker registration in a cluster (KIP-631): once the metadata quorum
// has a leader, the node records its id, the incarnation of this process
// and its advertised Kafka address in the image, which is where Metadata
// and DescribeCluster list brokers from and where placement finds them. A
// registration starts fenced; the heartbeats that follow it
// (broker_lifecycle.go) get it unfenced.

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/weir-broker/weir/internal/metadata"
)

// registerRetry is the pause between attempts to register.
const registerRetry = 200 * time.Millisecond

func newIncarnation() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// registered reports whether the image holds this process's registration.
func (b *Broker) registered() bool {
	var ok bool
	b.ctrl.View(func(im *metadata.Image) {
		ok = im.Brokers[b.cfg.NodeID].Incarnation == b.incarnation
	})
	return ok
}

// registerLoop registers this process until its registration is in the
// image or the broker stops, then heartbeats. Attempts wait for the
// quorum to have a leader; a failed or lost one is tried again.
func (b *Broker) registerLoop() {
	defer b.wg.Done()
	self := b.self()
	host, port := self.Host, self.Port
	for attempt := 1; !b.registered(); attempt++ {
		if b.ctrl.ControllerID() >= 0 {
			err := b.ctrl.RegisterBroker(b.cfg.NodeID, b.incarnation, host, port, self.Listeners, b.stop)
			if err == nil {
				continue
			}
			b.logger.Debug("broker registration failed; retrying", "attempt", attempt, "err", err)
		}
		select {
		case <-b.stop:
			return
		case <-time.After(registerRetry):
		}
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.bootstrapCredentials()
	}()
	b.logger.Info("broker registered", "node", b.cfg.NodeID, "incarnation", b.incarnation, "host", host, "port", port, "listeners", self.Listeners)
	b.life.run()
}
