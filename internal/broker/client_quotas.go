package broker

// DescribeClientQuotas v0-1 and AlterClientQuotas v0-1 (KIP-546), and
// their enforcement: a producer over its producer_byte_rate, or a consumer
// over its consumer_byte_rate, is answered at once with throttle_time_ms
// set, and its connection is muted for that long (KIP-219), so one greedy
// client cannot take the broker from the others. Quotas resolve per
// (user, client id) from the most specific entity (internal/quota);
// followers' fetches are not throttled. With no quota set, requests pay
// one atomic load.

import (
	"errors"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/quota"
	"github.com/weir-broker/weir/internal/server"
)

// rebuildQuotas swaps in the image's quotas.
func (b *Broker) rebuildQuotas(im *metadata.Image) {
	qs := im.Quotas
	b.quotas.Store(&qs)
}

// quotaSet is the current quotas; nil or empty when none is set.
func (b *Broker) quotaSet() quota.Set {
	if p := b.quotas.Load(); p != nil {
		return *p
	}
	return nil
}

// userOf is the quota user of a principal: its name without "User:".
func userOf(principal string) string {
	return strings.TrimPrefix(principal, "User:")
}

// throttled wraps the reply of a Produce or consumer Fetch when a quota
// applies to the client: the bytes it wrote or read are counted, and when
// they put it over its quota the answer carries the throttle and the
// connection is muted. Other requests are returned as they are.
func (b *Broker) throttled(qs quota.Set, c *server.Conn, req kmsg.Request, reply server.Reply) server.Reply {
	var key string
	var produced int
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		key = quota.ProducerByteRate
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				produced += len(p.Records)
			}
		}
	case *kmsg.FetchRequest:
		if replicaOf(r) >= 0 {
			return reply
		}
		key = quota.ConsumerByteRate
	default:
		return reply
	}
	res, ok := qs.Resolve(key, userOf(c.Principal), c.ClientID)
	if !ok {
		return reply
	}
	if f, isFetch := req.(*kmsg.FetchRequest); isFetch {
		if d := b.sensors.Throttle(res, time.Now()); d > 0 {
			// Over its quota already (on this connection or another of the
			// same client): the fetch is answered empty, with the throttle,
			// as Kafka answers it, so reconnecting reads nothing more.
			resp := f.ResponseKind().(*kmsg.FetchResponse)
			resp.ThrottleMillis = int32(d.Milliseconds())
			c.Mute(d)
			return func() (kmsg.Response, error) { return resp, nil }
		}
		// No fetch brings more than the quota lets through in its window
		// (Kafka's getMaxValueInQuotaWindow); KIP-74 still gives at least
		// one batch.
		window := int32(min(res.Limit*b.sensors.MaxThrottle().Seconds(), float64(1<<31-1)))
		if f.MaxBytes <= 0 || f.MaxBytes > window {
			f.MaxBytes = window
		}
		for i := range f.Topics {
			for j := range f.Topics[i].Partitions {
				if p := &f.Topics[i].Partitions[j]; p.PartitionMaxBytes > window {
					p.PartitionMaxBytes = window
				}
			}
		}
	}
	return func() (kmsg.Response, error) {
		resp, err := reply()
		if err != nil {
			return resp, err
		}
		bytes := produced
		if f, ok := server.Unwrap(resp).(*kmsg.FetchResponse); ok {
			for _, t := range f.Topics {
				for _, p := range t.Partitions {
					bytes += len(p.RecordBatches)
				}
			}
		}
		d := b.sensors.Record(res, time.Now(), float64(bytes))
		if d > 0 {
			ms := int32(d.Milliseconds())
			switch r := server.Unwrap(resp).(type) {
			case *kmsg.ProduceResponse:
				r.ThrottleMillis = max(r.ThrottleMillis, ms)
			case *kmsg.FetchResponse:
				r.ThrottleMillis = max(r.ThrottleMillis, ms)
			}
			c.Mute(time.Duration(ms) * time.Millisecond)
		}
		return resp, nil
	}
}

func (b *Broker) handleDescribeClientQuotas(req *kmsg.DescribeClientQuotasRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeClientQuotasResponse)
	for _, comp := range req.Components {
		if comp.EntityType != quota.User && comp.EntityType != quota.ClientID {
			resp.ErrorCode = kerr.InvalidRequest.Code
			resp.ErrorMessage = errMessage(errors.New("entity type " + comp.EntityType + ": want user or client-id"))
			return resp
		}
	}
	for _, e := range b.quotaSet() {
		if !quotaMatches(e.Entity, req.Components, req.Strict) {
			continue
		}
		re := kmsg.NewDescribeClientQuotasResponseEntry()
		for _, p := range e.Entity {
			x := kmsg.NewDescribeClientQuotasResponseEntryEntity()
			x.Type, x.Name = p.Type, p.Name
			re.Entity = append(re.Entity, x)
		}
		for k, v := range e.Values {
			x := kmsg.NewDescribeClientQuotasResponseEntryValue()
			x.Key, x.Value = k, v
			re.Values = append(re.Values, x)
		}
		resp.Entries = append(resp.Entries, re)
	}
	return resp
}

// quotaMatches reports whether entity answers the components: each names
// a part of the entity, exactly, the default, or any; strict also wants
// no other part.
func quotaMatches(entity quota.Entity, comps []kmsg.DescribeClientQuotasRequestComponent, strict bool) bool {
	for _, comp := range comps {
		found := false
		for _, p := range entity {
			if p.Type != comp.EntityType {
				continue
			}
			switch comp.MatchType {
			case kmsg.QuotasMatchTypeExact:
				found = p.Name != nil && comp.Match != nil && *p.Name == *comp.Match
			case kmsg.QuotasMatchTypeDefault:
				found = p.Name == nil
			default:
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return !strict || len(entity) == len(comps)
}

func (b *Broker) handleAlterClientQuotas(req *kmsg.AlterClientQuotasRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AlterClientQuotasResponse)
	var changes []metadata.QuotaRecord
	var at []int
	for _, e := range req.Entries {
		re := kmsg.NewAlterClientQuotasResponseEntry()
		var entity quota.Entity
		for _, p := range e.Entity {
			x := kmsg.NewAlterClientQuotasResponseEntryEntity()
			x.Type, x.Name = p.Type, p.Name
			re.Entity = append(re.Entity, x)
			entity = append(entity, quota.Part{Type: p.Type, Name: p.Name})
		}
		err := entity.Validate()
		var mine []metadata.QuotaRecord
		for _, op := range e.Ops {
			if err != nil {
				break
			}
			rec := metadata.QuotaRecord{Entity: entity, Key: op.Key}
			if !op.Remove {
				v := op.Value
				rec.Value = &v
				err = quota.CheckValue(op.Key, v)
			} else if op.Key != quota.ProducerByteRate && op.Key != quota.ConsumerByteRate {
				err = quota.CheckValue(op.Key, 1)
			}
			mine = append(mine, rec)
		}
		if err != nil {
			re.ErrorCode, re.ErrorMessage = kerr.InvalidRequest.Code, errMessage(err)
		} else if !req.ValidateOnly {
			for range mine {
				at = append(at, len(resp.Entries))
			}
			changes = append(changes, mine...)
		}
		resp.Entries = append(resp.Entries, re)
	}
	if len(changes) > 0 {
		if err := b.ctrl.AlterQuotas(changes); err != nil {
			for _, i := range at {
				resp.Entries[i].ErrorCode, resp.Entries[i].ErrorMessage = errCode(err), errMessage(err)
			}
		}
	}
	return resp
}
