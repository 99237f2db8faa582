package broker

import (
	"os"
	"path/filepath"
	"time"

	"github.com/weir-broker/weir/internal/security"
)

// bootstrapCredentials commits the data directory's bootstrap credentials
// (security.BootstrapFile) once the metadata can be written, retrying
// until it is or the broker stops, then renames the file so its secrets'
// derived keys do not linger under the name that would apply them.
func (b *Broker) bootstrapCredentials() {
	recs, err := security.ReadBootstrap(b.cfg.DataDir)
	if err != nil {
		b.logger.Error("bootstrap credentials not applied", "err", err)
		return
	}
	if len(recs) == 0 {
		return
	}
	for {
		applied, err := b.ctrl.BootstrapScram(recs)
		if err == nil {
			if applied {
				b.logger.Info("bootstrap credentials applied", "users", len(recs))
			} else {
				b.logger.Warn("bootstrap credentials ignored: the cluster's were applied already; add users with `weir user add --brokers`")
			}
			path := filepath.Join(b.cfg.DataDir, security.BootstrapFile)
			if err := os.Rename(path, path+security.AppliedSuffix); err != nil {
				b.logger.Warn("bootstrap credentials file not renamed", "err", err)
			}
			return
		}
		b.logger.Debug("bootstrap credentials not applied yet; retrying", "err", err)
		select {
		case <-b.stop:
			return
		case <-time.After(registerRetry):
		}
	}
}
