package e2e

import "testing"

// The consumer's half of a delivery guarantee is when it commits. A
// consumer is killed (SIGKILL) between processing a poll and committing
// it; a successor in the same group takes over at the committed offset.
// Committing before processing loses the records of that poll and never
// duplicates (at-most-once); processing before committing duplicates them
// and never loses (at-least-once).
func TestConsumerCrashBetweenProcessingAndCommitting(t *testing.T) {
	for _, c := range []struct {
		mode        string
		crashAt     string // the pause at which the consumer is killed
		lossy, dupy bool   // what the crash must cause
	}{
		{commitThenProcess, "before-process", true, false},
		{processThenCommit, "before-commit", false, true},
	} {
		t.Run(c.mode, func(t *testing.T) {
			b, _ := startBroker(t, groupSettings)
			addr := b.Addr()
			createTopic(t, newAdmin(t, addr), "events", 1, nil)
			const total = 100
			produceSpread(t, addr, "events", 0, total)
			group := "g-" + c.mode
			tl := newTally()

			// The first consumer gets through one poll cleanly, then is
			// killed in the middle of the second: after committing and
			// before processing, or after processing and before committing.
			m := startChildMember(t, addr, group, "events", c.mode, memberSession)
			ctx := testCtx(t)
			polls, inCrashPoll := 0, 0
			for {
				recs, committed, point := m.cycle(ctx)
				for _, r := range recs {
					tl.add("first", r.value)
				}
				if point == "idle" {
					polls++
				}
				if polls == 1 && point == c.crashAt {
					// What is in hand now: committed but not processed,
					// or processed but not committed.
					inCrashPoll = max(committed, len(recs))
					m.kill()
					break
				}
				if point == "exited" || point == "timeout" {
					t.FailNow()
				}
				m.resume()
			}
			if inCrashPoll == 0 {
				t.Fatal("the crashed poll held no records")
			}

			// The successor processes then commits, from the committed
			// offset to the end.
			startInMember(t, addr, group, "events", memberSession, tl.sink("second"))
			eventually(t, "successor reaches the end", func() bool { return committedEqualsEnd(t, newAdmin(t, addr), group, "events") })

			lost, dups := 0, 0
			for i := range total {
				switch n := tl.countOf(value(i)); {
				case n == 0:
					lost++
				case n > 1:
					dups += n - 1
				}
			}
			t.Logf("%s: %d records in the crashed poll, %d lost, %d duplicated", c.mode, inCrashPoll, lost, dups)
			if c.lossy && (lost != inCrashPoll || dups != 0) {
				t.Errorf("commit before processing: %d lost, %d duplicated; want the %d of the crashed poll lost and none duplicated", lost, dups, inCrashPoll)
			}
			if c.dupy && (dups != inCrashPoll || lost != 0) {
				t.Errorf("process before committing: %d duplicated, %d lost; want the %d of the crashed poll duplicated and none lost", dups, lost, inCrashPoll)
			}
		})
	}
}
