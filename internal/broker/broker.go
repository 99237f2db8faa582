// Package broker is the Kafka broker: it owns the controller, the
// partitions and (later) the coordinators, and serves requests through
// one file per API family.
package broker

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/weir-broker/weir/internal/acl"
	"github.com/weir-broker/weir/internal/config"
	"github.com/weir-broker/weir/internal/controller"
	"github.com/weir-broker/weir/internal/faults"
	"github.com/weir-broker/weir/internal/group"
	wlog "github.com/weir-broker/weir/internal/log"
	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/partition"
	"github.com/weir-broker/weir/internal/quota"
	"github.com/weir-broker/weir/internal/server"
)

// ClusterID is the id DescribeCluster and Metadata report for a single
// node; a cluster's is derived from its voters (clusterIDOf).
const ClusterID = "weir-single-node"

// clusterIDOf is a cluster's id: the same on every node, since every node
// is started with the same voter ids and they never change (addresses may
// be spelled differently from node to node, or change); shaped as
// Kafka's (16 bytes, base64 without padding).
func clusterIDOf(q config.Quorum) string {
	if !q.Enabled() {
		return ClusterID
	}
	h := sha256.New()
	for _, v := range q.Voters {
		fmt.Fprintf(h, "%d,", v.ID)
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:16])
}

// Config is what a broker needs beyond its settings.
type Config struct {
	NodeID   int32
	DataDir  string
	Settings *config.Broker
	Logger   *slog.Logger
	Faults   *faults.Injector // nil: none
	// PeerDial, when set, dials other nodes: the inter-broker listener is
	// SSL or SASL_SSL.
	PeerDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// PeerSASL, when set, is how this node authenticates to the others:
	// the inter-broker listener is SASL_PLAINTEXT or SASL_SSL.
	PeerSASL sasl.Mechanism
	// Abort, when closed during Open, cuts the start short: the
	// coordinators' recovery stops waiting on other brokers, and Open
	// fails. Nil: never.
	Abort <-chan struct{}
	// OnLogSync, when set, is told of each fsync of a partition's log:
	// its duration and the offsets it made durable (wlog.Config.OnSync).
	OnLogSync func(d time.Duration, offsets int64)
}

// Broker serves the Kafka API over its partitions.
type Broker struct {
	cfg       Config
	settings  *config.Broker
	clusterID string
	logger    *slog.Logger
	ctrl      *controller.Controller

	// advertised is where clients of each listener are told to reach
	// this node; interBroker names the listener other nodes use. Both are
	// set once the listeners are bound (SetListeners).
	advertised  []config.Listener
	interBroker string
	// authz decides requests when authorizer.class.name is set; rebuilt
	// from the image when ACLs change (acls.go).
	authz atomic.Pointer[acl.Authorizer]
	// caughtUp is set once this node has caught up with the metadata (a
	// single node at once; a node of a cluster once its registration is
	// unfenced): before that its ACLs may be stale, and only super users
	// are served.
	caughtUp atomic.Bool
	// quotas are the client quotas, rebuilt from the image when they
	// change; sensors measure the clients' rates against them
	// (client_quotas.go).
	quotas  atomic.Pointer[quota.Set]
	sensors *quota.Sensors
	// incarnation identifies this process in its broker registration
	// (cluster only); random per start.
	incarnation string
	// life sends this node's heartbeats (cluster only; broker_lifecycle.go).
	life *lifecycle

	// pmu guards topics. Produce and fetch take the read lock only to find
	// a partition.
	pmu    sync.RWMutex
	topics map[string]*topicState

	fetchWaiting chan struct{} // a slot per waiting fetch (fetch.max.waiting)

	pids producerIDs
	txns *txnCoordinator // the transaction coordinator's shards (txn_coordinator.go)

	groups *groupCoordinator // the group coordinator's shards (groups.go)

	// afterFetchRead, set only by tests, runs after a fetch's first read
	// of its partitions.
	afterFetchRead atomic.Pointer[func()]
	// beforeProducePartition, set only by tests, runs before each
	// partition of a produce request is looked up.
	beforeProducePartition atomic.Pointer[func(topic string, partition int32)]

	// peerClient sends requests to other brokers of the cluster
	// (interbroker.go), made on first use; peerMu guards it.
	peerMu     sync.Mutex
	peerClient *kgo.Client

	// followers are the partitions this node follows (replica_roles.go),
	// guarded by rmu; fetchers copy them from their leaders.
	followers map[partitionKey]*follower
	fetchers  *replicaFetchers

	// resigned tracks the goroutines closing partitions this node no
	// longer leads (reconcile); Close waits for them. rmu serialises
	// reconciles and guards closing, the partitions being closed.
	resigned sync.WaitGroup
	rmu      sync.Mutex
	closing  map[partitionKey]struct{}

	// startAborted is closed when Config.Abort is, during Open.
	startAborted chan struct{}

	// quit is closed when shutdown begins, before the server stops
	// taking requests: a request waiting on another broker gives up.
	quit     chan struct{}
	quitOnce sync.Once

	stop chan struct{}
	wg   sync.WaitGroup
}

