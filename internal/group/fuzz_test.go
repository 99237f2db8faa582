package group

import "testing"

// Replay reads records back from __consumer_offsets; whatever the bytes,
// it returns an error or applies them, and the shard then serves requests.
func FuzzReplay(f *testing.F) {
	f.Add(offsetKey("g", topicPartition{"t", 1}), offsetValue(offset{offset: 5, leaderEpoch: -1, metadata: "m", commitMs: 1}))
	g := newGroup("g", 1)
	g.protocolType, g.protocol, g.generation = "consumer", "range", 3
	g.addMember(&member{id: "m1", protocols: []protocol{{"range", []byte{1}}}, sessionTimeoutMs: 10000})
	f.Add(groupKey("g"), groupValue(g, nil))
	f.Add(groupKey("g"), []byte(nil))
	f.Add([]byte{0, 2}, []byte{0, 3, 0xff})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		s := NewShard(testConfig())
		if err := s.Replay(key, value); err != nil {
			return
		}
		s.Loaded(1000)
		s.Tick(1_000_000_000)
	})
}
