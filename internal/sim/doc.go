// Package sim is a deterministic simulation of one partition: the real
// log, partition and producer-state code on the in-memory file system,
// driven by a seeded schedule that decides every interleaving the
// partition allows, with crashes at any file-system operation and
// recovery after them.
//
// A run is a list of actions drawn from a seed: appends from a plain
// producer, two idempotent producers (with retries of earlier batches)
// and two transactional ones, transaction markers, flushes, DeleteRecords,
// retention, clean restarts and crashes. Inside an append, at the point
// where the batch is in the log but the producer state is not yet updated,
// the schedule may run a flush, as the flusher goroutine can. Any action
// may carry a crash at its n-th file-system operation: the file system is
// taken as a power loss would leave it (each unsynced tail cut at a byte
// the seed chooses), the process is abandoned, and the partition is
// reopened from what was left.
//
// The model is the list of batches the partition accepted, in offset
// order. After every step the run checks:
//
//   - log start ≤ LSO ≤ HW ≤ LEO, and the LSO never moves backwards;
//   - the LSO never passes the first offset of an open transaction (also
//     mid-append), and lags only behind open transactions;
//   - a read_committed read, filtered with the aborted transactions the
//     partition reports as a client filters it, returns exactly the plain
//     and committed records below the LSO, in offset order;
//   - every record value is stored once: a retried batch is never written
//     twice while the producer state remembers it, and a retry the state
//     remembers gets the original offsets;
//   - after a crash the log is a prefix of what was written and holds every
//     batch below the high watermark of before the crash;
//   - after every reopen, the producer state recovered from snapshots
//     equals the one a replay of the whole log from its start yields.
//
// A replicated run (TestSimReplication) adds a follower on a machine of
// its own, replica 1 in the leader's ISR: the same kind of schedule, with
// follower fetches (fsync, fetch from its log end with the epoch of its
// last batch, append what the leader's log holds, take the leader's high
// watermark) among the actions, the leader reopening at a new epoch after
// every restart or crash, and divergence: the leader moves on two epochs
// while the follower takes batches of the epoch between, which its next
// fetch finds and truncates. After every step it checks besides:
//
//   - start ≤ LSO ≤ HW ≤ LEO on the follower;
//   - the leader's high watermark is at most its own flushed offset and
//     the follower's;
//   - below the leader's high watermark the follower's log is the
//     leader's, byte for byte;
//   - after a truncation, the follower's producer state and aborted
//     transactions are what a replay of its log gives.
//
// A failing seed is shrunk to a shorter list of actions that still fails,
// and the trace of that list is reported; the same seed reproduces it.
package sim