type topicState struct {
	id metadata.TopicID
	// parts holds every partition of the topic in the image, by index;
	// nil where another broker leads it (only in a cluster).
	parts    []*partition.Partition
	settings *topicSettings // replaced whole when the topic's configs change
}

// topicSettings are the resolved topic configs the produce path reads.
type topicSettings struct {
	maxMessageBytes int
	logAppendTime   bool
	internal        bool // clients may not produce to it
}

func (b *Broker) resolveSettings(overrides map[string]string, internal bool) *topicSettings {
	tc := b.settings.Topic(overrides)
	n, _ := strconv.Atoi(tc["max.message.bytes"])
	return &topicSettings{maxMessageBytes: n, logAppendTime: tc["message.timestamp.type"] == "LogAppendTime", internal: internal}
}

// Open starts a broker on dataDir: replays the metadata log, opens every
// partition (recovering its log) and removes directories of topics that no
// longer exist.
func Open(cfg Config) (*Broker, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	ctrl, err := controller.Open(cfg.DataDir, cfg.NodeID, cfg.Settings, cfg.Logger)
	if err != nil {
		return nil, err
	}
	q, err := cfg.Settings.Quorum()
	if err != nil {
		ctrl.Close()
		return nil, err
	}
	b := &Broker{
		cfg: cfg, settings: cfg.Settings, logger: cfg.Logger, ctrl: ctrl, clusterID: clusterIDOf(q),
		topics:       make(map[string]*topicState),
		fetchWaiting: make(chan struct{}, cfg.Settings.Int("fetch.max.waiting")),
		stop:         make(chan struct{}),
		quit:         make(chan struct{}),
		startAborted: make(chan struct{}),
		incarnation:  newIncarnation(),
		closing:      map[partitionKey]struct{}{},
		followers:    map[partitionKey]*follower{},
		sensors: quota.NewSensors(int(cfg.Settings.Int("quota.window.num")),
			time.Duration(cfg.Settings.Int("quota.window.size.seconds"))*time.Second),
	}
	b.fetchers = newReplicaFetchers(b)
	var openErr error
	ctrl.View(func(im *metadata.Image) { openErr = b.openReplicas(im) })
	if openErr == nil {
		openErr = b.removeStrayDirs()
	}
	if openErr != nil {
		b.closeFollowers()
		b.closePartitions()
		ctrl.Close()
		return nil, openErr
	}
	// The coordinators exist before the listener is set: from then on a
	// partition of an internal topic this node comes to lead loads its
	// shard. Dependency order: the transaction coordinator's recovery
	// finishes transactions left in PrepareCommit or PrepareAbort, and
	// their markers go to __consumer_offsets through the group
	// coordinator too, so the groups are loaded first. The background
	// loops start last, once everything they read exists.
	b.groups = newGroupCoordinator(b)
	b.txns = newTxnCoordinator(b)
	for _, part := range b.internalPartitions(group.OffsetsTopic) {
		b.groups.set.lead(part)
	}
	if err := b.groups.set.waitLoaded(); err != nil {
		b.Close()
		return nil, fmt.Errorf("load consumer groups: %w", err)
	}
	for _, part := range b.internalPartitions(TxnStateTopic) {
		b.txns.set.lead(part)
	}
	// A shard's recovery may wait on other brokers for a long time; an
	// abort of the start (SIGTERM) ends it at once (txnCoordinator.open).
	// Only the start: cfg.Abort means nothing once Open has returned.
	started := make(chan struct{})
	go func() {
		select {
		case <-cfg.Abort:
			close(b.startAborted)
		case <-started:
		}
	}()
	err = b.txns.set.waitLoaded()
	close(started)
	if err == nil && aborted(b.startAborted) {
		err = errors.New("start aborted")
	}
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("load transactions: %w", err)
	}
	ctrl.View(b.rebuildAuthorizer)
	ctrl.View(b.rebuildQuotas)
	ctrl.SetListener(b.apply)
	ctrl.View(b.reconcile) // hands the followers opened above to their fetchers
	b.wg.Add(4)
	go b.isrLoop()
	go b.txnTicker()
	go b.housekeeping()
	go b.cleanerLoop()
	return b, nil
}

