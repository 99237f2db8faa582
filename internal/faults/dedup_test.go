package faults

import "testing"

func TestSkipIsOnlyAnActionOfTheDedupPoint(t *testing.T) {
	in, err := Parse("producer.dedup=skip#1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := in.Fire(ProducerDedup).Kind; got != Skip {
		t.Fatalf("first pass: %v, want skip", got)
	}
	if got := in.Fire(ProducerDedup).Kind; got != None {
		t.Fatalf("second pass of a #1 rule: %v, want none", got)
	}
	for _, spec := range []string{"produce.response=skip", "txn.before-markers=skip", "producer.dedup=skipp"} {
		if _, err := Parse(spec, 1); err == nil {
			t.Errorf("%q accepted", spec)
		}
	}
}
