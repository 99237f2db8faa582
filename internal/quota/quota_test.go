package quota

import (
	"testing"
	"time"
)

func ptr(s string) *string { return &s }

func TestQuotasResolveFromTheMostSpecificEntityAsKafkaDoes(t *testing.T) {
	s := Set{}
	put := func(e Entity, v float64) {
		s[e.Key()] = Entry{Entity: e, Values: map[string]float64{ProducerByteRate: v}}
	}
	put(Entity{{Type: ClientID}}, 1)                                                     // default client
	put(Entity{{Type: ClientID, Name: ptr("app")}}, 2)                                   // client app
	put(Entity{{Type: User}}, 3)                                                         // default user
	put(Entity{{Type: User, Name: ptr("alice")}}, 4)                                     // user alice
	put(Entity{{Type: User, Name: ptr("alice")}, {Type: ClientID}}, 5)                   // alice, default client
	put(Entity{{Type: ClientID, Name: ptr("app")}, {Type: User, Name: ptr("alice")}}, 6) // alice and app, given in either order
	for _, tc := range []struct {
		user, client string
		want         float64
	}{
		{"alice", "app", 6},
		{"alice", "other", 5},
		{"bob", "app", 3}, // a default user quota beats a client quota
	} {
		r, ok := s.Resolve(ProducerByteRate, tc.user, tc.client)
		if !ok || r.Limit != tc.want {
			t.Errorf("%s/%s: %v %v, want %v", tc.user, tc.client, r, ok, tc.want)
		}
	}
	delete(s, Entity{{Type: User}}.Key())
	if r, _ := s.Resolve(ProducerByteRate, "bob", "app"); r.Limit != 2 {
		t.Errorf("bob/app without a default user quota: %v, want the client's 2", r)
	}
	if r, _ := s.Resolve(ProducerByteRate, "bob", "x"); r.Limit != 1 {
		t.Errorf("bob/x: %v, want the default client's 1", r)
	}
	a, _ := s.Resolve(ProducerByteRate, "bob", "x")
	b, _ := s.Resolve(ProducerByteRate, "bob", "y")
	if a.Sensor == b.Sensor {
		t.Error("two clients under a default quota share one sensor; each must have its own")
	}
	if _, ok := s.Resolve(ConsumerByteRate, "alice", "app"); ok {
		t.Error("a key no entity sets resolved")
	}
}

func TestSensorsThrottleAClientOverItsRateByWhatBringsItBack(t *testing.T) {
	ss := NewSensors(DefaultSamples, DefaultWindow)
	res := Resolution{Limit: 1000, Sensor: "p|client-id=a"}
	now := time.Unix(1000, 0)
	// 10 s at exactly the limit: no throttle.
	for i := range 10 {
		if d := ss.Record(res, now.Add(time.Duration(i)*time.Second), 1000); d != 0 {
			t.Fatalf("at the limit, second %d: throttled %v", i, d)
		}
	}
	// A burst of 10,000 bytes more: throttled.
	d := ss.Record(res, now.Add(10*time.Second), 10000)
	if d <= 0 {
		t.Fatal("a burst over the limit was not throttled")
	}
	// The throttle is about what lets the rate fall back: over an 10 s
	// span, (20000/10 - 1000)/1000 × 10 s = 10 s.
	if d < 5*time.Second || d > 15*time.Second {
		t.Fatalf("throttle %v, want about 10s", d)
	}
	other := Resolution{Limit: 1000, Sensor: "p|client-id=b"}
	if d := ss.Record(other, now.Add(10*time.Second), 500); d != 0 {
		t.Fatalf("another client within its quota throttled %v", d)
	}
}
