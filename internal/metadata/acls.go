package metadata

// ACLs (KIP-11, KIP-290) live in the metadata log like the credentials, so
// every node authorizes alike and a restart replays them.

import (
	"fmt"
	"slices"

	"github.com/weir-broker/weir/internal/acl"
)

// ACLRecord adds Binding, or with Delete removes it. Adding a binding the
// image holds changes nothing, as creating an existing ACL does in Kafka.
type ACLRecord struct {
	Binding acl.Binding `json:"binding"`
	Delete  bool        `json:"delete,omitempty"`
}

func (im *Image) applyACL(r *ACLRecord) error {
	i := slices.Index(im.ACLs, r.Binding)
	if r.Delete {
		if i < 0 {
			return fmt.Errorf("ACL %v does not exist", r.Binding)
		}
		im.ACLs = slices.Delete(slices.Clone(im.ACLs), i, i+1)
		return nil
	}
	if err := r.Binding.Validate(); err != nil {
		return err
	}
	if i < 0 {
		im.ACLs = append(slices.Clone(im.ACLs), r.Binding)
	}
	return nil
}

// diffACLs is the part of Diff for ACLs.
func diffACLs(old, new *Image) []Record {
	var recs []Record
	for _, b := range old.ACLs {
		if !slices.Contains(new.ACLs, b) {
			recs = append(recs, Record{ACL: &ACLRecord{Binding: b, Delete: true}})
		}
	}
	for _, b := range new.ACLs {
		if !slices.Contains(old.ACLs, b) {
			recs = append(recs, Record{ACL: &ACLRecord{Binding: b}})
		}
	}
	return recs
}