// SetAdvertised is SetListeners for a node with one PLAINTEXT listener
// advertised at host:port.
func (b *Broker) SetAdvertised(host string, port int32) {
	b.SetListeners([]config.Listener{{Name: config.Plaintext, Protocol: config.Plaintext, Host: host, Port: port}}, config.Plaintext)
}

// SetListeners sets the addresses Metadata returns for this node, one per
// listener, and the listener other nodes reach it on; in a cluster it
// also starts registering the node under them (registration.go). It is
// called once, after Open.
func (b *Broker) SetListeners(advertised []config.Listener, interBroker string) {
	b.advertised, b.interBroker = advertised, interBroker
	if !b.ctrl.Clustered() {
		b.caughtUp.Store(true) // its own metadata log is all there is
		b.bootstrapCredentials()
		return
	}
	b.life = newLifecycle(b)
	b.wg.Add(1)
	go b.registerLoop()
}

// self is this node's registration as a single node answers with it.
func (b *Broker) self() metadata.Broker {
	br := metadata.Broker{NodeID: b.cfg.NodeID}
	var ls []string
	for _, l := range b.advertised {
		ls = append(ls, l.Name+"://"+l.Addr())
		if l.Name == b.interBroker {
			br.Host, br.Port = l.Host, l.Port
		}
	}
	br.Listeners = strings.Join(ls, ",")
	return br
}

