package broker

// DescribeLogDirs v0-4 (KIP-113; the volume's sizes are KIP-827's): the
// partitions this node keeps replicas of, in its one log directory, with
// the bytes each takes, leader and follower alike. kafka-log-dirs.sh, the admin clients'
// describeLogDirs and consoles that show topic sizes ask it of every
// broker.

import (
	"path/filepath"
	"slices"
	"syscall"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-broker/weir/internal/partition"
)

func (b *Broker) handleDescribeLogDirs(req *kmsg.DescribeLogDirsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.Dir = b.cfg.DataDir
	if abs, err := filepath.Abs(b.cfg.DataDir); err == nil {
		dir.Dir = abs
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir.Dir, &fs); err == nil {
		dir.TotalBytes = int64(fs.Blocks) * int64(fs.Bsize)
		dir.UsableBytes = int64(fs.Bavail) * int64(fs.Bsize)
	}
	// A nil topic list asks for every partition; otherwise only the
	// named ones this node has (Kafka leaves the others out).
	var want map[string][]int32
	if req.Topics != nil {
		want = map[string][]int32{}
		for _, t := range req.Topics {
			want[t.Topic] = append(want[t.Topic], t.Partitions...)
		}
	}
	asked := func(topic string, index int32) bool {
		idxs, ok := want[topic]
		return want == nil || ok && slices.Contains(idxs, index)
	}
	// The partitions this node leads, then those it follows (a partition
	// being promoted may be in both for a moment: listed once).
	held := map[string]map[int32]*partition.Partition{}
	add := func(topic string, index int32, p *partition.Partition) {
		if held[topic] == nil {
			held[topic] = map[int32]*partition.Partition{}
		}
		held[topic][index] = p
	}
	b.pmu.RLock()
	for name, ts := range b.topics {
		for i, p := range ts.parts {
			if p != nil && asked(name, int32(i)) {
				add(name, int32(i), p)
			}
		}
	}
	b.pmu.RUnlock()
	b.rmu.Lock()
	for k, f := range b.followers {
		if asked(k.topic, k.index) {
			add(k.topic, k.index, f.p)
		}
	}
	b.rmu.Unlock()
	for name, rs := range held {
		rt := kmsg.NewDescribeLogDirsResponseDirTopic()
		rt.Topic = name
		for index, p := range rs {
			rp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
			rp.Partition = index
			rp.Size = p.Size()
			// How far this replica's log end is behind its high
			// watermark, as Kafka reports it for a current replica.
			rp.OffsetLag = max(p.HighWatermark()-p.LogEndOffset(), 0)
			rt.Partitions = append(rt.Partitions, rp)
		}
		slices.SortFunc(rt.Partitions, func(a, b kmsg.DescribeLogDirsResponseDirTopicPartition) int { return int(a.Partition - b.Partition) })
		dir.Topics = append(dir.Topics, rt)
	}
	slices.SortFunc(dir.Topics, func(a, b kmsg.DescribeLogDirsResponseDirTopic) int {
		switch {
		case a.Topic < b.Topic:
			return -1
		case a.Topic > b.Topic:
			return 1
		}
		return 0
	})
	resp.Dirs = append(resp.Dirs, dir)
	return resp
}
