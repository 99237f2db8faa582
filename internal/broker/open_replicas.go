package broker

import (
	"sync"

	"github.com/weir-broker/weir/internal/metadata"
	"github.com/weir-broker/weir/internal/partition"
)

// openReplicas opens, at start, every partition this node holds in im:
// those it leads as leaders, the others it hosts as followers. Each
// recovers its log and writes what its open changes durably, so on a
// node of many partitions the opens run num.recovery.threads.per.data.dir
// at a time (Kafka's setting, default 2 since KIP-1030), then are
// published in the image's order. On an error every replica opened is
// still published, so the caller's cleanup closes it.
func (b *Broker) openReplicas(im *metadata.Image) error {
	type replica struct {
		t    *metadata.Topic
		i    int32
		lead bool
		held bool // hosted here: opened, as leader or follower
		p    *partition.Partition
		err  error
	}
	var all []*replica
	for _, name := range im.TopicNames() {
		t := im.Topics[name]
		for i := range t.Partitions {
			r := &replica{t: t, i: int32(i), lead: b.leads(im, t, int32(i))}
			r.held = r.lead || b.hosts(t, int32(i))
			all = append(all, r)
		}
	}
	jobs := make(chan *replica)
	var wg sync.WaitGroup
	for range max(1, int(b.settings.Int("num.recovery.threads.per.data.dir"))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range jobs {
				r.p, r.err = b.openPartitionFiles(r.t, r.i, r.lead)
			}
		}()
	}
	for _, r := range all {
		if r.held {
			jobs <- r
		}
	}
	close(jobs)
	wg.Wait()
	var first error
	for _, r := range all {
		switch {
		case r.err != nil:
			if first == nil {
				first = r.err
			}
		case r.lead:
			b.setPartitionLocked(r.t, r.i, r.p)
		default:
			b.setPartitionLocked(r.t, r.i, nil)
			if r.p != nil {
				b.addFollower(r.t, r.i, r.p)
			}
		}
	}
	return first
}
