package eos

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Store is a task's key-value store as a Process function sees it: its
// reads see the committed state plus the current transaction's own
// writes, and its writes commit with the transaction or not at all.
type Store interface {
	// Get returns key's value, or nil when the key is absent.
	Get(key []byte) ([]byte, error)
	// Put sets key's value (a nil value is stored as empty). A key the
	// store cannot hold is ErrInvalidKey.
	Put(key, value []byte) error
	// Delete removes key; its changelog record is a tombstone. A key the
	// store cannot hold is ErrInvalidKey.
	Delete(key []byte) error
}

// MaxKeyBytes bounds a store key: bbolt refuses keys above 32 KiB.
const MaxKeyBytes = bolt.MaxKeySize

// ErrInvalidKey reports a key the store cannot hold: empty, or longer
// than MaxKeyBytes. It is an error of one record's input, so a Process
// function may skip the record rather than fail; returned, it stops the
// processor, and the record is consumed again after a restart.
var ErrInvalidKey = errors.New("eos: invalid store key")

var dataBucket = []byte("data")

// change is one key's pending write; a nil value is a deletion.
type change struct{ value []byte }

// task is one input partition number's store: the committed state in a
// bbolt file and the open transaction's writes in memory. Only the
// processing loop touches pending and applied; queries read db, whose
// lifetime mu in Processor guards.
type task struct {
	partition int32
	path      string // the bbolt file
	db        *bolt.DB
	applied   int64             // next changelog offset the file has not applied
	logID     [16]byte          // topic id of the changelog applied is an offset of; zero if unknown
	pending   map[string]change // this transaction's writes, by key
	restore   bool              // assigned anew: catch up with the changelog first
	serving   bool              // restored and assigned: answers queries
}

// openTask opens partition p's store under dir. A checkpoint, written
// only by a clean close, says up to where the file is the changelog and
// which changelog (its topic id: a changelog deleted and created again
// has a new one); it is removed at once, so after a crash from now on the
// file is rebuilt from the start of the changelog.
func openTask(dir, store string, p int32) (*task, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("eos: state directory: %w", err)
	}
	path := filepath.Join(dir, pathName(store)+"-"+strconv.Itoa(int(p))+".db")
	cp := path + ".checkpoint"
	applied, logID, ok := readCheckpoint(cp)
	if _, err := os.Stat(path); err != nil {
		ok = false
	}
	if !ok {
		applied, logID = 0, [16]byte{}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("eos: discarding store %s: %w", path, err)
		}
	}
	if err := os.Remove(cp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("eos: removing checkpoint: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	// No fsync per commit: without a checkpoint the file is discarded
	// after a crash, and a clean close syncs before it writes one.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, NoSync: true, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("eos: opening store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(dataBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("eos: opening store %s: %w", path, err)
	}
	return &task{partition: p, path: path, db: db, applied: applied, logID: logID, pending: map[string]change{}, restore: true}, nil
}

// appStateDir is the application's directory under a state directory:
// stores are named by the application (the group) as well as by store
// and partition, as Kafka Streams keeps each application's state under
// its application id, so applications sharing a state directory and a
// store name keep separate stores.
func appStateDir(stateDir, group string) string {
	return filepath.Join(stateDir, pathName(group))
}

// pathName turns a group or store name into one path element: bytes
// other than letters, digits, '.', '_' and '-' are escaped as %XX, and
// so is a name of dots only, which would climb out of the directory.
func pathName(name string) string {
	var b strings.Builder
	dots := strings.Trim(name, ".") == ""
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '.' && !dots, c == '_', c == '-',
			'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// wipe empties the store: its file is not a prefix of the changelog.
func (t *task) wipe() error {
	t.applied = 0
	return t.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(dataBucket); err != nil {
			return err
		}
		_, err := tx.CreateBucket(dataBucket)
		return err
	})
}

// applyChunk bounds the changes one bbolt transaction applies: bbolt
// splits nodes only at commit, so a node grows with every insert of a
// transaction and each insert moves what the node holds; with the keys
// sorted and the transactions bounded, the cost stays linear.
const applyChunk = 10_000

// apply writes committed changes and records the next changelog offset.
// A failure part way leaves some of the changes applied and applied
// unchanged: replaying committed changes again is harmless.
func (t *task) apply(changes map[string]change, next int64) error {
	keys := make([]string, 0, len(changes))
	for k := range changes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), applyChunk)]
		keys = keys[len(chunk):]
		if err := t.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(dataBucket)
			for _, k := range chunk {
				var err error
				if v := changes[k].value; v == nil {
					err = b.Delete([]byte(k))
				} else {
					err = b.Put([]byte(k), v)
				}
				if err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("eos: applying to %s: %w", t.path, err)
		}
	}
	if next > t.applied {
		t.applied = next
	}
	return nil
}

// get reads key's committed value.
func (t *task) get(key []byte) ([]byte, error) {
	var v []byte
	err := t.db.View(func(tx *bolt.Tx) error {
		if got := tx.Bucket(dataBucket).Get(key); got != nil {
			v = bytes.Clone(got)
		}
		return nil
	})
	return v, err
}

// close syncs the file and, if clean, writes the checkpoint that lets the
// next open skip the restore.
func (t *task) close(clean bool) error {
	err := t.db.Sync()
	err = errors.Join(err, t.db.Close())
	if err == nil && clean {
		err = writeCheckpoint(t.path+".checkpoint", t.applied, t.logID)
	}
	return err
}

// txnStore is the Store a Process call sees.
type txnStore struct{ t *task }

func (s txnStore) Get(key []byte) ([]byte, error) {
	if c, ok := s.t.pending[string(key)]; ok {
		return bytes.Clone(c.value), nil
	}
	return s.t.get(key)
}

func (s txnStore) Put(key, value []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	s.t.pending[string(key)] = change{value: bytes.Clone(value)}
	return nil
}

func (s txnStore) Delete(key []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	s.t.pending[string(key)] = change{}
	return nil
}

func checkKey(key []byte) error {
	if len(key) == 0 || len(key) > MaxKeyBytes {
		return fmt.Errorf("%w: %d bytes, want 1 to %d", ErrInvalidKey, len(key), MaxKeyBytes)
	}
	return nil
}

// A checkpoint is one line: the next changelog offset the file has not
// applied and the changelog's topic id in hex ("0" and 32 zeros when the
// cluster reports none).
func readCheckpoint(path string) (off int64, logID [16]byte, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, logID, false
	}
	offText, idText, found := strings.Cut(string(bytes.TrimSpace(b)), " ")
	off, err = strconv.ParseInt(offText, 10, 64)
	if err != nil || off < 0 || !found {
		return 0, logID, false // a checkpoint without an id names no changelog
	}
	id, err := hex.DecodeString(idText)
	if err != nil || len(id) != len(logID) {
		return 0, logID, false
	}
	copy(logID[:], id)
	return off, logID, true
}

// writeCheckpoint replaces the checkpoint atomically: a torn checkpoint
// would skip changelog records.
func writeCheckpoint(path string, off int64, logID [16]byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("eos: checkpoint: %w", err)
	}
	_, err = f.WriteString(strconv.FormatInt(off, 10) + " " + hex.EncodeToString(logID[:]) + "\n")
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("eos: checkpoint: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("eos: state directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("eos: state directory: %w", err)
	}
	return nil
}
