package partition

// Leader epochs (KIP-101, KIP-279, KIP-320). A partition keeps, for each
// leader epoch that wrote to it, the first offset written at that epoch.
// From it OffsetForLeaderEpoch answers where an epoch's data ends, which
// is how a consumer (and, with replication, a follower) finds the point
// where its copy and the leader's diverge.
//
// The entries are kept in leader-epoch-checkpoint in the partition's
// directory, in the text layout Kafka uses for the same file (a version
// line, a count line, then one "epoch start-offset" line per entry),
// written durably before the first batch of a new epoch is appended, so
// after a crash the file holds every epoch in the log (and perhaps one
// whose first batch was lost, which opening drops: it starts at or past
// the log end). A log written before the file existed is scanned once.

import (
	"bytes"
	"errors"
	"fmt"
	iofs "io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/weir-broker/weir/internal/batch"
	wlog "github.com/weir-broker/weir/internal/log"
)

// EpochCheckpointFile is the name of the leader-epoch checkpoint.
const EpochCheckpointFile = "leader-epoch-checkpoint"

// maxEpochCheckpointBytes bounds the checkpoint read at open.
const maxEpochCheckpointBytes = 16 << 20

// epochEntry is the first offset written at a leader epoch.
type epochEntry struct {
	epoch int32
	start int64
}

// epochCache lists the epochs of a partition's log, oldest first, with
// strictly increasing epochs and non-decreasing start offsets.
type epochCache []epochEntry

// latest is the newest epoch, -1 when there is none.
func (c epochCache) latest() int32 {
	if len(c) == 0 {
		return -1
	}
	return c[len(c)-1].epoch
}

// assign records that epoch starts at start, when epoch is newer than
// every epoch known; it reports whether it added an entry.
func (c *epochCache) assign(epoch int32, start int64) bool {
	if epoch <= c.latest() {
		return false
	}
	if n := len(*c); n > 0 && (*c)[n-1].start == start {
		// The previous epoch wrote nothing: it has no range of its own.
		(*c)[n-1] = epochEntry{epoch, start}
		return true
	}
	*c = append(*c, epochEntry{epoch, start})
	return true
}

// truncateFromEnd drops the epochs that start at or past end, the new log
// end.
func (c *epochCache) truncateFromEnd(end int64) {
	n := len(*c)
	for n > 0 && (*c)[n-1].start >= end {
		n--
	}
	*c = (*c)[:n]
}

// truncateFromStart drops the epochs wholly below start, the new log
// start, and moves the start of the epoch that holds it to start.
func (c *epochCache) truncateFromStart(start int64) {
	i := 0
	for i+1 < len(*c) && (*c)[i+1].start <= start {
		i++
	}
	*c = (*c)[i:]
	if len(*c) > 0 && (*c)[0].start < start {
		(*c)[0].start = start
	}
}

// endOffsetFor answers OffsetForLeaderEpoch for epoch given the log end:
// the largest epoch at or below it and the offset where that epoch's data
// ends (the next epoch's start, or the log end for the newest). An epoch
// below every known one ends where the oldest known one starts; one above
// the newest, or a log without epochs, gives -1, -1.
func (c epochCache) endOffsetFor(epoch int32, logEnd int64) (int32, int64) {
	if epoch < 0 || len(c) == 0 {
		return -1, -1
	}
	if epoch == c.latest() {
		return epoch, logEnd
	}
	next := -1 // the first entry newer than epoch
	for i, e := range c {
		if e.epoch > epoch {
			next = i
			break
		}
	}
	switch {
	case next < 0:
		return -1, -1
	case next == 0:
		return epoch, c[0].start
	}
	return c[next-1].epoch, c[next].start
}

// encode is the checkpoint's text.
func (c epochCache) encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "0\n%d\n", len(c))
	for _, e := range c {
		fmt.Fprintf(&b, "%d %d\n", e.epoch, e.start)
	}
	return b.Bytes()
}

// decodeEpochs parses a checkpoint; a malformed one is an error.
func decodeEpochs(data []byte) (epochCache, error) {
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) < 2 || lines[0] != "0" {
		return nil, errors.New("leader-epoch checkpoint: bad header")
	}
	n, err := strconv.Atoi(lines[1])
	if err != nil || n < 0 || n != len(lines)-2 {
		return nil, fmt.Errorf("leader-epoch checkpoint: count %q for %d entries", lines[1], len(lines)-2)
	}
	c := make(epochCache, 0, n)
	for _, l := range lines[2:] {
		f := strings.Fields(l)
		if len(f) != 2 {
			return nil, fmt.Errorf("leader-epoch checkpoint: bad entry %q", l)
		}
		epoch, err1 := strconv.ParseInt(f[0], 10, 32)
		start, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil || epoch < 0 || start < 0 ||
			(len(c) > 0 && (int32(epoch) <= c.latest() || start < c[len(c)-1].start)) {
			return nil, fmt.Errorf("leader-epoch checkpoint: bad entry %q", l)
		}
		c = append(c, epochEntry{int32(epoch), start})
	}
	return c, nil
}

