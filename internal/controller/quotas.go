package controller

import (
	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/quota"
)

// AlterQuotas commits changes (validated) in one batch; any node may ask.
func (c *Controller) AlterQuotas(changes []metadata.QuotaRecord) error {
	return c.changeVia(func(*metadata.Image) ([]metadata.Record, error) {
		recs := make([]metadata.Record, 0, len(changes))
		for i := range changes {
			recs = append(recs, metadata.Record{Quota: &changes[i]})
		}
		return recs, nil
	}, c.forwarded())
}

// Quotas are the image's client quotas.
func (c *Controller) Quotas() quota.Set {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.image.Quotas
}
