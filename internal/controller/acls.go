package controller

import (
	"github.com/weir-broker/weir/internal/acl"
	"github.com/weir-broker/weir/internal/metadata"
)

// forwarded is the commit of changes any node may ask for: in a cluster
// the records are forwarded to the quorum's leader.
func (c *Controller) forwarded() func([]metadata.Record) error {
	if q, ok := c.store.(*quorum); ok {
		return func(recs []metadata.Record) error { return q.propose(recs, true, nil) }
	}
	return c.store.commit
}

// CreateACLs adds bindings (already validated) in one batch; existing
// ones are left as they are.
func (c *Controller) CreateACLs(bindings []acl.Binding) error {
	return c.changeVia(func(im *metadata.Image) ([]metadata.Record, error) {
		recs := make([]metadata.Record, 0, len(bindings))
		for _, b := range bindings {
			recs = append(recs, metadata.Record{ACL: &metadata.ACLRecord{Binding: b}})
		}
		return recs, nil
	}, c.forwarded())
}

// DeleteACLs removes every binding each filter matches, in one batch, and
// returns, per filter, the bindings it removed.
func (c *Controller) DeleteACLs(filters []acl.Filter) ([][]acl.Binding, error) {
	matched := make([][]acl.Binding, len(filters))
	err := c.changeVia(func(im *metadata.Image) ([]metadata.Record, error) {
		var recs []metadata.Record
		removed := make(map[acl.Binding]bool)
		for i, f := range filters {
			matched[i] = nil
			for _, b := range im.ACLs {
				if !f.Matches(b) {
					continue
				}
				matched[i] = append(matched[i], b)
				if !removed[b] {
					removed[b] = true
					recs = append(recs, metadata.Record{ACL: &metadata.ACLRecord{Binding: b, Delete: true}})
				}
			}
		}
		return recs, nil
	}, c.forwarded())
	return matched, err
}

// ACLs are the image's bindings.
func (c *Controller) ACLs() []acl.Binding {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.image.ACLs
}