// loadEpochs reads the checkpoint, or rebuilds the entries from the log's
// batches when there is none, and fits them to the recovered log. It runs
// at open, before the partition is shared, and returns the entries the
// file holds (the rebuilt ones when there is no file): OpenWith writes
// the file once, after the leader's epoch is started, if they differ
// from the final ones.
func (p *Partition) loadEpochs() (held epochCache, err error) {
	data, err := wlog.ReadWholeFile(p.fs, filepath.Join(p.dir, EpochCheckpointFile), maxEpochCheckpointBytes)
	switch {
	case err == nil:
		if p.epochs, err = decodeEpochs(data); err != nil {
			return nil, err
		}
	case errors.Is(err, iofs.ErrNotExist):
		if err := p.scanEpochs(); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	// From the start first: an epoch moved up to the start of an empty
	// log holds no batch, and then goes with those at or past the end.
	// The file must not keep entries the log lost (a crash took their
	// batches, or one during a truncation took the rewrite): were one
	// kept, a later batch of an older epoch there would leave it in the
	// file as that range's epoch.
	held = slices.Clone(p.epochs)
	p.epochs.truncateFromStart(p.log.StartOffset())
	p.epochs.truncateFromEnd(p.log.EndOffset())
	return held, nil
}

// scanEpochs rebuilds the entries from the epochs the log's batches carry.
func (p *Partition) scanEpochs() error {
	end := p.log.EndOffset()
	for from := p.log.StartOffset(); from < end; {
		data, err := p.log.Read(from, end, 1<<20)
		if err != nil {
			return fmt.Errorf("scan epochs from %d: %w", from, err)
		}
		if len(data) == 0 {
			return fmt.Errorf("scan epochs from %d: log returned nothing before its end %d", from, end)
		}
		for len(data) > 0 {
			h, err := batch.ParseHeader(data)
			if err != nil {
				return fmt.Errorf("scan epochs at %d: %w", from, err)
			}
			p.epochs.assign(h.LeaderEpoch, h.BaseOffset)
			from = h.NextOffset()
			data = data[h.Size():]
		}
	}
	return nil
}

// startEpochLocked makes epoch the one batches appended from now on start,
// at the log end, and makes that durable before any such batch is
// written. p.mu is held (or the partition is not yet shared); the write
// happens only when the epoch changes, which is rare.
func (p *Partition) startEpochLocked(epoch int32) error {
	if epoch <= p.epochs.latest() {
		return nil
	}
	before := slices.Clone(p.epochs)
	p.epochs.assign(epoch, p.log.EndOffset())
	if err := wlog.WriteFileDurably(p.fs, p.dir, EpochCheckpointFile, p.epochs.encode()); err != nil {
		p.epochs = before // the epoch did not start
		return err
	}
	return nil
}

// LatestEpoch is the leader epoch of the log's last batch (or of the
// epoch this replica started leading at its end), -1 when there is none:
// the LastFetchedEpoch of a follower's fetch (KIP-320).
func (p *Partition) LatestEpoch() int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.epochs.latest()
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch for one epoch: the
// largest epoch at or below it that wrote to this log, and the offset
// where its data ends; -1, -1 when the epoch is newer than any here.
func (p *Partition) EndOffsetForEpoch(epoch int32) (int32, int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.epochs.endOffsetFor(epoch, p.log.EndOffset())
}

// HighWatermarkEstablished reports whether a leader's high watermark has
// reached the start of its current leader epoch. A new leader, or one
// restarted, starts with a high watermark that may lie below offsets an
// earlier leadership already made visible, until its followers fetch;
// until then the offsets it would answer are not yet known (Kafka's
// OFFSET_NOT_AVAILABLE, KIP-207). A follower, or a leader without
// epochs, reports true.
func (p *Partition) HighWatermarkEstablished() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.role != roleLeader || len(p.epochs) == 0 {
		return true
	}
	return p.hw.Load() >= p.epochs[len(p.epochs)-1].start
}
