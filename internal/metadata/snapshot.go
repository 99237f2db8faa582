package metadata

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/weir-broker/weir/internal/acl"
	"github.com/weir-broker/weir/internal/quota"
)

// snapshotForm is the stored form of an image: what a quorum's snapshot
// holds so that a restart or a lagging node need not replay the whole log.
type snapshotForm struct {
	Topics         []*Topic  `json:"topics"`
	NextProducerID int64     `json:"nextProducerId"`
	Brokers        []Broker  `json:"brokers,omitempty"`
	Learners       []Learner `json:"learners,omitempty"`
	// UncleanElections is Image.UncleanElections; a snapshot written
	// before it was counted reads as 0.
	UncleanElections int64 `json:"uncleanElections,omitempty"`
	// LeaderElections, ISRShrinks and ISRExpands are the Image's; a
	// snapshot written before they were counted reads as 0.
	LeaderElections int64 `json:"leaderElections,omitempty"`
	ISRShrinks      int64 `json:"isrShrinks,omitempty"`
	ISRExpands      int64 `json:"isrExpands,omitempty"`
	// Scram is every SCRAM credential; absent before credentials existed.
	Scram []ScramEntry `json:"scram,omitempty"`
	// CredentialsBootstrapped is Image.CredentialsBootstrapped.
	CredentialsBootstrapped bool `json:"credentialsBootstrapped,omitempty"`
	// ACLs is Image.ACLs.
	ACLs []acl.Binding `json:"acls,omitempty"`
	// Quotas is Image.Quotas.
	Quotas []quota.Entry `json:"quotas,omitempty"`
}

// Learner is a non-voting member of the metadata quorum and the address
// of its controller listener.
type Learner struct {
	NodeID int32  `json:"nodeId"`
	Addr   string `json:"addr"`
}

// Encode returns the image's stored form (its offset is kept by the
// snapshot that holds it).
func (im *Image) Encode() []byte {
	f := snapshotForm{NextProducerID: im.NextProducerID, UncleanElections: im.UncleanElections,
		LeaderElections: im.LeaderElections, ISRShrinks: im.ISRShrinks, ISRExpands: im.ISRExpands, Scram: im.scramEntries(), CredentialsBootstrapped: im.CredentialsBootstrapped, ACLs: im.ACLs, Quotas: im.quotaEntries()}
	for _, id := range im.BrokerIDs() {
		f.Brokers = append(f.Brokers, im.Brokers[id])
	}
	for _, name := range im.TopicNames() {
		f.Topics = append(f.Topics, im.Topics[name])
	}
	for _, id := range slices.Sorted(maps.Keys(im.Learners)) {
		f.Learners = append(f.Learners, Learner{NodeID: id, Addr: im.Learners[id]})
	}
	b, err := json.Marshal(f)
	if err != nil {
		panic(err) // only plain data types: cannot fail
	}
	return b
}

// DecodeImage rebuilds an image from its stored form, at offset.
func DecodeImage(b []byte, offset int64) (*Image, error) {
	var f snapshotForm
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("decode metadata snapshot: %w", err)
	}
	im := NewImage()
	for _, t := range f.Topics {
		if t == nil || im.Topics[t.Name] != nil || im.byID[t.ID] != nil {
			return nil, fmt.Errorf("metadata snapshot: topic listed twice or empty")
		}
		im.Topics[t.Name] = t
		im.byID[t.ID] = t
	}
	for _, br := range f.Brokers {
		if _, dup := im.Brokers[br.NodeID]; dup {
			return nil, fmt.Errorf("metadata snapshot: broker %d listed twice", br.NodeID)
		}
		im.Brokers[br.NodeID] = br
	}
	for _, l := range f.Learners {
		if _, dup := im.Learners[l.NodeID]; dup {
			return nil, fmt.Errorf("metadata snapshot: learner %d listed twice", l.NodeID)
		}
		im.Learners[l.NodeID] = l.Addr
	}
	for _, e := range f.Scram {
		c := e.Credential
		if err := im.applyScram(&ScramRecord{User: e.User, Mechanism: e.Mechanism, Credential: &c}); err != nil {
			return nil, fmt.Errorf("metadata snapshot: %w", err)
		}
	}
	im.NextProducerID = f.NextProducerID
	im.UncleanElections = f.UncleanElections
	im.LeaderElections, im.ISRShrinks, im.ISRExpands = f.LeaderElections, f.ISRShrinks, f.ISRExpands
	im.CredentialsBootstrapped = f.CredentialsBootstrapped
	for _, q := range f.Quotas {
		for k, v := range q.Values {
			if err := im.applyQuota(&QuotaRecord{Entity: q.Entity, Key: k, Value: &v}); err != nil {
				return nil, fmt.Errorf("metadata snapshot: %w", err)
			}
		}
	}
	for _, b := range f.ACLs {
		if err := im.applyACL(&ACLRecord{Binding: b}); err != nil {
			return nil, fmt.Errorf("metadata snapshot: %w", err)
		}
	}
	im.Offset = offset
	return im, nil
}