// aborted reports whether ch is closed (a nil ch never is).
func aborted(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// BeginShutdown tells the broker that it is about to close: requests
// waiting on other brokers give up now, so the server's wait for its
// handlers is short. Close calls it too.
func (b *Broker) BeginShutdown() {
	b.quitOnce.Do(func() { close(b.quit) })
}

// Close stops background work and closes every partition cleanly. It is
// also how Open undoes a start that failed part way, so it copes with
// the parts not built yet.
func (b *Broker) Close() error {
	b.ControlledShutdown()
	b.BeginShutdown()
	close(b.stop)
	b.wg.Wait()
	// The controller first: in a cluster it applies records the quorum
	// commits on its own goroutine, and none may open a partition after
	// the partitions are closed.
	err := b.ctrl.Close()
	b.resigned.Wait()
	// The transaction coordinator before the groups: its markers end
	// transactional offsets in the group shards.
	if b.txns != nil {
		b.txns.set.close()
	}
	if b.groups != nil {
		b.groups.set.close()
	}
	b.closeFollowers()
	b.closePeers()
	b.closePartitions()
	return err
}

func (b *Broker) closePartitions() {
	b.pmu.Lock()
	defer b.pmu.Unlock()
	for _, t := range b.topics {
		for _, p := range t.parts {
			if p == nil {
				continue
			}
			if err := p.Close(); err != nil {
				b.logger.Error("close partition", "topic", p.Topic, "partition", p.Index, "err", err)
			}
		}
	}
	b.topics = map[string]*topicState{}
}

// partitionDir is where a partition's log lives, named as Kafka names it.
func (b *Broker) partitionDir(topic string, index int32) string {
	return filepath.Join(b.cfg.DataDir, topic+"-"+strconv.Itoa(int(index)))
}

// leads reports whether this node serves partition i of t in im: alone,
// all of them; in a cluster, those im names it leader of, once im holds
// this process's own registration. Until then the leaderships im names
// are those of the node's previous process, which may have lost a tail
// it had not fsynced and its followers hold: leading at that process's
// epochs, it would take new writes at those offsets without a follower
// seeing the logs diverge (KIP-101). The registration gives the node
// new leader epochs (metadata.Image.Apply), and it leads at those.
func (b *Broker) leads(im *metadata.Image, t *metadata.Topic, i int32) bool {
	if !b.ctrl.Clustered() {
		return true
	}
	if t.Partitions[i].Leader != b.cfg.NodeID {
		return false
	}
	br, ok := im.Brokers[b.cfg.NodeID]
	return ok && br.Incarnation == b.incarnation
}

// openPartitionFiles opens partition i of t on disk (recovering its log),
// without touching the broker's map, so no lock that produce and fetch
// take is held while it does I/O, as its leader when lead is set and as a
// follower otherwise. A directory left by an earlier topic of the same
// name (another id) is removed first.
func (b *Broker) openPartitionFiles(t *metadata.Topic, i int32, lead bool) (*partition.Partition, error) {
	dir := b.partitionDir(t.Name, i)
	want := "topic_id: " + t.ID.String() + "\n"
	if got, ok, err := partition.TopicID(wlog.OSFS{}, dir); err == nil && ok && got != want {
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := partition.RecordTopicID(wlog.OSFS{}, dir, want); err != nil {
		return nil, err
	}
	mp := t.Partitions[i]
	opts := partition.Options{ReplicaID: b.cfg.NodeID, Follower: !lead}
	p, err := partition.OpenWith(t.Name, i, dir, b.logConfig(t.Configs), mp.LeaderEpoch, mp.ISR, opts)
	if err != nil {
		return nil, err
	}
	p.Faults = b.cfg.Faults
	p.SetMinISR(b.minISR(t.Configs))
	return p, nil
}

// setPartitionLocked publishes partition i of t, opened, or nil when
// another broker leads it; the caller holds pmu (or is Open, before
// anything else runs). Partitions of a topic arrive in index order.
func (b *Broker) setPartitionLocked(t *metadata.Topic, i int32, p *partition.Partition) {
	ts := b.topics[t.Name]
	if ts == nil {
		ts = &topicState{id: t.ID, settings: b.resolveSettings(t.Configs, t.Internal)}
		b.topics[t.Name] = ts
	}
	for int(i) >= len(ts.parts) {
		ts.parts = append(ts.parts, nil)
	}
	ts.parts[i] = p
}

// removeStrayDirs deletes partition directories no topic owns: what a crash
// between a topic's removal record and its directory's removal leaves,
// or between a reassignment that moved a partition away and the deletion
// of its copy here.
func (b *Broker) removeStrayDirs() error {
	entries, err := os.ReadDir(b.cfg.DataDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() || e.Name() == controller.LogDirName {
			continue
		}
		dir := filepath.Join(b.cfg.DataDir, e.Name())
		if _, err := os.Stat(filepath.Join(dir, partition.TopicIDFile)); err != nil {
			continue // not a partition directory of ours
		}
		if !b.ownsDir(e.Name()) {
			b.logger.Info("removing a partition directory this node no longer holds", "dir", dir)
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
		}
	}
	return nil
}

// ownsDir reports whether a directory belongs to a partition this node
// holds, as leader or follower: one it no longer holds (a reassignment
// moved it away, and a crash came before its deletion) is stray too.
func (b *Broker) ownsDir(name string) bool {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return false
	}
	idx, err := strconv.Atoi(name[i+1:])
	if err != nil {
		return false
	}
	t := b.topics[name[:i]]
	return t != nil && idx < len(t.parts) && (t.parts[idx] != nil || b.followers[partitionKey{name[:i], int32(idx)}] != nil)
}

// apply reacts to applied metadata records, in order; the controller
// holds its image lock (Metadata requests wait), but pmu, which every
// produce and fetch takes, is held only to publish or withdraw
// partitions: opening, closing and deleting files happen outside it.
// After the records, the partitions this node serves are reconciled
// with the leaders the image names.
func (b *Broker) apply(im *metadata.Image, recs []metadata.Record) {
	aclsChanged, quotasChanged := false, false
	for _, r := range recs {
		switch {
		case r.ACL != nil:
			aclsChanged = true
		case r.Quota != nil:
			quotasChanged = true
		case r.Config != nil:
			t, _ := im.TopicByID(r.Config.TopicID)
			b.pmu.Lock()
			if ts := b.topics[t.Name]; ts != nil {
				ts.settings = b.resolveSettings(t.Configs, t.Internal)
				cfg, minISR := b.logConfig(t.Configs), b.minISR(t.Configs)
				for _, p := range ts.parts {
					if p != nil {
						p.SetConfig(cfg)
						p.SetMinISR(minISR)
					}
				}
			}
			b.pmu.Unlock()
			b.configureFollowers(t)
		case r.RemoveTopic != nil:
			var gone []*partition.Partition
			var goneName string
			b.pmu.Lock()
			for name, ts := range b.topics {
				if ts.id == r.RemoveTopic.TopicID {
					gone, goneName = ts.parts, name
					delete(b.topics, name)
				}
			}
			b.pmu.Unlock()
			gone = append(gone, b.dropFollowers(goneName)...)
			for _, p := range gone {
				if p == nil {
					continue
				}
				p.Close()
				os.RemoveAll(b.partitionDir(goneName, p.Index))
			}
		}
	}
	if aclsChanged {
		b.rebuildAuthorizer(im)
	}
	if !b.caughtUp.Load() {
		if reg, ok := im.Brokers[b.cfg.NodeID]; ok && reg.Incarnation == b.incarnation && !reg.Fenced {
			b.caughtUp.Store(true)
		}
	}
	if quotasChanged {
		b.rebuildQuotas(im)
	}
	b.reconcile(im)
}

// partitionKey names a partition.
type partitionKey struct {
	topic string
	index int32
}

// loadCoordinator starts loading the coordinator shard of p, when p is a
// partition of an internal topic.
func (b *Broker) loadCoordinator(p *partition.Partition) {
	switch p.Topic {
	case group.OffsetsTopic:
		b.groups.set.lead(p)
	case TxnStateTopic:
		b.txns.set.lead(p)
	}
}

// unloadCoordinator unloads the coordinator shard of partition index of
// topic, when topic is an internal topic.
func (b *Broker) unloadCoordinator(topic string, index int32) {
	switch topic {
	case group.OffsetsTopic:
		b.groups.set.resign(index)
	case TxnStateTopic:
		b.txns.set.resign(index)
	}
}

// logConfig resolves a topic's log settings from its overrides and the
// broker defaults.
func (b *Broker) logConfig(overrides map[string]string) wlog.Config {
	tc := b.settings.Topic(overrides)
	num := func(k string) int64 { n, _ := strconv.ParseInt(tc[k], 10, 64); return n }
	c := wlog.DefaultConfig()
	c.SegmentBytes = num("segment.bytes")
	c.SegmentMs = num("segment.ms")
	c.RetentionMs = num("retention.ms")
	c.RetentionBytes = num("retention.bytes")
	c.IndexIntervalBytes = int(num("index.interval.bytes"))
	c.OnSync = b.cfg.OnLogSync
	if !strings.Contains(tc["cleanup.policy"], "delete") {
		c.RetentionMs, c.RetentionBytes = -1, -1
	}
	return c
}

// topicConfig returns a topic's resolved config.
func (b *Broker) topicConfig(topic string) map[string]string {
	var overrides map[string]string
	b.ctrl.View(func(im *metadata.Image) {
		if t, ok := im.Topics[topic]; ok {
			overrides = t.Configs
		}
	})
	return b.settings.Topic(overrides)
}

// partition finds a partition this node leads: UNKNOWN_TOPIC_OR_PARTITION
// when the image has no such partition, NOT_LEADER_OR_FOLLOWER when
// another broker leads it.
func (b *Broker) partition(topic string, index int32) (*partition.Partition, *kerr.Error) {
	b.pmu.RLock()
	defer b.pmu.RUnlock()
	t := b.topics[topic]
	if t == nil || index < 0 || int(index) >= len(t.parts) {
		return nil, kerr.UnknownTopicOrPartition
	}
	if t.parts[index] == nil {
		return nil, kerr.NotLeaderForPartition
	}
	return t.parts[index], nil
}

// partitionExists reports whether the image has the partition, whichever
// broker leads it.
func (b *Broker) partitionExists(topic string, index int32) bool {
	b.pmu.RLock()
	defer b.pmu.RUnlock()
	t := b.topics[topic]
	return t != nil && index >= 0 && int(index) < len(t.parts)
}

// partitionAndSettings finds a partition this node leads together with
// its topic's produce settings, in one look-up: looked up apart, a topic
// created, deleted or recreated in between pairs a partition with another
// topic's settings, or with none.
func (b *Broker) partitionAndSettings(topic string, index int32) (*partition.Partition, *topicSettings, *kerr.Error) {
	b.pmu.RLock()
	defer b.pmu.RUnlock()
	t := b.topics[topic]
	if t == nil || index < 0 || int(index) >= len(t.parts) {
		return nil, nil, kerr.UnknownTopicOrPartition
	}
	if t.parts[index] == nil {
		return nil, nil, kerr.NotLeaderForPartition
	}
	return t.parts[index], t.settings, nil
}

// topicName resolves a topic id (Fetch v13+).
func (b *Broker) topicName(id [16]byte) (string, bool) {
	b.pmu.RLock()
	defer b.pmu.RUnlock()
	for name, t := range b.topics {
		if t.id == metadata.TopicID(id) {
			return name, true
		}
	}
	return "", false
}

// autoCreate creates topic with broker defaults when auto.create.topics.enable
// allows; it reports whether the topic exists afterwards.
func (b *Broker) autoCreate(topic string) bool {
	if !b.settings.Bool("auto.create.topics.enable") {
		return false
	}
	_, _, err := b.ctrl.CreateTopic(controller.CreateTopic{Name: topic, Partitions: -1, ReplicationFactor: -1, AnyNode: true})
	if err != nil && !controller.IsCode(err, kerr.TopicAlreadyExists) {
		b.logger.Info("auto-create topic failed", "topic", topic, "err", err)
		return false
	}
	return true
}

// housekeeping runs retention and producer-id expiration on their
// intervals until the broker stops.
func (b *Broker) housekeeping() {
	defer b.wg.Done()
	ms := func(name string) time.Duration { return time.Duration(b.settings.Int(name)) * time.Millisecond }
	retention := time.NewTicker(ms("log.retention.check.interval.ms"))
	defer retention.Stop()
	expiry := time.NewTicker(ms("producer.id.expiration.check.interval.ms"))
	defer expiry.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-retention.C:
			for _, p := range b.allPartitions() {
				if n, err := p.EnforceRetention(); err != nil {
					b.logger.Error("retention", "topic", p.Topic, "partition", p.Index, "err", err)
				} else if n > 0 {
					b.logger.Info("retention deleted segments", "topic", p.Topic, "partition", p.Index, "segments", n)
				}
			}
		case now := <-expiry.C:
			for _, p := range b.allPartitions() {
				p.ExpireProducers(now.UnixMilli(), b.settings.Int("producer.id.expiration.ms"))
			}
		}
	}
}

