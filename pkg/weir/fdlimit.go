package weir

import (
	"log/slog"
	"os"
	"syscall"
)

// fdHeadroom is what a node needs beyond its partitions' files and its
// clients' connections: listeners, the metadata quorum's peers, the
// replica fetchers, segments being rolled or read, and the admin
// listener's clients.
const fdHeadroom = 256

// warnIfFewFileDescriptors says, at start, when the process's limit on
// open files is below what this node may need: the descriptors open now
// (one per partition's active segment, once the partitions are open),
// plus max.connections, plus headroom. Kafka asks for the same of its
// operators (ulimit -n, or LimitNOFILE under systemd); out of descriptors
// a broker can neither accept clients nor roll segments.
func warnIfFewFileDescriptors(logger *slog.Logger, maxConnections int) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	open, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return // not Linux: no cheap count
	}
	need := uint64(len(open)) + uint64(maxConnections) + fdHeadroom
	if lim.Cur < need {
		logger.Warn("the open-file limit is below what this node may need: raise it (ulimit -n, or LimitNOFILE under systemd), or lower max.connections",
			"limit", lim.Cur, "open_now", len(open), "max_connections", maxConnections, "need", need)
	}
}
