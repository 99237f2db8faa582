package broker

// The broker side of KIP-631's lifecycle, in a cluster: once registered,
// the node sends the active controller a BrokerHeartbeat every
// broker.heartbeat.interval.ms with its broker epoch and the metadata
// offset it has applied, and learns whether it is fenced. While fenced it
// heartbeats more often, so it is unfenced soon after it has caught up. A
// controlled shutdown sends WantShutdown and waits until the controller
// has moved the node's leaderships away and answers ShouldShutdown, or
// broker.session.timeout.ms passes.
//
// The controller is found in this node's own image (the quorum's leader
// and its registered Kafka address), not through Metadata, which lists
// unfenced brokers only: a fenced node may be the controller. A heartbeat
// to this very node is a call, not a request.

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/controller"
	"github.com/weir-broker/weir/internal/metadata"
)

// fencedHeartbeatInterval is the pause between heartbeats while the node
// is fenced, shutting down or failed to reach the controller.
const fencedHeartbeatInterval = 100 * time.Millisecond

// lifecycle runs this node's heartbeats. Its client and address are owned
// by the heartbeat goroutine.
type lifecycle struct {
	b        *Broker
	interval time.Duration
	session  time.Duration

	running      atomic.Bool   // heartbeats have started
	shutdownOnce sync.Once     // guards closing wantShutdown
	wantShutdown chan struct{} // closed when a controlled shutdown begins
	shutdownOK   chan struct{} // closed when the controller says ShouldShutdown
	done         chan struct{} // closed when the heartbeat goroutine ends

	client     *kgo.Client
	clientAddr string
}

func newLifecycle(b *Broker) *lifecycle {
	return &lifecycle{
		b:            b,
		interval:     time.Duration(b.settings.Int("broker.heartbeat.interval.ms")) * time.Millisecond,
		session:      time.Duration(b.settings.Int("broker.session.timeout.ms")) * time.Millisecond,
		wantShutdown: make(chan struct{}),
		shutdownOK:   make(chan struct{}),
		done:         make(chan struct{}),
	}
}

