package faults

import (
	"testing"
	"time"
)

func TestParseReadsEveryActionAndModifier(t *testing.T) {
	in, err := Parse("produce.response=drop@0.5#3+2, fetch.response=delay:150ms, metadata.response=close,produce.response=exit,txn.before-markers=exit", 1)
	if err != nil {
		t.Fatal(err)
	}
	r := in.rules[0]
	if r.action.Kind != Drop || r.prob != 0.5 || r.times != 3 || r.skip != 2 {
		t.Fatalf("rule 0: %+v", r)
	}
	if in.rules[1].action != (Action{Kind: Delay, Delay: 150 * time.Millisecond}) {
		t.Fatalf("rule 1: %+v", in.rules[1].action)
	}
	if in.rules[2].action.Kind != Close || in.rules[3].action.Kind != Exit {
		t.Fatalf("rules 2, 3: %+v %+v", in.rules[2], in.rules[3])
	}
}

func TestParseRejectsBadSpecs(t *testing.T) {
	for _, spec := range []string{"", "produce=drop", "txn.whenever=exit", ".response=drop", "produce.response=explode",
		"produce.response=delay:abc", "produce.response=drop@2", "produce.response=drop#-1", "produce.response"} {
		if _, err := Parse(spec, 1); err == nil {
			t.Errorf("%q accepted", spec)
		}
	}
}

// Skip, times and probability shape when a rule fires; the same seed
// gives the same schedule.
func TestFireFollowsSkipTimesAndSeed(t *testing.T) {
	in, _ := Parse("produce.response=drop#2+1", 1)
	var got []Kind
	for range 5 {
		got = append(got, in.Fire("produce.response").Kind)
	}
	want := []Kind{None, Drop, Drop, None, None}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("fires %v, want %v", got, want)
		}
	}
	if in.Fired("produce.response") != 2 || in.Fire("fetch.response").Kind != None {
		t.Fatal("counts or other points wrong")
	}
	schedule := func(seed int64) (s []Kind) {
		in, _ := Parse("produce.response=drop@0.3", seed)
		for range 50 {
			s = append(s, in.Fire("produce.response").Kind)
		}
		return s
	}
	a, b := schedule(7), schedule(7)
	drops := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("same seed, different schedule")
		}
		if a[i] == Drop {
			drops++
		}
	}
	if drops == 0 || drops == 50 {
		t.Fatalf("probability 0.3 fired %d of 50 times", drops)
	}
	var nilInjector *Injector
	if nilInjector.Fire("produce.response").Kind != None {
		t.Fatal("nil injector fired")
	}
}

// "none" starts with nothing armed; a rule added later fires from the
// next request on, as many times as it says, and a bad one is refused.
func TestNoneFiresNothingUntilARuleIsAdded(t *testing.T) {
	in, err := Parse("none", 1)
	if err != nil {
		t.Fatal(err)
	}
	if k := in.Fire("produce.response").Kind; k != None {
		t.Fatalf("empty injector fired %v", k)
	}
	if err := in.Add("produce.response=drop#1"); err != nil {
		t.Fatal(err)
	}
	if a, b := in.Fire("produce.response").Kind, in.Fire("produce.response").Kind; a != Drop || b != None {
		t.Fatalf("added one-shot rule fired %v then %v, want drop then none", a, b)
	}
	for _, bad := range []string{"", "produce.response=explode"} {
		if err := in.Add(bad); err == nil {
			t.Errorf("Add(%q) accepted", bad)
		}
	}
	var off *Injector
	if err := off.Add("produce.response=drop#1"); err == nil {
		t.Error("Add on a broker without fault injection accepted")
	}
}
