package metadata

// Client quotas (KIP-546) live in the metadata log, so every node
// throttles alike and a restart replays them.

import (
	"fmt"
	"maps"
	"slices"

	"github.com/weir-broker/weir/internal/quota"
)

// QuotaRecord sets Key of Entity's quotas to Value, or removes it when
// Value is nil (Kafka's ClientQuotaRecord).
type QuotaRecord struct {
	Entity quota.Entity `json:"entity"`
	Key    string       `json:"key"`
	Value  *float64     `json:"value,omitempty"`
}

func (im *Image) applyQuota(r *QuotaRecord) error {
	if err := r.Entity.Validate(); err != nil {
		return fmt.Errorf("quota record: %w", err)
	}
	k := r.Entity.Key()
	old := im.Quotas[k]
	vals := maps.Clone(old.Values)
	if vals == nil {
		vals = make(map[string]float64)
	}
	if r.Value == nil {
		delete(vals, r.Key)
	} else {
		if err := quota.CheckValue(r.Key, *r.Value); err != nil {
			return fmt.Errorf("quota record: %w", err)
		}
		vals[r.Key] = *r.Value
	}
	qs := maps.Clone(im.Quotas)
	if qs == nil {
		qs = quota.Set{}
	}
	if len(vals) == 0 {
		delete(qs, k)
	} else {
		qs[k] = quota.Entry{Entity: r.Entity, Values: vals}
	}
	im.Quotas = qs
	return nil
}

// quotaEntries lists the quotas in entity-key order, for snapshots.
func (im *Image) quotaEntries() []quota.Entry {
	var es []quota.Entry
	for _, k := range slices.Sorted(maps.Keys(im.Quotas)) {
		es = append(es, im.Quotas[k])
	}
	return es
}

// diffQuotas is the part of Diff for quotas.
func diffQuotas(old, new *Image) []Record {
	var recs []Record
	for k, e := range old.Quotas {
		for key := range e.Values {
			if _, ok := new.Quotas[k].Values[key]; !ok {
				recs = append(recs, Record{Quota: &QuotaRecord{Entity: e.Entity, Key: key}})
			}
		}
	}
	for _, e := range new.quotaEntries() {
		for _, key := range slices.Sorted(maps.Keys(e.Values)) {
			v := e.Values[key]
			if ov, ok := old.Quotas[e.Entity.Key()].Values[key]; !ok || ov != v {
				recs = append(recs, Record{Quota: &QuotaRecord{Entity: e.Entity, Key: key, Value: &v}})
			}
		}
	}
	return recs
}
