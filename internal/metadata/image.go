// Package metadata is the cluster metadata image and the records that change
// it. The image is never edited in place by callers: the controller appends
// records to the metadata log and applies them here, so replaying the log at
// start rebuilds exactly the image that was running.
package metadata

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"

	"github.com/weir-broker/weir/internal/acl"
	"github.com/weir-broker/weir/internal/quota"
)

// TopicID is a topic's 16-byte UUID, as Metadata v10+ and Fetch v13+ carry.
type TopicID [16]byte

// NewTopicID returns a random, non-zero topic id.
func NewTopicID() TopicID {
	var id TopicID
	for id == (TopicID{}) {
		_, _ = rand.Read(id[:])
	}
	return id
}

func (id TopicID) String() string { return hex.EncodeToString(id[:]) }

// Partition is one partition's replica assignment and leadership.
type Partition struct {
	Leader      int32
	LeaderEpoch int32
	Replicas    []int32
	ISR         []int32
	// PartitionEpoch counts the changes to the partition's leader, ISR
	// or replicas; an AlterPartition must name the current one (KIP-497).
	PartitionEpoch int32 `json:",omitempty"`
	// AddingReplicas and RemovingReplicas are the members of Replicas a
	// reassignment in progress adds and removes (KIP-455); both are empty
	// when none is. During a reassignment Replicas lists the target
	// first, then the replicas being removed, so the target is Replicas
	// less RemovingReplicas and the assignment it started from is
	// Replicas less AddingReplicas.
	AddingReplicas   []int32 `json:",omitempty"`
	RemovingReplicas []int32 `json:",omitempty"`
}

// Reassigning reports whether a reassignment of the partition is in
// progress.
func (p *Partition) Reassigning() bool {
	return len(p.AddingReplicas) > 0 || len(p.RemovingReplicas) > 0
}

// Topic is one topic in the image.
type Topic struct {
	Name       string
	ID         TopicID
	Partitions []Partition
	Configs    map[string]string // overrides only
	Internal   bool
}

// Broker is a registered broker, as its last BrokerRecord and the
// BrokerChangeRecords after it describe it. The state fields are optional
// in snapshots: one written before brokers could be fenced reads as
// unfenced brokers of epoch 0.
type Broker struct {
	NodeID      int32  `json:"nodeId"`
	Incarnation string `json:"incarnation"`
	// Host and Port are the address of the broker's inter-broker
	// listener: where the other nodes reach it.
	Host string `json:"host"`
	Port int32  `json:"port"`
	// Listeners is the broker's advertised listeners, NAME://host:port,...
	// (a string, so a Broker stays comparable). Empty in registrations
	// made before listeners had names: Host and Port serve every client.
	Listeners string `json:"listeners,omitempty"`
	// Epoch is the metadata offset of the registration (KIP-631's broker
	// epoch): a broker has caught up once it has applied the metadata up
	// to it.
	Epoch int64 `json:"epoch,omitempty"`
	// Fenced brokers are not listed to clients, are given no new
	// partitions and lead none once their session has expired.
	Fenced bool `json:"fenced,omitempty"`
	// ControlledShutdown marks a broker that asked to shut down: it is
	// fenced and leads nothing the controller could move.
	ControlledShutdown bool `json:"controlledShutdown,omitempty"`
}

