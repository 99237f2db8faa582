package controller

import (
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-broker/weir/internal/metadata"
)

// ScramChange sets (Credential set) or deletes (nil) one user's SCRAM
// credential for one mechanism (KIP-554).
type ScramChange struct {
	User       string
	Mechanism  string
	Credential *metadata.ScramCredential
}

// AlterScram commits changes as one batch and returns each one's error:
// deleting a credential the user does not hold fails with
// RESOURCE_NOT_FOUND and is left out; the others commit together. In a
// cluster any node may ask: the batch is forwarded to the quorum's leader,
// and one planned on an image another change overtook is planned again.
func (c *Controller) AlterScram(changes []ScramChange) ([]error, error) {
	errs := make([]error, len(changes))
	err := c.changeVia(func(im *metadata.Image) ([]metadata.Record, error) {
		var recs []metadata.Record
		for i, ch := range changes {
			errs[i] = nil
			rec := &metadata.ScramRecord{User: ch.User, Mechanism: ch.Mechanism, Credential: ch.Credential}
			if ch.Credential == nil {
				if _, ok := im.Scram[ch.User][ch.Mechanism]; !ok {
					errs[i] = fail(kerr.ResourceNotFound, "user %q has no %s credential", ch.User, ch.Mechanism)
					continue
				}
				rec.Delete = true
			}
			recs = append(recs, metadata.Record{Scram: rec})
		}
		return recs, nil
	}, c.forwarded())
	return errs, err
}

// ScramCredential is user's credential for mechanism in the image.
func (c *Controller) ScramCredential(user, mechanism string) (metadata.ScramCredential, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	cred, ok := c.image.Scram[user][mechanism]
	return cred, ok
}

// BootstrapScram applies the credentials written before the first start
// (`weir user add --data`), once for the whole cluster: the batch carries
// a CredentialsBootstrap record, which applies only where none has, so of
// several nodes holding the file the first to commit wins and the others
// find nothing to do. It reports whether this call applied them.
func (c *Controller) BootstrapScram(recs []metadata.ScramRecord) (bool, error) {
	applied := false
	err := c.changeVia(func(im *metadata.Image) ([]metadata.Record, error) {
		applied = false
		if im.CredentialsBootstrapped {
			return nil, nil
		}
		out := []metadata.Record{{CredentialsBootstrap: &metadata.CredentialsBootstrapRecord{}}}
		for i := range recs {
			out = append(out, metadata.Record{Scram: &recs[i]})
		}
		applied = true
		return out, nil
	}, c.forwarded())
	return applied && err == nil, err
}
