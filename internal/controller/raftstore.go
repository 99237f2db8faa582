package controller

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// raftStore is the durable part of this node's Raft log: the hard state
// (term, vote, commit), the entries not yet covered by a snapshot, and the
// latest snapshot of the image. Every write is one bbolt transaction,
// fsynced when it commits, so a crash leaves either all of a Ready's
// state or none of it.
type raftStore struct {
	db *bolt.DB
}

var (
	bucketEntries = []byte("entries")
	bucketState   = []byte("state")
	keyHardState  = []byte("hardstate")
	keySnapshot   = []byte("snapshot")
)

// openRaftStore opens the store at path. noSync skips fsync: only for the
// simulation, whose crashes lose the process and never the page cache.
func openRaftStore(path string, noSync bool) (*raftStore, error) {
	// Another process holding the file (a second weir on the same data
	// directory) is an error, not a wait.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: noSync})
	if err != nil {
		return nil, fmt.Errorf("open raft store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEntries, bucketState} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("raft store %s: %w", path, err)
	}
	return &raftStore{db: db}, nil
}

func indexKey(i uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], i)
	return k[:]
}

// load returns what was stored: nil snapshot and hard state when nothing
// was, and the entries after the snapshot in index order.
func (s *raftStore) load() (*pb.Snapshot, *pb.HardState, []*pb.Entry, error) {
	var (
		snap *pb.Snapshot
		hs   *pb.HardState
		ents []*pb.Entry
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		st := tx.Bucket(bucketState)
		if v := st.Get(keySnapshot); v != nil {
			snap = &pb.Snapshot{}
			if err := proto.Unmarshal(v, snap); err != nil {
				return fmt.Errorf("snapshot: %w", err)
			}
		}
		if v := st.Get(keyHardState); v != nil {
			hs = &pb.HardState{}
			if err := proto.Unmarshal(v, hs); err != nil {
				return fmt.Errorf("hard state: %w", err)
			}
		}
		after := snap.GetMetadata().GetIndex()
		c := tx.Bucket(bucketEntries).Cursor()
		for k, v := c.Seek(indexKey(after + 1)); k != nil; k, v = c.Next() {
			e := &pb.Entry{}
			if err := proto.Unmarshal(v, e); err != nil {
				return fmt.Errorf("entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if n := len(ents); n > 0 && e.GetIndex() != ents[n-1].GetIndex()+1 {
				return fmt.Errorf("entries not dense: %d after %d", e.GetIndex(), ents[n-1].GetIndex())
			}
			ents = append(ents, e)
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("load raft store: %w", err)
	}
	return snap, hs, ents, nil
}

// save stores what a Ready asks to persist, in one fsynced transaction.
// New entries replace every stored entry from the first new index on (a
// leader's log overrides a follower's uncommitted tail); a snapshot
// replaces the entries it covers.
func (s *raftStore) save(hs *pb.HardState, ents []*pb.Entry, snap *pb.Snapshot) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		eb, st := tx.Bucket(bucketEntries), tx.Bucket(bucketState)
		if snap != nil && snap.GetMetadata().GetIndex() > 0 {
			// A snapshot from the leader replaces the whole log: entries
			// after it, if any, follow in ents.
			if err := putSnapshot(st, eb, snap, math.MaxUint64); err != nil {
				return err
			}
		}
		if len(ents) > 0 {
			if err := deleteFrom(eb, ents[0].GetIndex()); err != nil {
				return err
			}
			for _, e := range ents {
				v, err := proto.Marshal(e)
				if err != nil {
					return err
				}
				if err := eb.Put(indexKey(e.GetIndex()), v); err != nil {
					return err
				}
			}
		}
		if hs != nil {
			v, err := proto.Marshal(hs)
			if err != nil {
				return err
			}
			if err := st.Put(keyHardState, v); err != nil {
				return err
			}
		}
		return nil
	})
}

// saveSnapshot stores a snapshot this node took and drops the entries up
// to compactIndex (at most the snapshot's index).
func (s *raftStore) saveSnapshot(snap *pb.Snapshot, compactIndex uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return putSnapshot(tx.Bucket(bucketState), tx.Bucket(bucketEntries), snap, compactIndex)
	})
}

func putSnapshot(st, eb *bolt.Bucket, snap *pb.Snapshot, compactIndex uint64) error {
	v, err := proto.Marshal(snap)
	if err != nil {
		return err
	}
	if err := st.Put(keySnapshot, v); err != nil {
		return err
	}
	var drop [][]byte
	c := eb.Cursor()
	for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= compactIndex; k, _ = c.Next() {
		drop = append(drop, k)
	}
	for _, k := range drop {
		if err := eb.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// deleteFrom drops every entry at index from or later.
func deleteFrom(eb *bolt.Bucket, from uint64) error {
	var drop [][]byte
	c := eb.Cursor()
	for k, _ := c.Seek(indexKey(from)); k != nil; k, _ = c.Next() {
		drop = append(drop, k)
	}
	for _, k := range drop {
		if err := eb.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func (s *raftStore) close() error { return s.db.Close() }
