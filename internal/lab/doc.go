// Package lab measures delivery guarantees under injected faults: the
// workload behind `weir lab`.
//
// A scenario is one configuration (a producer's acks and idempotence, a
// consumer's commit strategy, a consume-transform-produce pipeline) run
// with one fault (lost produce acknowledgements, dropped connections, a
// broker or a client killed with SIGKILL). Every record carries a unique
// id in its value, so after the run the checker can compare what was sent
// and acknowledged with what a consumer received: lost, duplicated and
// reordered records and read_committed violations. Each scenario is then
// judged against the guarantee its configuration claims, and the run
// fails when one is broken.
//
// Against Weir the lab runs `weir serve` as a child process per scenario,
// on a fresh data directory, with the scenario's --unsafe-faults spec; a
// broker kill is a SIGKILL of that child and a restart on the same
// directory and port. Against any other cluster broker kills are reported
// as not run, and lost acknowledgements and dropped connections are
// injected in the producer's own connections instead. Consumers and
// consume-transform-produce workers run as `weir lab worker` children that
// SIGKILL themselves at a seeded point in a batch or transaction. The
// order saga's row runs the services of examples/saga the same way, one
// `weir lab worker` each, and judges the saga's own invariants instead
// of record ids (CheckSaga): one terminal state per order, compensations
// exactly when due, stocks and balances matching the completed orders.
//
// With Config.Cluster (`weir lab --cluster 3`) the lab measures the
// broker layer instead: each row runs on a fresh three-node cluster
// (testsvc.Cluster) whose nodes advertise the lab's proxies, so that it
// can cut followers' replication fetches and count the error codes the
// brokers answer the producer with; leaders are killed with SIGKILL and
// frozen with SIGSTOP. See cluster_scenarios.go for the matrix and what
// it prunes.
//
// A seed fixes the fault schedule: the fault specs' random draws, the
// points at which brokers and clients are killed. What a fault hits still
// depends on timing (how records fall into batches), so two runs with one
// seed inject the same faults but need not measure identical counts.
package lab
