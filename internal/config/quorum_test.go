package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestQuorumSettings(t *testing.T) {
	voters := "1@127.0.0.1:9191,2@127.0.0.1:9192,3@127.0.0.1:9193"
	for _, tc := range []struct {
		name    string
		set     map[string]string
		enabled bool
		// brokerOnly: the node is not a voter
		brokerOnly bool
		err        string // substring; "" means valid
	}{
		{name: "none: a single node", set: nil},
		{name: "a voter", set: map[string]string{"node.id": "2", "controller.quorum.voters": voters, "controller.listeners": "127.0.0.1:9192"}, enabled: true},
		{name: "listener without voters", set: map[string]string{"controller.listeners": "127.0.0.1:9192"}, err: "controller.quorum.voters is empty"},
		{name: "broker-only node", set: map[string]string{"node.id": "4", "controller.quorum.voters": voters, "controller.listeners": "127.0.0.1:9194"}, enabled: true, brokerOnly: true},
		{name: "broker-only node without a listener", set: map[string]string{"node.id": "4", "controller.quorum.voters": voters}, err: "needs controller.listeners"},
		{name: "broker-only node on a wildcard address", set: map[string]string{"node.id": "4", "controller.quorum.voters": voters, "controller.listeners": "0.0.0.0:9194"}, err: "not a wildcard"},
		{name: "voter without listener", set: map[string]string{"node.id": "1", "controller.quorum.voters": voters}, err: "controller.listeners"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBroker()
			for k, v := range tc.set {
				if err := b.Set(k, v); err != nil {
					t.Fatal(err)
				}
			}
			q, err := b.Quorum()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if q.Enabled() != tc.enabled || q.BrokerOnly != tc.brokerOnly {
				t.Fatalf("enabled %v, broker only %v; want %v, %v", q.Enabled(), q.BrokerOnly, tc.enabled, tc.brokerOnly)
			}
		})
	}
}

func TestVotersRejectedWhenMalformed(t *testing.T) {
	for _, v := range []string{
		"1@127.0.0.1",            // no port
		"127.0.0.1:9191",         // no id
		"x@127.0.0.1:9191",       // id not a number
		"0@127.0.0.1:9191",       // id not positive
		"1@127.0.0.1:9191,1@h:1", // duplicate id
		"1@:9191",                // no host
		"1@127.0.0.1:70000",      // port out of range
	} {
		if err := NewBroker().Set("controller.quorum.voters", v); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
	got, err := ParseVoters("3@c:3, 1@a:1,2@b:2")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].ID != 1 || got[2].Addr != "c:3" {
		t.Fatalf("parsed %+v", got)
	}
}

// FuzzParseVoters: any input is parsed or refused without a panic, and
// what is accepted reads back the same once written out.
func FuzzParseVoters(f *testing.F) {
	for _, s := range []string{"", "1@127.0.0.1:9191", "1@a:1, 2@b:2,3@[::1]:3", "1@a:1,1@a:1", "x@y", "@:", "1@:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		vs, err := ParseVoters(s)
		if err != nil {
			return
		}
		var parts []string
		seen := make(map[int32]bool)
		for _, v := range vs {
			if v.ID <= 0 || seen[v.ID] {
				t.Fatalf("%q: accepted id %d (duplicate %v)", s, v.ID, seen[v.ID])
			}
			seen[v.ID] = true
			parts = append(parts, fmt.Sprintf("%d@%s", v.ID, v.Addr))
		}
		again, err := ParseVoters(strings.Join(parts, ","))
		if err != nil || !reflect.DeepEqual(again, vs) {
			t.Fatalf("%q: parsed %+v, which reads back as %+v, %v", s, vs, again, err)
		}
	})
}
