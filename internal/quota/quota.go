// Package quota is Kafka's client quotas (KIP-13, KIP-55, KIP-546): byte
// rates for producers and consumers set per user, per client id, or per
// both, with defaults at each level, resolved from the most specific entity
// that sets one; and the windowed rates that decide how long a client over
// its quota is throttled. It is pure: the quotas come from the metadata
// image and the broker applies the throttles.
package quota

import (
	"fmt"
	"sort"
	"strings"
)

// Entity types.
const (
	User     = "user"
	ClientID = "client-id"
)

// Quota keys served.
const (
	ProducerByteRate = "producer_byte_rate"
	ConsumerByteRate = "consumer_byte_rate"
)

// Part is one component of an entity: a user or a client id, by name, or
// the default (Name nil) that applies to every one without its own.
type Part struct {
	Type string  `json:"type"`
	Name *string `json:"name,omitempty"`
}

// Entity is a user, a client id, or a user and a client id together.
type Entity []Part

// Key is the entity's canonical form, parts in type order:
// "user=alice,client-id=<default>".
func (e Entity) Key() string {
	parts := append(Entity(nil), e...)
	sort.Slice(parts, func(i, j int) bool { return parts[i].Type > parts[j].Type }) // user before client-id
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.Type)
		b.WriteByte('=')
		if p.Name == nil {
			b.WriteString("<default>")
		} else {
			b.WriteString(*p.Name)
		}
	}
	return b.String()
}

// Validate checks an entity AlterClientQuotas names: one user part, one
// client-id part, or one of each.
func (e Entity) Validate() error {
	if len(e) == 0 || len(e) > 2 {
		return fmt.Errorf("an entity is a user, a client id, or both")
	}
	seen := map[string]bool{}
	for _, p := range e {
		if p.Type != User && p.Type != ClientID {
			return fmt.Errorf("entity type %q: want user or client-id (ip quotas are not served)", p.Type)
		}
		if seen[p.Type] {
			return fmt.Errorf("entity names %s twice", p.Type)
		}
		seen[p.Type] = true
	}
	return nil
}

// CheckValue checks a quota key and value AlterClientQuotas sets.
func CheckValue(key string, v float64) error {
	switch key {
	case ProducerByteRate, ConsumerByteRate:
		if v <= 0 {
			return fmt.Errorf("%s must be positive, not %v", key, v)
		}
		return nil
	}
	return fmt.Errorf("quota %q is not served (producer_byte_rate and consumer_byte_rate are)", key)
}

// Set is every entity's quotas by entity key.
type Set map[string]Entry

// Entry is one entity's quotas.
type Entry struct {
	Entity Entity             `json:"entity"`
	Values map[string]float64 `json:"values"`
}

// Resolution is the quota that applies to a client for one key: the
// limit, and the key of the sensor that counts against it (the matched
// entity with its defaults replaced by the client's own names, so every
// client under a default quota gets its own rate).
type Resolution struct {
	Limit  float64
	Sensor string
}

// Resolve finds the quota for key of the client (user, clientID), from the
// most specific entity that sets one, in Kafka's order: user and client
// id, user and default client, user, default user and client id, default
// user and default client, default user, client id, default client. ok
// is false when none sets it.
func (s Set) Resolve(key, user, clientID string) (Resolution, bool) {
	u, c := &user, &clientID
	order := []struct {
		hasUser, userDefault, hasClient, clientDefault bool
	}{
		{true, false, true, false},
		{true, false, true, true},
		{true, false, false, false},
		{true, true, true, false},
		{true, true, true, true},
		{true, true, false, false},
		{false, false, true, false},
		{false, false, true, true},
	}
	for _, o := range order {
		var e Entity
		sensor := Entity{}
		if o.hasUser {
			if user == "" && !o.userDefault {
				continue // an unauthenticated client has no user of its own
			}
			p := Part{Type: User, Name: u}
			if o.userDefault {
				p.Name = nil
			}
			e = append(e, p)
			sensor = append(sensor, Part{Type: User, Name: u})
		}
		if o.hasClient {
			p := Part{Type: ClientID, Name: c}
			if o.clientDefault {
				p.Name = nil
			}
			e = append(e, p)
			sensor = append(sensor, Part{Type: ClientID, Name: c})
		}
		if entry, ok := s[e.Key()]; ok {
			if v, ok := entry.Values[key]; ok {
				return Resolution{Limit: v, Sensor: key + "|" + sensor.Key()}, true
			}
		}
	}
	return Resolution{}, false
}