// run heartbeats until the broker stops or the controller allows the
// controlled shutdown; the caller holds a share of b.wg.
func (l *lifecycle) run() {
	l.running.Store(true)
	defer close(l.done)
	defer l.closeClient()
	fenced := true
	timer := time.NewTimer(0)
	defer timer.Stop()
	wantShutdown := l.wantShutdown
	for {
		select {
		case <-l.b.stop:
			return
		case <-wantShutdown:
			wantShutdown = nil // heartbeat now, once
		case <-timer.C:
		}
		shutting := l.shuttingDown()
		res, err := l.beat(shutting)
		wait := l.interval
		switch {
		case err != nil:
			l.b.logger.Debug("broker heartbeat failed", "err", err)
			wait = min(l.interval, fencedHeartbeatInterval)
		case shutting && res.ShouldShutdown:
			close(l.shutdownOK)
			return
		default:
			if res.Fenced != fenced {
				l.b.logger.Info("broker fencing changed", "node", l.b.cfg.NodeID, "fenced", res.Fenced, "caught_up", res.CaughtUp)
				fenced = res.Fenced
			}
			if res.Fenced || shutting {
				wait = min(l.interval, fencedHeartbeatInterval)
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

func (l *lifecycle) shuttingDown() bool {
	select {
	case <-l.wantShutdown:
		return true
	default:
		return false
	}
}

// beat sends one heartbeat to the active controller and returns its
// answer.
func (l *lifecycle) beat(shutting bool) (controller.HeartbeatResult, error) {
	b := l.b
	ctrlID := b.ctrl.ControllerID()
	if ctrlID < 0 {
		return controller.HeartbeatResult{}, fmt.Errorf("the metadata quorum has no leader")
	}
	var hb controller.Heartbeat
	var addr string
	var err error
	b.ctrl.View(func(im *metadata.Image) {
		me := im.Brokers[b.cfg.NodeID]
		if me.Incarnation != b.incarnation {
			err = fmt.Errorf("this process's registration is not in the image")
			return
		}
		hb = controller.Heartbeat{NodeID: b.cfg.NodeID, Epoch: me.Epoch, AppliedOffset: im.Offset, WantShutdown: shutting}
		cb, ok := im.Brokers[ctrlID]
		if !ok {
			err = fmt.Errorf("controller %d has not registered its Kafka address yet", ctrlID)
			return
		}
		addr = net.JoinHostPort(cb.Host, strconv.Itoa(int(cb.Port)))
	})
	if err != nil {
		return controller.HeartbeatResult{}, err
	}
	if ctrlID == b.cfg.NodeID {
		return b.ctrl.BrokerHeartbeat(hb)
	}
	return l.send(addr, hb)
}

// send sends hb as a BrokerHeartbeat request to the controller at addr.
func (l *lifecycle) send(addr string, hb controller.Heartbeat) (controller.HeartbeatResult, error) {
	if l.client == nil || l.clientAddr != addr {
		l.closeClient()
		cl, err := kgo.NewClient(l.b.peerOpts(kgo.SeedBrokers(addr), kgo.DialTimeout(min(l.session, 5*time.Second)))...)
		if err != nil {
			return controller.HeartbeatResult{}, err
		}
		l.client, l.clientAddr = cl, addr
	}
	req := kmsg.NewPtrBrokerHeartbeatRequest()
	req.BrokerID, req.BrokerEpoch, req.CurrentMetadataOffset = hb.NodeID, hb.Epoch, hb.AppliedOffset
	req.WantShutdown = hb.WantShutdown
	ctx, cancel := context.WithTimeout(context.Background(), min(l.session, 5*time.Second))
	defer cancel()
	go func() {
		// A stopping broker does not wait out a request in flight.
		select {
		case <-l.b.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	kresp, err := l.client.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		return controller.HeartbeatResult{}, err
	}
	resp := kresp.(*kmsg.BrokerHeartbeatResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return controller.HeartbeatResult{}, fmt.Errorf("controller at %s: %w", addr, err)
	}
	return controller.HeartbeatResult{CaughtUp: resp.IsCaughtUp, Fenced: resp.IsFenced, ShouldShutdown: resp.ShouldShutdown}, nil
}

func (l *lifecycle) closeClient() {
	if l.client != nil {
		l.client.Close()
		l.client, l.clientAddr = nil, ""
	}
}

// shutdown runs the controlled shutdown: it asks the controller to move
// this node's leaderships away and waits until the controller allows the
// shutdown, at most broker.session.timeout.ms (after which the controller
// would fence the node anyway). A node that never started heartbeats has
// nothing to hand over.
func (l *lifecycle) shutdown() {
	l.shutdownOnce.Do(func() {
		if !l.running.Load() {
			return
		}
		start := time.Now()
		led := l.b.leadsAnyPartition()
		close(l.wantShutdown)
		timeout := time.NewTimer(l.session)
		defer timeout.Stop()
		select {
		case <-l.shutdownOK:
		case <-l.done: // the heartbeats ended (after shutdownOK, or the broker stopped)
		case <-timeout.C:
		}
		select {
		case <-l.shutdownOK:
			l.b.logger.Info("controlled shutdown done: the controller moved this node's leaderships away", "node", l.b.cfg.NodeID, "took", time.Since(start).Round(time.Millisecond))
			if led {
				l.tellClients(timeout.C)
			}
		default:
			l.b.logger.Warn("controlled shutdown not confirmed by the controller; stopping anyway", "node", l.b.cfg.NodeID, "waited", time.Since(start).Round(time.Millisecond))
		}
	})
}

// shutdownLinger is how long a node that led partitions keeps answering
// after they moved, before its listener stops.
const shutdownLinger = 300 * time.Millisecond

// tellClients waits until this node has applied the change that moved its
// leaderships (or until expired fires), then keeps serving for
// shutdownLinger: a client writing or reading here meanwhile is answered
// NOT_LEADER_OR_FOLLOWER with the new leader (KIP-951) and moves at once,
// where a broken connection would leave it waiting for its next metadata
// refresh (franz-go's metadata min age is 5 s).
func (l *lifecycle) tellClients(expired <-chan time.Time) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for l.b.leadsAnyPartition() {
		select {
		case <-tick.C:
		case <-expired:
			return
		}
	}
	select {
	case <-time.After(shutdownLinger):
	case <-expired:
	}
}

// leadsAnyPartition reports whether this node's image names it the leader
// of any partition.
func (b *Broker) leadsAnyPartition() bool {
	led := false
	b.ctrl.View(func(im *metadata.Image) {
		for _, t := range im.Topics {
			for _, p := range t.Partitions {
				led = led || p.Leader == b.cfg.NodeID
			}
		}
	})
	return led
}

// ControlledShutdown asks the active controller, in a cluster, to move
// this node's partition leaderships away (KIP-631) and waits until it has
// or broker.session.timeout.ms passes; Close does it too. Called before
// the listener stops, it lets clients be told where partitions went while
// this node still answers. Alone, or called again, it returns at once.
func (b *Broker) ControlledShutdown() {
	if b.life != nil {
		b.life.shutdown()
	}
}