// Image is the cluster metadata at one point of the metadata log.
type Image struct {
	Topics  map[string]*Topic
	byID    map[TopicID]*Topic
	Offset  int64 // metadata log offset of the last applied record
	NodeIDs []int32
	// Brokers are the registered brokers by node id (a cluster's; a
	// single node registers none).
	Brokers map[int32]Broker
	// NextProducerID is the first producer id not yet in any block.
	NextProducerID int64
	// Learners are the metadata quorum's non-voting members (broker-only
	// nodes) by node id, each with its controller listener: the voters
	// send them the log there. Their configuration changes are entries of
	// the log like any other, so every node holds the same list at the
	// same offset, and a snapshot carries it.
	Learners map[int32]string
	// UncleanElections counts the partition changes that gave a partition
	// a leader from outside its ISR (unclean.leader.election.enable, or an
	// ElectLeaders request of type UNCLEAN). It is derived from the
	// records as they apply, not carried by one, so every node counts the
	// same, and snapshots keep it.
	UncleanElections int64
	// LeaderElections counts the partition changes that gave a partition
	// a leader other than the one it had (unclean ones included; a
	// partition created with its first leader is not counted), and
	// ISRShrinks and ISRExpands the changes that took replicas out of an
	// ISR and put replicas into one (Kafka's IsrShrinksPerSec and
	// IsrExpandsPerSec, cluster-wide). Derived like UncleanElections.
	LeaderElections, ISRShrinks, ISRExpands int64
	// Scram holds the users' SCRAM credentials by user and mechanism
	// (scram.go). An inner map is replaced, never changed, when a record
	// applies, so clones may share them.
	Scram map[string]map[string]ScramCredential
	// CredentialsBootstrapped is set once bootstrap credentials applied.
	CredentialsBootstrapped bool
	// ACLs are the ACL bindings in the order they were created; the slice
	// is replaced, never changed, when a record applies (acls.go).
	ACLs []acl.Binding
	// Quotas are the client quotas by entity; the map is replaced, never
	// changed, when a record applies (quotas.go).
	Quotas quota.Set
}

// NewImage returns an empty image.
func NewImage() *Image {
	return &Image{Topics: make(map[string]*Topic), byID: make(map[TopicID]*Topic), Brokers: make(map[int32]Broker), Learners: make(map[int32]string), Scram: make(map[string]map[string]ScramCredential), Offset: -1}
}

