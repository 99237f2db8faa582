package metadata

import (
	"encoding/json"
	"slices"
)

// Record is one change to the image. Exactly one field is set. Records are
// stored JSON-encoded as record values in the metadata log.
type Record struct {
	Topic       *TopicRecord       `json:"topic,omitempty"`
	Partition   *PartitionRecord   `json:"partition,omitempty"`
	Config      *ConfigRecord      `json:"config,omitempty"`
	RemoveTopic *RemoveTopicRecord `json:"removeTopic,omitempty"`
	ProducerIDs *ProducerIDsRecord `json:"producerIds,omitempty"`
	Broker      *BrokerRecord      `json:"broker,omitempty"`
	// BrokerChange fences, unfences or starts the controlled shutdown of
	// a registered broker (KIP-631's BrokerRegistrationChangeRecord).
	BrokerChange *BrokerChangeRecord `json:"brokerChange,omitempty"`
	// Scram sets or removes a user's SCRAM credential (scram.go).
	Scram *ScramRecord `json:"scram,omitempty"`
	// CredentialsBootstrap marks the batch that applied the credentials
	// written with `weir user add --data` before the first start; there is
	// at most one, so credentials removed later never come back.
	CredentialsBootstrap *CredentialsBootstrapRecord `json:"credentialsBootstrap,omitempty"`
	// ACL adds or removes an ACL (acls.go).
	ACL *ACLRecord `json:"acl,omitempty"`
	// Quota sets or removes a client quota (quotas.go).
	Quota *QuotaRecord `json:"quota,omitempty"`
}

// TopicRecord creates a topic (its partitions follow as PartitionRecords).
type TopicRecord struct {
	Name     string            `json:"name"`
	ID       TopicID           `json:"id"`
	Configs  map[string]string `json:"configs,omitempty"`
	Internal bool              `json:"internal,omitempty"`
}

// PartitionRecord adds the next partition to a topic, or, for a partition
// the topic has, replaces its leader, leader epoch and ISR (what Kafka's
// PartitionChangeRecord does): a new leader comes with a higher leader
// epoch. A change replaces the replicas only when it states a
// reassignment (AddingReplicas and RemovingReplicas set); otherwise its
// Replicas are ignored and the assignment, with any reassignment in
// progress, stays.
type PartitionRecord struct {
	TopicID     TopicID `json:"topicId"`
	Index       int32   `json:"index"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leaderEpoch"`
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
	// PartitionEpoch is the partition epoch the record makes: 0 for a new
	// partition, one past the current for a change.
	PartitionEpoch int32 `json:"partitionEpoch,omitempty"`
	// AddingReplicas and RemovingReplicas, when set (both or neither),
	// state the partition's whole assignment after the record (KIP-455):
	// Replicas, and of them those being added and those being removed by
	// a reassignment in progress (empty lists when none is). They are
	// pointers so that "no change" (nil, as in every record written
	// before reassignment existed) differs from "none in progress" (an
	// empty list), as the nullable fields of Kafka's record do.
	AddingReplicas   *[]int32 `json:"addingReplicas,omitempty"`
	RemovingReplicas *[]int32 `json:"removingReplicas,omitempty"`
}

// StatesAssignment reports whether the record sets the partition's
// replicas (see AddingReplicas).
func (p *PartitionRecord) StatesAssignment() bool {
	return p.AddingReplicas != nil || p.RemovingReplicas != nil
}

// IDs returns a pointer to ids, never nil: how a record states a list
// that may be empty (PartitionRecord.AddingReplicas).
func IDs(ids []int32) *[]int32 {
	out := slices.Clone(ids)
	if out == nil {
		out = []int32{}
	}
	return &out
}

// deref is the list p points to, nil for none.
func deref(p *[]int32) []int32 {
	if p == nil || len(*p) == 0 {
		return nil
	}
	return slices.Clone(*p)
}

// ConfigRecord sets (Value non-nil) or removes a topic config override.
type ConfigRecord struct {
	TopicID TopicID `json:"topicId"`
	Name    string  `json:"name"`
	Value   *string `json:"value"`
}

// RemoveTopicRecord deletes a topic.
type RemoveTopicRecord struct {
	TopicID TopicID `json:"topicId"`
}

// Encode returns the record's stored form.
func (r Record) Encode() []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // only plain data types: cannot fail
	}
	return b
}

// DecodeRecord parses a stored record.
func DecodeRecord(b []byte) (Record, error) {
	var r Record
	err := json.Unmarshal(b, &r)
	return r, err
}

// ProducerIDsRecord hands out the block of producer ids [Start, Start+Size)
// (KIP-730): ids below Start+Size are never handed out again, whatever
// happens to the node that holds the block.
type ProducerIDsRecord struct {
	Start int64 `json:"start"`
	Size  int64 `json:"size"`
}

// BrokerRecord registers a broker (KIP-631): the node, the incarnation of
// the process that registered (random per start) and the address of its
// Kafka listener. A later record for the same node replaces the earlier
// one: the node restarted, perhaps at another address. A registration
// starts fenced; its broker epoch is the offset of the entry holding it.
type BrokerRecord struct {
	NodeID      int32  `json:"nodeId"`
	Incarnation string `json:"incarnation"`
	Host        string `json:"host"`
	Port        int32  `json:"port"`
	// Listeners is the broker's advertised listeners (Broker.Listeners).
	Listeners string `json:"listeners,omitempty"`
	// Epoch, when set, is the registration's broker epoch; only the
	// records a Diff describes set it. A registration a broker proposes
	// leaves it 0 and gets the offset of its entry.
	Epoch int64 `json:"epoch,omitempty"`
}

// BrokerChangeRecord sets the state of the registration of NodeID whose
// broker epoch is Epoch: fenced or not, and whether it is in a controlled
// shutdown. It does not apply to another registration of the node (a
// newer incarnation), so a change planned for a process that has since
// restarted is dropped.
type BrokerChangeRecord struct {
	NodeID             int32 `json:"nodeId"`
	Epoch              int64 `json:"epoch"`
	Fenced             bool  `json:"fenced"`
	ControlledShutdown bool  `json:"controlledShutdown,omitempty"`
}