func (b *Broker) allPartitions() []*partition.Partition {
	b.pmu.RLock()
	defer b.pmu.RUnlock()
	var parts []*partition.Partition
	for _, ts := range b.topics {
		for _, p := range ts.parts {
			if p != nil {
				parts = append(parts, p)
			}
		}
	}
	return parts
}

// Handle serves one request; see server.Handler.
func (b *Broker) Handle(ctx context.Context, c *server.Conn, req kmsg.Request) server.Reply {
	var after func(kmsg.Response)
	if az := b.authorizer(); az.Enabled() {
		if !b.caughtUp.Load() {
			az = az.SuperUsersOnly()
		}
		var refused server.Reply
		var ok bool
		if after, refused, ok = b.authorize(az, c, req); !ok {
			return refused
		}
	}
	reply := withAfter(b.handle(ctx, c, req), after)
	if qs := b.quotaSet(); len(qs) > 0 {
		reply = b.throttled(qs, c, req, reply)
	}
	return reply
}

// handle serves an authorized request.
func (b *Broker) handle(ctx context.Context, c *server.Conn, req kmsg.Request) server.Reply {
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		return b.handleProduce(c, r)
	case *kmsg.FetchRequest:
		return b.handleFetch(ctx, c, r)
	case *kmsg.DeleteRecordsRequest:
		return b.handleDeleteRecords(r)
	case *kmsg.JoinGroupRequest:
		return b.handleJoinGroup(ctx, c, r)
	case *kmsg.SyncGroupRequest:
		return b.handleSyncGroup(ctx, c, r)
	case *kmsg.HeartbeatRequest:
		return b.handleHeartbeat(ctx, c, r)
	case *kmsg.LeaveGroupRequest:
		return b.handleLeaveGroup(ctx, c, r)
	case *kmsg.OffsetCommitRequest:
		return b.handleOffsetCommit(ctx, c, r)
	case *kmsg.TxnOffsetCommitRequest:
		return b.handleTxnOffsetCommit(ctx, c, r)
	case *kmsg.OffsetFetchRequest:
		return b.handleOffsetFetch(ctx, c, r)
	case *kmsg.OffsetDeleteRequest:
		return b.handleOffsetDelete(ctx, c, r)
	case *kmsg.DescribeGroupsRequest:
		return b.handleDescribeGroups(ctx, c, r)
	case *kmsg.ListGroupsRequest:
		return b.handleListGroups(ctx, c, r)
	case *kmsg.DeleteGroupsRequest:
		return b.handleDeleteGroups(ctx, c, r)
	case *kmsg.ConsumerGroupHeartbeatRequest:
		return b.handleConsumerGroupHeartbeat(ctx, c, r)
	case *kmsg.ConsumerGroupDescribeRequest:
		return b.handleConsumerGroupDescribe(ctx, c, r)
	}
	var resp kmsg.Response
	switch r := req.(type) {
	case *kmsg.MetadataRequest:
		resp = b.handleMetadata(c, r)
	case *kmsg.ListOffsetsRequest:
		resp = b.handleListOffsets(r)
	case *kmsg.OffsetForLeaderEpochRequest:
		resp = b.handleOffsetForLeaderEpoch(r)
	case *kmsg.AlterPartitionRequest:
		resp = b.handleAlterPartition(r)
	case *kmsg.AlterPartitionAssignmentsRequest:
		resp = b.handleAlterPartitionAssignments(r)
	case *kmsg.ListPartitionReassignmentsRequest:
		resp = b.handleListPartitionReassignments(r)
	case *kmsg.ElectLeadersRequest:
		resp = b.handleElectLeaders(r)
	case *kmsg.CreateTopicsRequest:
		resp = b.handleCreateTopics(r)
	case *kmsg.DeleteTopicsRequest:
		resp = b.handleDeleteTopics(r)
	case *kmsg.CreatePartitionsRequest:
		resp = b.handleCreatePartitions(r)
	case *kmsg.DescribeConfigsRequest:
		resp = b.handleDescribeConfigs(r)
	case *kmsg.AlterConfigsRequest:
		resp = b.handleAlterConfigs(r)
	case *kmsg.IncrementalAlterConfigsRequest:
		resp = b.handleIncrementalAlterConfigs(r)
	case *kmsg.DescribeClientQuotasRequest:
		resp = b.handleDescribeClientQuotas(r)
	case *kmsg.AlterClientQuotasRequest:
		resp = b.handleAlterClientQuotas(r)
	case *kmsg.CreateACLsRequest:
		resp = b.handleCreateAcls(r)
	case *kmsg.DescribeACLsRequest:
		resp = b.handleDescribeAcls(r)
	case *kmsg.DeleteACLsRequest:
		resp = b.handleDeleteAcls(r)
	case *kmsg.DescribeUserSCRAMCredentialsRequest:
		resp = b.handleDescribeUserScramCredentials(r)
	case *kmsg.AlterUserSCRAMCredentialsRequest:
		resp = b.handleAlterUserScramCredentials(r)
	case *kmsg.DescribeClusterRequest:
		resp = b.handleDescribeCluster(c, r)
	case *kmsg.DescribeQuorumRequest:
		resp = b.handleDescribeQuorum(ctx, r)
	case *kmsg.BrokerHeartbeatRequest:
		resp = b.handleBrokerHeartbeat(r)
	case *kmsg.FindCoordinatorRequest:
		resp = b.handleFindCoordinator(c, r)
	case *kmsg.InitProducerIDRequest:
		resp = b.handleInitProducerID(r)
	case *kmsg.DescribeProducersRequest:
		resp = b.handleDescribeProducers(r)
	case *kmsg.DescribeLogDirsRequest:
		resp = b.handleDescribeLogDirs(r)
	case *kmsg.AddPartitionsToTxnRequest:
		resp = b.handleAddPartitionsToTxn(r)
	case *kmsg.AddOffsetsToTxnRequest:
		resp = b.handleAddOffsetsToTxn(r)
	case *kmsg.EndTxnRequest:
		resp = b.handleEndTxn(r)
	case *kmsg.WriteTxnMarkersRequest:
		resp = b.handleWriteTxnMarkers(r)
	case *kmsg.DescribeTransactionsRequest:
		resp = b.handleDescribeTransactions(r)
	case *kmsg.ListTransactionsRequest:
		resp = b.handleListTransactions(r)
	case *kmsg.ApiVersionsRequest:
		resp = b.handleApiVersions(r)
	default:
		err := fmt.Errorf("%s has no handler", kmsg.NameForKey(req.Key()))
		return func() (kmsg.Response, error) { return nil, err }
	}
	return func() (kmsg.Response, error) { return resp, nil }
}