// Clone returns a deep copy of the image.
func (im *Image) Clone() *Image {
	c := NewImage()
	c.Offset, c.NextProducerID, c.UncleanElections = im.Offset, im.NextProducerID, im.UncleanElections
	c.LeaderElections, c.ISRShrinks, c.ISRExpands = im.LeaderElections, im.ISRShrinks, im.ISRExpands
	c.CredentialsBootstrapped = im.CredentialsBootstrapped
	c.ACLs = im.ACLs
	c.Quotas = im.Quotas
	c.NodeIDs = slices.Clone(im.NodeIDs)
	maps.Copy(c.Brokers, im.Brokers)
	maps.Copy(c.Learners, im.Learners)
	maps.Copy(c.Scram, im.Scram)
	for name, t := range im.Topics {
		nt := &Topic{Name: t.Name, ID: t.ID, Internal: t.Internal, Configs: maps.Clone(t.Configs)}
		for _, p := range t.Partitions {
			nt.Partitions = append(nt.Partitions, Partition{Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
				Replicas: slices.Clone(p.Replicas), ISR: slices.Clone(p.ISR), PartitionEpoch: p.PartitionEpoch,
				AddingReplicas: slices.Clone(p.AddingReplicas), RemovingReplicas: slices.Clone(p.RemovingReplicas)})
		}
		c.Topics[name] = nt
		c.byID[nt.ID] = nt
	}
	return c
}

// ApplyBatch applies recs all or none: when one does not fit, the image is
// left as it was and the error says which. Every node of a quorum decides
// the same way, because each applies the same batches to the same image.
func (im *Image) ApplyBatch(recs []Record) error {
	offset := im.Offset
	if err := im.ApplyBatchAt(recs, offset+1); err != nil {
		return err
	}
	im.Offset = offset
	return nil
}

// ApplyBatchAt is ApplyBatch for the entry at offset: the image's offset
// becomes offset when the batch applies (and stays when it does not), and
// a broker registered in it gets offset as its epoch.
func (im *Image) ApplyBatchAt(recs []Record, offset int64) error {
	trial := im.Clone()
	trial.Offset = offset - 1
	for i, r := range recs {
		if err := trial.Apply(r); err != nil {
			return fmt.Errorf("record %d of %d: %w", i+1, len(recs), err)
		}
	}
	*im = *trial
	im.Offset = offset
	return nil
}

