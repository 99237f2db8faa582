// Package testsvc starts real PostgreSQL and Redis servers for tests: each
// on a free loopback port with its data in a fresh temporary directory,
// stopped and removed by Stop. Nothing is mocked; the binaries are
// Debian's packages, which ./test.sh installs when they are missing.
//
// A test package starts one server in TestMain and gives each test its own
// database (Postgres.NewDatabase) or Redis database number, so tests stay
// independent without paying for a server start each.
//
// It also starts clusters of `weir serve` processes (StartCluster), which
// a test can kill, freeze (Pause) and restart node by node; with
// StartClusterInNamespaces each node runs in its own network namespace,
// so a test can cut the network between nodes (Cut, Isolate) and heal it
// while every node stays reachable from the test.
package testsvc
