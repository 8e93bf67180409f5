package cache

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

	"github.com/stratalog/strata/proto"
)

// Identity is what a store was built from: which cluster, which metadata topic (by its id:
// a topic deleted and created again under the same name has another), and how many partitions
// that topic has. The store's offsets mean something only for that topic; the rows of another
// cluster's or of a deleted topic's records would answer wrongly, and a store built with
// another partition count holds each user partition under another metadata partition.
type Identity struct {
	ClusterID  string
	TopicID    proto.UUID
	Partitions int32
}

func (id Identity) String() string {
	return fmt.Sprintf("cluster %q, metadata topic id %s, %d partitions", id.ClusterID, id.TopicID, id.Partitions)
}

var identityKey0 = []byte{tagIdentity}

func encodeIdentity(id Identity) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(id.Partitions))
	b = append(b, id.TopicID[:]...)
	return append(b, id.ClusterID...)
}

func decodeIdentity(v []byte) (Identity, error) {
	var id Identity
	if len(v) < 20 {
		return id, fmt.Errorf("identity of %d bytes, want at least 20", len(v))
	}
	id.Partitions = int32(binary.BigEndian.Uint32(v))
	copy(id.TopicID[:], v[4:20])
	id.ClusterID = string(v[20:])
	return id, nil
}

// Identity returns what the store was built from, and false for a store that records none (a
// new one, or one written before identities were recorded).
func (s *Store) Identity() (Identity, bool, error) {
	var id Identity
	var found bool
	err := s.read(func() (err error) {
		found, err = get(s.db, identityKey0, func(v []byte) error {
			var derr error
			if id, derr = decodeIdentity(v); derr != nil {
				return corruptf(identityKey0, "%v", derr)
			}
			return nil
		})
		return err
	})
	return id, found, err
}

// Empty reports whether the store holds no row but its format and identity: nothing applied,
// skipped or reset.
func (s *Store) Empty() (bool, error) {
	empty := true
	err := s.read(func() error {
		it, err := s.db.NewIter(nil)
		if err != nil {
			return err
		}
		for valid := it.First(); valid && empty; valid = it.Next() {
			k := it.Key()
			empty = len(k) == 1 && (k[0] == tagFormat || k[0] == tagIdentity)
		}
		return it.Close()
	})
	return empty, err
}

// ResetTo deletes every row of the store (offsets, skips, every user partition) and records id
// as what it is built from, in one synced batch: for a store found built from another cluster or
// topic than the one it is now fed from. The caller then reads the topic from its start.
func (s *Store) ResetTo(id Identity) error {
	return s.write(func() error {
		b := s.db.NewBatch()
		defer b.Close()
		// Everything but the format row (tag 0) and the identity row, rewritten below.
		if err := b.DeleteRange([]byte{tagFormat + 1}, identityKey0, nil); err != nil {
			return err
		}
		if err := b.DeleteRange([]byte{tagIdentity + 1}, []byte{0xff}, nil); err != nil {
			return err
		}
		if err := b.Set(identityKey0, encodeIdentity(id), nil); err != nil {
			return err
		}
		if err := b.Commit(pebble.Sync); err != nil {
			return fmt.Errorf("cache: reset %s to %s: %w", s.dir, id, err)
		}
		clear(s.parts)
		s.log.Info("store emptied and bound to a metadata topic", zap.String("dir", s.dir), zap.Stringer("identity", id))
		return nil
	})
}
