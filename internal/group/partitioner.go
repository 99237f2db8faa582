package group

import "unicode/utf16"

// OffsetsTopic is the internal topic the coordinator keeps its state in.
const OffsetsTopic = "__consumer_offsets"

// PartitionFor returns the __consumer_offsets partition of a group, as
// Kafka computes it: the Java String.hashCode of the group id, made
// non-negative as Kafka's Utils.abs does (the minimum int maps to 0),
// modulo the partition count. Matching Kafka keeps a group on the same
// partition whichever broker implementation wrote it.
func PartitionFor(groupID string, partitions int32) int32 {
	var h int32
	for _, c := range utf16.Encode([]rune(groupID)) {
		h = 31*h + int32(c)
	}
	if h == -1<<31 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % partitions
}
