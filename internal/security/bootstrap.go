package security

// Bootstrap credentials: `weir user add NAME --data DIR` before a node's
// first start writes the first user's credential into DIR, as Kafka's
// `kafka-storage format --add-scram` does, because on a cluster that
// requires authentication nobody could add one through the API. The
// broker commits the file's credentials to the metadata log once for the
// whole cluster (controller.BootstrapScram) and renames the file.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/weir-broker/weir/internal/metadata"
)

// BootstrapFile is the file in a data directory holding bootstrap
// credentials; AppliedSuffix is added to its name once they are applied.
const (
	BootstrapFile = "scram-bootstrap.json"
	AppliedSuffix = ".applied"
)

// AddBootstrapCredential adds (or replaces) user's credential for
// mechanism in dir's bootstrap file. It refuses a directory a node has
// already started in: its credentials are added through the API then.
func AddBootstrapCredential(dir, user, mechanism string, cred metadata.ScramCredential) error {
	if user == "" {
		return errors.New("the user name is empty")
	}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, e := range entries {
		if e.Name() != BootstrapFile {
			return fmt.Errorf("%s holds a node's data already (%s): add users to a running cluster with `weir user add --brokers`", dir, e.Name())
		}
	}
	recs, err := ReadBootstrap(dir)
	if err != nil {
		return err
	}
	kept := recs[:0]
	for _, r := range recs {
		if r.User != user || r.Mechanism != mechanism {
			kept = append(kept, r)
		}
	}
	kept = append(kept, metadata.ScramRecord{User: user, Mechanism: mechanism, Credential: &cred})
	b, err := json.MarshalIndent(kept, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(dir, BootstrapFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, BootstrapFile))
}

// ReadBootstrap reads dir's bootstrap credentials; none when there is no
// file.
func ReadBootstrap(dir string) ([]metadata.ScramRecord, error) {
	b, err := os.ReadFile(filepath.Join(dir, BootstrapFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var recs []metadata.ScramRecord
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, BootstrapFile), err)
	}
	for _, r := range recs {
		if r.Credential == nil || r.Delete {
			return nil, fmt.Errorf("%s: the entry for user %q holds no credential", filepath.Join(dir, BootstrapFile), r.User)
		}
	}
	return recs, nil
}
