package config

import (
	"strings"
	"testing"
)

func TestListenersAreParsedInKafkasURLFormWithABareAddressNamedPlaintext(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  map[string]string
		want []Listener
		err  string
	}{
		{name: "default", want: []Listener{{Name: "PLAINTEXT", Protocol: "PLAINTEXT", Host: "127.0.0.1", Port: 9092}}},
		{name: "bare address", set: map[string]string{"listeners": "0.0.0.0:9000"}, want: []Listener{{Name: "PLAINTEXT", Protocol: "PLAINTEXT", Host: "0.0.0.0", Port: 9000}}},
		{name: "several", set: map[string]string{"listeners": "PLAINTEXT://127.0.0.1:9092, SASL_SSL://:9093,ssl://[::1]:0"}, want: []Listener{
			{Name: "PLAINTEXT", Protocol: "PLAINTEXT", Host: "127.0.0.1", Port: 9092},
			{Name: "SASL_SSL", Protocol: "SASL_SSL", Host: "", Port: 9093},
			{Name: "SSL", Protocol: "SSL", Host: "::1", Port: 0},
		}},
		{name: "custom names", set: map[string]string{"listeners": "CLIENT://h:1,REPLICATION://h:2", "listener.security.protocol.map": "CLIENT:SASL_SSL,REPLICATION:SSL", "inter.broker.listener.name": "replication"}, want: []Listener{
			{Name: "CLIENT", Protocol: "SASL_SSL", Host: "h", Port: 1},
			{Name: "REPLICATION", Protocol: "SSL", Host: "h", Port: 2},
		}},
		{name: "unmapped name", set: map[string]string{"listeners": "CLIENT://h:1"}, err: "not in listener.security.protocol.map"},
		{name: "name twice", set: map[string]string{"listeners": "PLAINTEXT://h:1,PLAINTEXT://h:2"}, err: "twice"},
		{name: "bad port", set: map[string]string{"listeners": "PLAINTEXT://h:99999"}, err: "0 to 65535"},
		{name: "no port", set: map[string]string{"listeners": "PLAINTEXT://h"}, err: "missing port"},
		{name: "empty", set: map[string]string{"listeners": " , "}, err: "at least one listener"},
		{name: "advertised unknown name", set: map[string]string{"advertised.listeners": "SSL://h:1"}, err: "not in listeners"},
		{name: "advertised wildcard", set: map[string]string{"advertised.listeners": "PLAINTEXT://0.0.0.0:9092"}, err: "clients can dial"},
		{name: "advertised port 0", set: map[string]string{"advertised.listeners": "PLAINTEXT://h:0"}, err: "clients can dial"},
		{name: "inter-broker name unknown", set: map[string]string{"inter.broker.listener.name": "SSL"}, err: "not in listeners"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBroker()
			for k, v := range tc.set {
				if err := b.Set(k, v); err != nil {
					t.Fatal(err)
				}
			}
			got, err := b.Listeners()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("listener %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestAdvertisedListenersReplaceTheBoundAddressOfTheListenersTheyName(t *testing.T) {
	b := NewBroker()
	for k, v := range map[string]string{
		"listeners":            "PLAINTEXT://0.0.0.0:0,SSL://0.0.0.0:0",
		"advertised.listeners": "SSL://broker1.example:9093",
	} {
		if err := b.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	bound := []Listener{{Name: "PLAINTEXT", Protocol: Plaintext, Host: "10.0.0.1", Port: 40000}, {Name: "SSL", Protocol: SSL, Host: "10.0.0.1", Port: 40001}}
	adv, err := b.Advertised(bound)
	if err != nil {
		t.Fatal(err)
	}
	if adv[0] != bound[0] {
		t.Fatalf("PLAINTEXT advertised %+v, want its bound address %+v", adv[0], bound[0])
	}
	if want := (Listener{Name: "SSL", Protocol: SSL, Host: "broker1.example", Port: 9093}); adv[1] != want {
		t.Fatalf("SSL advertised %+v, want %+v", adv[1], want)
	}
	if got := b.InterBrokerListener(bound); got != "PLAINTEXT" {
		t.Fatalf("inter-broker listener = %s, want PLAINTEXT", got)
	}
}

func TestPrincipalMappingRulesNameTheSubjectByTheFirstMatchingRule(t *testing.T) {
	rules, err := ParsePrincipalRules(`RULE:^CN=([a-z]+),OU=apps,O=Acme$/$1/U, RULE:^CN=(.*?),OU=ops\/eu,.*$/ops-$1/, DEFAULT`)
	if err != nil {
		t.Fatal(err)
	}
	for subject, want := range map[string]string{
		"CN=orders,OU=apps,O=Acme":   "ORDERS",
		"CN=alice,OU=ops/eu,O=Acme":  "ops-alice",
		"CN=Other,OU=apps,O=Acme Co": "CN=Other,OU=apps,O=Acme Co",
	} {
		if got, ok := rules.Map(subject); !ok || got != want {
			t.Errorf("Map(%q) = %q, %v; want %q", subject, got, ok, want)
		}
	}
	strict, err := ParsePrincipalRules(`RULE:^CN=(.*),O=Acme$/$1/L`)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := strict.Map("CN=x,O=Evil"); ok {
		t.Fatalf("a subject no rule matches was named %q", got)
	}
	for _, bad := range []string{"", "RULE:abc", "RULE:a/b", "RULE:(/x/", "DEFAULT RULE:a/b/", "NOPE"} {
		if _, err := ParsePrincipalRules(bad); err == nil {
			t.Errorf("ParsePrincipalRules(%q) accepted", bad)
		}
	}
}
