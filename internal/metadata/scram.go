package metadata

// SCRAM credentials (KIP-554) live in the metadata log like everything
// else the cluster agrees on, so every node authenticates the same users
// and a restart replays them. Only what RFC 5802's server needs is kept:
// the salt, the iteration count and the two derived keys, never the
// password.

import (
	"fmt"
	"maps"
	"slices"
)

// ScramCredential is one user's credential for one mechanism.
type ScramCredential struct {
	Salt       []byte `json:"salt"`
	Iterations int32  `json:"iterations"`
	StoredKey  []byte `json:"storedKey"`
	ServerKey  []byte `json:"serverKey"`
}

// ScramRecord sets User's credential for Mechanism, or with Delete
// removes it (Kafka's UserScramCredentialRecord and its removal).
type ScramRecord struct {
	User      string `json:"user"`
	Mechanism string `json:"mechanism"`
	// Credential is nil when Delete is set.
	Credential *ScramCredential `json:"credential,omitempty"`
	Delete     bool             `json:"delete,omitempty"`
}

// CredentialsBootstrapRecord is Record.CredentialsBootstrap.
type CredentialsBootstrapRecord struct{}

// ScramMechanisms are the mechanisms a credential can be stored for.
var ScramMechanisms = []string{"SCRAM-SHA-256", "SCRAM-SHA-512"}

// ScramEntry is one credential in a snapshot.
type ScramEntry struct {
	User       string          `json:"user"`
	Mechanism  string          `json:"mechanism"`
	Credential ScramCredential `json:"credential"`
}

func (im *Image) applyScram(r *ScramRecord) error {
	if r.User == "" || !slices.Contains(ScramMechanisms, r.Mechanism) {
		return fmt.Errorf("SCRAM credential record for user %q, mechanism %q is malformed", r.User, r.Mechanism)
	}
	if r.Delete {
		creds := im.Scram[r.User]
		if _, ok := creds[r.Mechanism]; !ok {
			return fmt.Errorf("user %q has no %s credential to delete", r.User, r.Mechanism)
		}
		creds = maps.Clone(creds)
		delete(creds, r.Mechanism)
		if len(creds) == 0 {
			delete(im.Scram, r.User)
		} else {
			im.Scram[r.User] = creds
		}
		return nil
	}
	c := r.Credential
	if c == nil || c.Iterations <= 0 || len(c.Salt) == 0 || len(c.StoredKey) == 0 || len(c.ServerKey) == 0 {
		return fmt.Errorf("SCRAM credential record for user %q, mechanism %q has no credential", r.User, r.Mechanism)
	}
	creds := maps.Clone(im.Scram[r.User])
	if creds == nil {
		creds = make(map[string]ScramCredential)
	}
	creds[r.Mechanism] = *c
	im.Scram[r.User] = creds
	return nil
}

// ScramUsers lists the users holding a credential, in order.
func (im *Image) ScramUsers() []string { return slices.Sorted(maps.Keys(im.Scram)) }

// scramEntries lists every credential in user then mechanism order.
func (im *Image) scramEntries() []ScramEntry {
	var es []ScramEntry
	for _, u := range im.ScramUsers() {
		for _, m := range slices.Sorted(maps.Keys(im.Scram[u])) {
			es = append(es, ScramEntry{User: u, Mechanism: m, Credential: im.Scram[u][m]})
		}
	}
	return es
}

// diffScram is the part of Diff for credentials.
func diffScram(old, new *Image) []Record {
	var recs []Record
	for _, e := range old.scramEntries() {
		if _, ok := new.Scram[e.User][e.Mechanism]; !ok {
			recs = append(recs, Record{Scram: &ScramRecord{User: e.User, Mechanism: e.Mechanism, Delete: true}})
		}
	}
	for _, e := range new.scramEntries() {
		if oc, ok := old.Scram[e.User][e.Mechanism]; !ok || !sameCredential(oc, e.Credential) {
			c := e.Credential
			recs = append(recs, Record{Scram: &ScramRecord{User: e.User, Mechanism: e.Mechanism, Credential: &c}})
		}
	}
	return recs
}

func sameCredential(a, b ScramCredential) bool {
	return a.Iterations == b.Iterations && slices.Equal(a.Salt, b.Salt) &&
		slices.Equal(a.StoredKey, b.StoredKey) && slices.Equal(a.ServerKey, b.ServerKey)
}
