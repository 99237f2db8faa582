// Package log is the segmented, append-only log of one partition on disk.
// It stores Kafka v2 record batches byte for byte as they are served and
// knows nothing of Kafka requests. Importers alias it (wlog) to keep the
// standard library's name free.
//
// # On disk
//
// A partition directory holds segments and two checkpoints:
//
//	00000000000000000000.log        batches, back to back, as served
//	00000000000000000000.index      sparse offset index: (relative offset uint32, position uint32)
//	00000000000000000000.timeindex  time index: (timestamp int64, relative offset uint32)
//	00000000000000001234.log ...    the next segment, named by its base offset
//	log.checkpoint                  log start offset, recovery point, clean flag, CRC
//	tail.checkpoint                 fsynced prefix of the active segment: base, position, next offset, CRC
//
// The .log files are the truth. Index files are caches written when a
// segment is sealed and at Close, and trusted only below the recovery point;
// every other index is rebuilt by scanning the .log at Open.
//
// # Durability
//
// Append writes to the operating system; Sync fsyncs and reports the offset
// below which data is durable. Open recovers after a crash to exactly a
// prefix of what was appended that contains everything synced: it checks
// every batch from the recovery point on (parse, CRC-32C, dense offsets)
// and cuts the log at the first bad one, except the fsynced prefix of the
// active segment named by the tail checkpoint, whose headers it only walks
// to rebuild the index. State that must not go backwards —
// the log start offset, a truncation — is made durable before it takes
// effect. An fsync failure is sticky (ErrFailed): after a failed fsync the
// kernel may have dropped the dirty pages, so nothing written can be
// trusted until a reopen re-reads the disk.
//
// # Concurrency
//
// Every method is safe for concurrent use. Appends are serialised; Read,
// OffsetForTimestamp and the accessors run alongside appends and never wait
// for an fsync. See Log for the locks.
//
// # Testing
//
// All file access goes through FS. Package logtest provides an in-memory FS
// that injects faults and simulates power loss and SIGKILL.
package log