// BrokerIDs lists the registered brokers' node ids in order.
func (im *Image) BrokerIDs() []int32 {
	ids := make([]int32, 0, len(im.Brokers))
	for id := range im.Brokers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// UnfencedBrokerIDs lists the node ids of the unfenced brokers in order:
// the brokers clients are told of and partitions are placed on.
func (im *Image) UnfencedBrokerIDs() []int32 {
	var ids []int32
	for _, id := range im.BrokerIDs() {
		if !im.Brokers[id].Fenced {
			ids = append(ids, id)
		}
	}
	return ids
}

// Unfenced reports whether node id is a registered, unfenced broker.
func (im *Image) Unfenced(id int32) bool {
	br, ok := im.Brokers[id]
	return ok && !br.Fenced
}

// TopicByID finds a topic by id.
func (im *Image) TopicByID(id TopicID) (*Topic, bool) { t, ok := im.byID[id]; return t, ok }

// TopicNames lists topic names in order.
func (im *Image) TopicNames() []string {
	names := make([]string, 0, len(im.Topics))
	for n := range im.Topics {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Apply changes the image by one record. A record that does not fit the
// image (a topic created twice) is an error; the controller checks before it
// appends, so at replay an error means a corrupt metadata log.
func (im *Image) Apply(r Record) error {
	switch {
	case r.Topic != nil:
		t := r.Topic
		if _, ok := im.Topics[t.Name]; ok {
			return fmt.Errorf("topic %q already exists", t.Name)
		}
		nt := &Topic{Name: t.Name, ID: t.ID, Configs: copyMap(t.Configs), Internal: t.Internal}
		im.Topics[t.Name] = nt
		im.byID[t.ID] = nt
	case r.Partition != nil:
		p := r.Partition
		t, ok := im.byID[p.TopicID]
		if !ok {
			return fmt.Errorf("partition record for unknown topic %s", p.TopicID)
		}
		if p.Index >= 0 && int(p.Index) < len(t.Partitions) {
			return im.changePartition(t, p)
		}
		if int(p.Index) != len(t.Partitions) {
			return fmt.Errorf("topic %q: partition %d out of order (have %d)", t.Name, p.Index, len(t.Partitions))
		}
		t.Partitions = append(t.Partitions, Partition{
			Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, Replicas: p.Replicas, ISR: p.ISR, PartitionEpoch: p.PartitionEpoch,
			AddingReplicas: deref(p.AddingReplicas), RemovingReplicas: deref(p.RemovingReplicas),
		})
	case r.Config != nil:
		c := r.Config
		t, ok := im.byID[c.TopicID]
		if !ok {
			return fmt.Errorf("config record for unknown topic %s", c.TopicID)
		}
		// The map is replaced, never changed: readers take it under the
		// controller's read lock and may read it after releasing it.
		configs := copyMap(t.Configs)
		if configs == nil {
			configs = make(map[string]string)
		}
		if c.Value == nil {
			delete(configs, c.Name)
		} else {
			configs[c.Name] = *c.Value
		}
		t.Configs = configs
	case r.RemoveTopic != nil:
		t, ok := im.byID[r.RemoveTopic.TopicID]
		if !ok {
			return fmt.Errorf("removal of unknown topic %s", r.RemoveTopic.TopicID)
		}
		delete(im.Topics, t.Name)
		delete(im.byID, t.ID)
	case r.ProducerIDs != nil:
		if r.ProducerIDs.Start != im.NextProducerID || r.ProducerIDs.Size <= 0 {
			return fmt.Errorf("producer id block %+v does not start at %d", *r.ProducerIDs, im.NextProducerID)
		}
		im.NextProducerID += r.ProducerIDs.Size
	case r.Broker != nil:
		br := r.Broker
		if br.NodeID < 0 || br.Incarnation == "" || br.Port <= 0 || br.Port > 65535 {
			return fmt.Errorf("broker registration %+v is malformed", *br)
		}
		// A registration starts fenced (KIP-631); its epoch is the offset
		// of the entry being applied.
		epoch := br.Epoch
		if epoch == 0 {
			epoch = im.Offset + 1
		}
		if prev, ok := im.Brokers[br.NodeID]; ok && prev.Incarnation != br.Incarnation {
			// A new incarnation: the process restarted, and may have lost
			// the log tail it had not fsynced, which its followers may
			// hold. What it leads gets a new leader epoch, so a follower's
			// divergence check (KIP-320) sees the leader's log change.
			for _, t := range im.Topics {
				for i := range t.Partitions {
					if p := &t.Partitions[i]; p.Leader == br.NodeID {
						p.LeaderEpoch++
						p.PartitionEpoch++
					}
				}
			}
		}
		im.Brokers[br.NodeID] = Broker{NodeID: br.NodeID, Incarnation: br.Incarnation, Host: br.Host, Port: br.Port,
			Listeners: br.Listeners, Epoch: epoch, Fenced: true}
	case r.Scram != nil:
		return im.applyScram(r.Scram)
	case r.ACL != nil:
		return im.applyACL(r.ACL)
	case r.Quota != nil:
		return im.applyQuota(r.Quota)
	case r.CredentialsBootstrap != nil:
		if im.CredentialsBootstrapped {
			return fmt.Errorf("bootstrap credentials were applied already")
		}
		im.CredentialsBootstrapped = true
	case r.BrokerChange != nil:
		ch := r.BrokerChange
		br, ok := im.Brokers[ch.NodeID]
		if !ok || br.Epoch != ch.Epoch {
			return fmt.Errorf("broker change %+v: no registration of node %d at epoch %d", *ch, ch.NodeID, ch.Epoch)
		}
		br.Fenced, br.ControlledShutdown = ch.Fenced, ch.ControlledShutdown
		im.Brokers[ch.NodeID] = br
	default:
		return fmt.Errorf("empty metadata record")
	}
	return nil
}

// changePartition replaces an existing partition's leadership and ISR,
// counting a leader taken from outside the ISR as an unclean election.
// A change of leader must raise the leader epoch, and an epoch never goes
// back: a change planned on an image that another change has since moved
// on does not apply.
func (im *Image) changePartition(t *Topic, p *PartitionRecord) error {
	cur := &t.Partitions[p.Index]
	switch {
	case p.LeaderEpoch < cur.LeaderEpoch:
		return fmt.Errorf("topic %q partition %d: leader epoch %d is below the current %d", t.Name, p.Index, p.LeaderEpoch, cur.LeaderEpoch)
	case p.Leader != cur.Leader && p.LeaderEpoch == cur.LeaderEpoch:
		return fmt.Errorf("topic %q partition %d: leader %d -> %d without a new leader epoch", t.Name, p.Index, cur.Leader, p.Leader)
	case len(p.ISR) == 0:
		return fmt.Errorf("topic %q partition %d: empty ISR", t.Name, p.Index)
	}
	replicas, adding, removing := cur.Replicas, cur.AddingReplicas, cur.RemovingReplicas
	if p.StatesAssignment() {
		replicas, adding, removing = slices.Clone(p.Replicas), deref(p.AddingReplicas), deref(p.RemovingReplicas)
		if err := checkAssignment(replicas, adding, removing); err != nil {
			return fmt.Errorf("topic %q partition %d: %w", t.Name, p.Index, err)
		}
	}
	for _, r := range p.ISR {
		if !slices.Contains(replicas, r) {
			return fmt.Errorf("topic %q partition %d: ISR member %d is not a replica", t.Name, p.Index, r)
		}
	}
	if p.Leader != -1 && !slices.Contains(p.ISR, p.Leader) {
		return fmt.Errorf("topic %q partition %d: leader %d is not in the ISR %v", t.Name, p.Index, p.Leader, p.ISR)
	}
	// A change names the partition epoch it makes, one past the current:
	// planned on a stale image, it does not apply. Records written before
	// partition epochs existed carry none and count as the next.
	next := cur.PartitionEpoch + 1
	if p.PartitionEpoch != 0 && p.PartitionEpoch != next {
		return fmt.Errorf("topic %q partition %d: partition epoch %d, want %d", t.Name, p.Index, p.PartitionEpoch, next)
	}
	// An unclean election gives the leadership to a replica outside the
	// ISR and leaves the assignment as it is. A reassignment completed by
	// the ISR change that brings its last new replica in may hand the
	// leadership to that replica in the same record, which restates the
	// assignment: the replica is in sync, and the change is clean.
	if p.Leader != -1 && p.Leader != cur.Leader && !slices.Contains(cur.ISR, p.Leader) && !p.StatesAssignment() {
		im.UncleanElections++
	}
	if p.Leader != -1 && p.Leader != cur.Leader {
		im.LeaderElections++
	}
	if slices.ContainsFunc(cur.ISR, func(r int32) bool { return !slices.Contains(p.ISR, r) }) {
		im.ISRShrinks++
	}
	if slices.ContainsFunc(p.ISR, func(r int32) bool { return !slices.Contains(cur.ISR, r) }) {
		im.ISRExpands++
	}
	cur.Leader, cur.LeaderEpoch, cur.ISR, cur.PartitionEpoch = p.Leader, p.LeaderEpoch, slices.Clone(p.ISR), next
	cur.Replicas, cur.AddingReplicas, cur.RemovingReplicas = replicas, adding, removing
	return nil
}

// checkAssignment checks a stated assignment: replicas distinct and not
// empty, the replicas being added and removed among them, none both.
func checkAssignment(replicas, adding, removing []int32) error {
	if len(replicas) == 0 {
		return fmt.Errorf("empty replica list")
	}
	for i, r := range replicas {
		if r < 0 || slices.Contains(replicas[:i], r) {
			return fmt.Errorf("replica list %v has a negative or repeated id", replicas)
		}
	}
	for _, r := range adding {
		if !slices.Contains(replicas, r) || slices.Contains(removing, r) {
			return fmt.Errorf("adding replica %d is not a replica, or is also being removed", r)
		}
	}
	for _, r := range removing {
		if !slices.Contains(replicas, r) {
			return fmt.Errorf("removing replica %d is not a replica", r)
		}
	}
	if len(removing) == len(replicas) {
		return fmt.Errorf("every replica of %v is being removed", replicas)
	}
	return nil
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
