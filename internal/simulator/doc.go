// Package simulator serves the interactive delivery simulator at
// /simulator: a page where a person picks a producer's and a consumer's
// settings and a seed, starts a session (internal/lab's Session: a real
// `weir serve` child, a producer, a `weir lab worker` consumer child),
// injects faults by clicking while records flow, and watches each
// record's fate and the lab checker's tally and verdict. With UseCluster
// (`weir lab --ui --cluster 3`) each session runs a three-node cluster
// instead, and the page offers the faults that act on its nodes: kill
// the partition's leader, kill two nodes.
//
// The page is server-rendered; a small script, served from the same
// origin (the Content-Security-Policy allows no inline script), polls
// /simulator/state every 300 ms and redraws the grid and the tally. The
// buttons POST to /simulator/start, /simulator/fault/{kind} and
// /simulator/stop, and work as plain forms without the script.
package simulator
