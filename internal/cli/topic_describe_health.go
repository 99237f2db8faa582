package cli

import (
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
)

// partitionHealth is what is wrong with one partition, in the terms of
// kafka-topics.sh's filters and Kafka's broker metrics.
type partitionHealth struct {
	// underReplicated: fewer replicas in sync than assigned
	// (UnderReplicatedPartitions).
	underReplicated bool
	// underMinISR: fewer replicas in sync than min.insync.replicas, so
	// acks=all writes are refused (UnderMinIsrPartitionCount).
	underMinISR bool
	// unavailable: no live leader (OfflinePartitionsCount); the Metadata
	// response gives leader -1 for a partition whose leader is fenced.
	unavailable bool
}

// healthOf judges a partition from its Metadata; minISR < 1 is unknown
// and never under-min-ISR.
func healthOf(leader int32, replicas, isr []int32, minISR int) partitionHealth {
	return partitionHealth{
		underReplicated: len(isr) < len(replicas),
		underMinISR:     minISR > 0 && len(isr) < minISR,
		unavailable:     leader < 0,
	}
}

func (h partitionHealth) String() string {
	var s []string
	if h.unavailable {
		s = append(s, "unavailable")
	}
	if h.underReplicated {
		s = append(s, "under-replicated")
	}
	if h.underMinISR {
		s = append(s, "under-min-isr")
	}
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

// partitionFilter is the set of kafka-topics.sh filters given to `topic
// describe`: a partition is listed when any given one matches.
type partitionFilter struct {
	underReplicated, underMinISR, unavailable bool
}

func (f partitionFilter) active() bool { return f.underReplicated || f.underMinISR || f.unavailable }

func (f partitionFilter) matches(h partitionHealth) bool {
	return (f.underReplicated && h.underReplicated) || (f.underMinISR && h.underMinISR) || (f.unavailable && h.unavailable)
}

func (f partitionFilter) String() string {
	var s []string
	if f.underReplicated {
		s = append(s, "under-replicated")
	}
	if f.underMinISR {
		s = append(s, "under-min-ISR")
	}
	if f.unavailable {
		s = append(s, "unavailable")
	}
	return strings.Join(s, " or ")
}

// minISROf is a topic's min.insync.replicas from its described configs,
// or 0 when they did not load.
func minISROf(configs kadm.ResourceConfigs, topic string) int {
	rc, err := configs.On(topic, nil)
	if err != nil || rc.Err != nil {
		return 0
	}
	for _, c := range rc.Configs {
		if c.Key == "min.insync.replicas" {
			n, _ := strconv.Atoi(c.MaybeValue())
			return n
		}
	}
	return 0
}