// Diff returns records that, applied to old in order, describe how it
// became new: what a listener of applied records is told when a snapshot
// replaces an image wholesale.
func Diff(old, new *Image) []Record {
	var recs []Record
	for _, name := range old.TopicNames() {
		t := old.Topics[name]
		if nt, ok := new.byID[t.ID]; !ok || nt.Name != t.Name {
			recs = append(recs, Record{RemoveTopic: &RemoveTopicRecord{TopicID: t.ID}})
		}
	}
	for _, name := range new.TopicNames() {
		nt := new.Topics[name]
		ot, ok := old.byID[nt.ID]
		if !ok || ot.Name != nt.Name {
			recs = append(recs, Record{Topic: &TopicRecord{Name: nt.Name, ID: nt.ID, Configs: maps.Clone(nt.Configs), Internal: nt.Internal}})
			ot = &Topic{}
		} else {
			for _, k := range slices.Sorted(maps.Keys(ot.Configs)) {
				if _, ok := nt.Configs[k]; !ok {
					recs = append(recs, Record{Config: &ConfigRecord{TopicID: nt.ID, Name: k}})
				}
			}
			for _, k := range slices.Sorted(maps.Keys(nt.Configs)) {
				if v, ok := ot.Configs[k]; !ok || v != nt.Configs[k] {
					nv := nt.Configs[k]
					recs = append(recs, Record{Config: &ConfigRecord{TopicID: nt.ID, Name: k, Value: &nv}})
				}
			}
		}
		for i := 0; i < min(len(ot.Partitions), len(nt.Partitions)); i++ {
			op, p := ot.Partitions[i], nt.Partitions[i]
			reassigned := !slices.Equal(op.Replicas, p.Replicas) || !slices.Equal(op.AddingReplicas, p.AddingReplicas) ||
				!slices.Equal(op.RemovingReplicas, p.RemovingReplicas)
			if reassigned || op.Leader != p.Leader || op.LeaderEpoch != p.LeaderEpoch || !slices.Equal(op.ISR, p.ISR) || op.PartitionEpoch != p.PartitionEpoch {
				rec := &PartitionRecord{TopicID: nt.ID, Index: int32(i),
					Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, Replicas: p.Replicas, ISR: p.ISR, PartitionEpoch: p.PartitionEpoch}
				if reassigned {
					rec.AddingReplicas, rec.RemovingReplicas = IDs(p.AddingReplicas), IDs(p.RemovingReplicas)
				}
				recs = append(recs, Record{Partition: rec})
			}
		}
		for i := len(ot.Partitions); i < len(nt.Partitions); i++ {
			p := nt.Partitions[i]
			rec := &PartitionRecord{TopicID: nt.ID, Index: int32(i),
				Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, Replicas: p.Replicas, ISR: p.ISR, PartitionEpoch: p.PartitionEpoch}
			if p.Reassigning() {
				rec.AddingReplicas, rec.RemovingReplicas = IDs(p.AddingReplicas), IDs(p.RemovingReplicas)
			}
			recs = append(recs, Record{Partition: rec})
		}
	}
	for _, id := range new.BrokerIDs() {
		br, ob := new.Brokers[id], old.Brokers[id]
		if ob == br {
			continue
		}
		if ob.Incarnation != br.Incarnation || ob.Epoch != br.Epoch || ob.Host != br.Host || ob.Port != br.Port || ob.Listeners != br.Listeners {
			recs = append(recs, Record{Broker: &BrokerRecord{NodeID: br.NodeID, Incarnation: br.Incarnation, Host: br.Host, Port: br.Port, Listeners: br.Listeners, Epoch: br.Epoch}})
			ob = Broker{Fenced: true}
		}
		if ob.Fenced != br.Fenced || ob.ControlledShutdown != br.ControlledShutdown {
			recs = append(recs, Record{BrokerChange: &BrokerChangeRecord{NodeID: id, Epoch: br.Epoch, Fenced: br.Fenced, ControlledShutdown: br.ControlledShutdown}})
		}
	}
	recs = append(recs, diffScram(old, new)...)
	recs = append(recs, diffACLs(old, new)...)
	recs = append(recs, diffQuotas(old, new)...)
	if new.CredentialsBootstrapped && !old.CredentialsBootstrapped {
		recs = append(recs, Record{CredentialsBootstrap: &CredentialsBootstrapRecord{}})
	}
	if new.NextProducerID > old.NextProducerID {
		recs = append(recs, Record{ProducerIDs: &ProducerIDsRecord{Start: old.NextProducerID, Size: new.NextProducerID - old.NextProducerID}})
	}
	return recs
}
