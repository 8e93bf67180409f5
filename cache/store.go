package cache

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/sstable"
	"go.uber.org/zap"
)

// memTableStopWrites is how many memtables may be queued for flushing before writes wait; one
// more may linger while an iterator still reads it. With the memtable size (WithMemTableSize)
// it bounds the memtables' memory: at most (memTableStopWrites+1) times the size.
const memTableStopWrites = 2

// L0 compactions. Every Apply rewrites rows all over the key space (the partition rows of the
// partitions its fetch touches, segments under random ids), so every flushed memtable overlaps
// every table of the level below L0, and a compaction out of L0 rewrites all of that level.
// Pebble's defaults (a compaction once 4 sublevels pile up in L0, 2 MiB L0 tables) rewrote it
// after every 4 flushes: at 4M events 1.7 GB written for 324 MB of log, more than a third of a
// cold load's CPU. Letting 16 pile up spreads each rewrite over 4 times the flushes: a cold load
// of 1M events took 13% less CPU (median of 3 alternating rounds), of 4M about 18% less (4
// rounds). The price is read amplification while L0 is deep: lookups right after a cold load
// of 4M events (2M segments) that miss the lookup cache took 17-21 µs at the median instead of
// 10-11 until the compactions caught up; at 1M there was no difference. Writes stop at 64
// sublevels instead of 12, which a cold load never reached.
const (
	l0CompactionThreshold = 16
	l0StopWritesThreshold = 64
	l0TargetFileSize      = 8 << 20 // each level below doubles it, as by default
)

// memTablesWriting is how many memtables a store holds while it writes steadily: the one
// filling and the last one flushed, which Pebble keeps to reuse its memory.
const memTablesWriting = 2

// Store is the materialized view of the metadata topic, in one Pebble instance.
//
// Concurrency: Apply, Skip and ResetPartition are serialized among themselves (the design has
// one writer, the consumer loop; an operator's Skip may come from elsewhere). Every query may be
// called from any number of goroutines, concurrently with a writer: each sees the store as it
// was after some whole Apply, never part of one. Check waits only for an Apply in flight to
// take its snapshot. Close waits for calls in flight; every call after it returns ErrClosed.
type Store struct {
	db   *pebble.DB
	log  *zap.Logger
	dir  string
	opts options
	dmg  atomic.Pointer[damage] // replaced with db by Replace

	writeMu sync.Mutex // serializes writers; held before mu
	// parts is the writer's copy of the rows of the partitions it has read or written since
	// Open, so that a fetch spread over many partitions does not read each partition's row
	// back from Pebble. It holds nothing per segment, is filled as partitions are touched,
	// is read and written only under writeMu, and changes only after a commit succeeds.
	parts map[tpPrefix]partRow
	// tx is the writer's txn, reused by every Apply (see txn); only the writer touches it.
	tx *txn
	// lookups caches SegmentFor's answers; nil when its budget is zero.
	lookups *lookupCache
	// gens are the change generations readers outside the process keep answers by.
	gens *generations
	// loader is the load in progress (NewLoader), under writeMu: every other writer waits
	// for it to end.
	loader *Loader

	mu     sync.RWMutex // read-held by every call, write-held by Close
	closed bool
}

// Open opens the store in dir on the filesystem of the options, creating it if it does not
// exist. Opening reads only Pebble's manifest and write-ahead log, however much history the
// store holds: nothing is loaded into memory. While open, the store holds Pebble's block cache
// and memtables (WithBlockCacheSize, WithMemTableSize), and the writer's copy of the rows of partitions it has written to (one row
// per partition), nothing per segment.
func Open(dir string, opts ...Option) (*Store, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	db, d, err := openDB(dir, o)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, log: o.log, dir: dir, opts: o, parts: make(map[tpPrefix]partRow), gens: newGenerations()}
	s.dmg.Store(d)
	if o.lookupCacheSize > 0 {
		s.lookups = newLookupCache(o.lookupCacheSize)
	}
	if err := s.checkFormat(); err != nil {
		s.closeLookups()
		return nil, errors.Join(d.check(err), closeDB(db))
	}
	s.log.Info("cache opened", zap.String("dir", dir), zap.Int64("block_cache_bytes", o.blockCacheSize))
	return s, nil
}

// openDB opens the Pebble instance of a store in dir. Damage found while opening is a
// *DamageError, a directory another holds wraps ErrLocked (see openError).
func openDB(dir string, o options) (*pebble.DB, *damage, error) {
	d := &damage{dir: dir, log: o.log, onDamage: o.onDamage}
	po := pebbleOptions(o, d)
	if err := checkComparer(o.fs, dir, po); err != nil {
		return nil, nil, err
	}
	gate := newCompactionGate()
	experimental(po, gate)
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, nil, openError(o.fs, dir, err)
	}
	var until time.Time
	if db.Metrics().Compact.EstimatedDebt > 0 {
		until = time.Now().Add(compactionHold)
	}
	gate.release(until)
	return db, d, nil
}

// pebbleFormat is the on-disk format a new store is created with. It is pinned to a named
// version, not pebble.FormatNewest, so that upgrading Pebble never changes the format of new
// stores silently (a store written in a newer format cannot be opened by the Pebble of an
// earlier Strata, which a rollback needs); TestPebbleFormatPinned fails when an upgrade makes a
// newer format available, so that moving to it is a decision. Existing stores keep their format.
const pebbleFormat = pebble.FormatValueSeparation

// blockCompression is how the store compresses the blocks of the tables it writes: not at all.
// A SegmentFor that misses both the lookup cache and the block cache reads one data block, and
// an uncompressed block is read straight into the block cache's buffer, where a compressed one
// costs a read into a scratch buffer, a second allocation and a decode besides. At 5M segments
// that is ~10% less CPU per miss and ~10% lower p50; the price is disk (1.5x the bytes of
// Snappy's tables in BenchmarkApplyMillion, whose rows compress far better than real ones do)
// and no more memory (the block cache holds blocks uncompressed either way). Pebble records the
// compression of each block, so a store written with Snappy (before this choice) opens and reads
// as before: only the tables written from now on, by flushes and compactions, are uncompressed,
// and compactions convert the rest over time. A variable only so that a test can write tables as
// those stores did.
var blockCompression = sstable.NoCompression

// pebbleOptions returns the options the store opens Pebble with, compaction scheduler aside.
// Corruption Pebble detects, and its fatal errors, are reported to d.
func pebbleOptions(o options, d *damage) *pebble.Options {
	po := &pebble.Options{
		FS:       o.fs,
		Comparer: comparer,
		// Pebble charges its memtables to the block cache; without room for them on top
		// of the blocks, the cache would hold no blocks at all. Room for the two a store
		// holds while writing (one filling, the last flushed one kept for reuse), not for
		// the most it may hold: the cache grows into whatever room the memtables leave, and
		// with room for three it held 20 MiB of blocks instead of 8 in a cold load of 4M
		// events. While a third is flushed, the blocks make room for it.
		CacheSize:                   o.blockCacheSize + o.memTableSize*memTablesWriting,
		MemTableSize:                uint64(o.memTableSize),
		MemTableStopWritesThreshold: memTableStopWrites,
		L0CompactionThreshold:       l0CompactionThreshold,
		L0StopWritesThreshold:       l0StopWritesThreshold,
		FormatMajorVersion:          pebbleFormat,
		Logger:                      pebbleLogger{l: o.log.Sugar(), d: d},
		EventListener:               d.eventListener(),
	}
	// Apply checks whether a segment exists before adding it; most such lookups miss, and the
	// bloom filters answer them without reading a data block.
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		po.Levels[i].Compression = func() *sstable.CompressionProfile { return blockCompression }
	}
	po.TargetFileSizes[0] = l0TargetFileSize
	experimental(po, nil)
	return po
}

// experimental sets every one of Pebble's experimental options the store uses, in one place:
// they may change with any Pebble release. gate, when not nil, holds compactions back until Open
// has returned (see compactionGate).
func experimental(po *pebble.Options, gate *compactionGate) {
	// Pebble treats keys that share a prefix as versions of one key and moves the values of
	// all but the first into separate value blocks; referenced rows of an epoch are not
	// versions, and SegmentFor wants every one of them in place.
	po.Experimental.SpanPolicyFunc = func([]byte) (pebble.SpanPolicy, []byte, error) {
		return pebble.SpanPolicy{DisableValueSeparationBySuffix: true, ValueStoragePolicy: pebble.ValueStorageLowReadLatency}, nil, nil
	}
	if gate != nil {
		po.Experimental.CompactionScheduler = gate
	}
}

// checkFormat writes the format row into a new store and refuses a store of another format.
func (s *Store) checkFormat() error {
	v, closer, err := s.db.Get(formatKey0)
	if errors.Is(err, pebble.ErrNotFound) {
		it, err := s.db.NewIter(nil)
		if err != nil {
			return err
		}
		empty := !it.First()
		if err := it.Close(); err != nil {
			return err
		}
		if !empty {
			return fmt.Errorf("cache: %s: %w", s.dir, corruptf(formatKey0, "missing in a store that holds rows"))
		}
		if err := s.db.Set(formatKey0, []byte{storeFormat}, pebble.Sync); err != nil {
			return fmt.Errorf("cache: %s: write format: %w", s.dir, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("cache: %s: read format: %w", s.dir, err)
	}
	defer closer.Close()
	if len(v) != 1 || v[0] != storeFormat {
		return fmt.Errorf("cache: %s: format %x, this version reads %d; %s: %w", s.dir, v, storeFormat, rebuildHint, ErrFormat)
	}
	return nil
}

// Close closes the store, after every call in flight has returned; every other method called
// after it returns ErrClosed. A second Close returns nil, as in every package of Strata.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.closeLookups()
	// Flushing the memtables now means the next Open replays no write-ahead log: a restart
	// costs what it costs to open the tables, not to re-apply up to three memtables of
	// records. Everything is already durable in the log, so a failed flush loses nothing.
	if s.db == nil { // a Replace that failed half-way closed it
		return nil
	}
	ferr := s.db.Flush()
	if err := closeDB(s.db); err != nil {
		return fmt.Errorf("cache: close %s: %w", s.dir, errors.Join(err, ferr))
	}
	if ferr != nil {
		s.log.Warn("cache: flushing memtables at close failed; the next open replays the log", zap.Error(ferr))
	}
	return nil
}

// closeLookups releases SegmentFor's cache, once no call can be in it.
func (s *Store) closeLookups() {
	if s.lookups != nil {
		s.lookups.close()
	}
}

// read runs fn while holding the store open. A damaged store refuses, and damage fn meets
// becomes the store's (see DamageError).
func (s *Store) read(fn func() error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	d := s.dmg.Load()
	if de := d.err.Load(); de != nil {
		return de
	}
	return d.check(fn())
}

// write runs fn as the only writer, while holding the store open. What SegmentFor's cache
// holds is forgotten afterwards, whatever fn wrote, failed or not: a writer that knows which
// partitions it changed (Apply) uses writeTx instead.
func (s *Store) write(fn func() error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.loader != nil {
		return ErrLoading
	}
	defer s.gens.bump(nil)
	if s.lookups != nil {
		defer s.lookups.forgetAll()
	}
	return s.read(fn)
}

// writeTx is write for Apply, whose commit forgets the partitions it changed (txn.publish).
func (s *Store) writeTx(fn func() error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.loader != nil {
		return ErrLoading
	}
	return s.read(fn)
}

// getter is what pebble.DB, pebble.Batch and pebble.Snapshot have in common for point reads.
type getter interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

// get calls fn with the value of key, if present; the value is valid only during fn.
func get(r getter, key []byte, fn func(v []byte) error) (bool, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cache: read %s: %w", formatKey(key), err)
	}
	err = fn(v)
	if cerr := closer.Close(); err == nil {
		err = cerr
	}
	return true, err
}

func readOffset(r getter, mp int32) (int64, error) {
	var next int64
	key := offsetKey(mp)
	_, err := get(r, key, func(v []byte) error {
		n, err := decodeOffset(v)
		if err != nil {
			return corruptf(key, "%v", err)
		}
		next = n
		return nil
	})
	return next, err
}

// NextOffset returns the offset after the last record applied or skipped in metadata partition
// mp: where its consumer resumes. It is 0 for a partition never seen.
func (s *Store) NextOffset(mp int32) (int64, error) {
	var next int64
	err := s.read(func() (err error) {
		next, err = readOffset(s.db, mp)
		return err
	})
	return next, err
}

// Offsets returns the next offset of every metadata partition seen. The map is the caller's.
func (s *Store) Offsets() (map[int32]int64, error) {
	out := make(map[int32]int64)
	err := s.scanTag(tagOffset, func(pk parsedKey, v []byte) error {
		n, err := decodeOffset(v)
		if err != nil {
			return err
		}
		out[pk.mp] = n
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// scanTag calls fn with every row whose key starts with tag, parsed, in key order. A key that
// does not parse, or an error fn returns for a value, is reported as that row's corruption.
func (s *Store) scanTag(tag byte, fn func(pk parsedKey, v []byte) error) error {
	return s.read(func() error {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tag}, UpperBound: []byte{tag + 1}})
		if err != nil {
			return err
		}
		for it.First(); it.Valid(); it.Next() {
			pk, err := parseKey(it.Key())
			if err == nil {
				err = fn(pk, it.Value())
			}
			if err != nil {
				return errors.Join(corruptf(it.Key(), "%v", err), it.Close())
			}
		}
		return it.Close()
	})
}

// SkippedRecord is a record an operator chose to skip.
type SkippedRecord struct {
	Partition int32 // metadata partition
	Offset    int64
	Reason    string
	At        time.Time // when Skip was called
}

// Skip records that the operator chose to skip the record at (mp, offset): one that could not be
// decoded or applied and holds its metadata partition back. It moves the partition's next offset
// to offset+1 and keeps the skip (Skipped lists it), in one synced batch. Records between the
// next offset and offset are skipped with it; the normal case is offset == NextOffset(mp).
// An offset below the next offset wraps ErrOffsetApplied: that record was applied or skipped.
func (s *Store) Skip(mp int32, offset int64, reason string) error {
	if mp < 0 || offset < 0 {
		return fmt.Errorf("cache: skip metadata partition %d offset %d: %w", mp, offset, ErrInvalidEntry)
	}
	return s.write(func() error {
		next, err := readOffset(s.db, mp)
		if err != nil {
			return err
		}
		if offset < next {
			return fmt.Errorf("cache: skip metadata partition %d offset %d: next offset is %d: %w", mp, offset, next, ErrOffsetApplied)
		}
		b := s.db.NewBatch()
		defer b.Close()
		if err := b.Set(skippedKey(mp, offset), encodeSkipped(time.Now().UnixNano(), reason), nil); err != nil {
			return err
		}
		if err := b.Set(offsetKey(mp), encodeOffset(offset+1), nil); err != nil {
			return err
		}
		if err := b.Commit(pebble.Sync); err != nil {
			return fmt.Errorf("cache: skip metadata partition %d offset %d: %w", mp, offset, err)
		}
		s.log.Info("record skipped", zap.Int32("metadata_partition", mp), zap.Int64("offset", offset), zap.String("reason", reason))
		return nil
	})
}

// Skipped returns every skip ever recorded, by metadata partition and offset. The slice is the
// caller's.
func (s *Store) Skipped() ([]SkippedRecord, error) {
	var out []SkippedRecord
	err := s.scanTag(tagSkipped, func(pk parsedKey, v []byte) error {
		at, reason, err := decodeSkipped(v)
		if err != nil {
			return err
		}
		out = append(out, SkippedRecord{Partition: pk.mp, Offset: pk.offset, Reason: reason, At: time.Unix(0, at)})
		return nil
	})
	return out, err
}

// Dropped returns every record Apply dropped and the store keeps, by metadata partition and
// offset. The slice is the caller's.
func (s *Store) Dropped() ([]DroppedRecord, error) {
	var out []DroppedRecord
	err := s.scanTag(tagDropped, func(pk parsedKey, v []byte) error {
		d, err := decodeDropped(v, pk.mp, pk.offset)
		if err != nil {
			return err
		}
		out = append(out, d)
		return nil
	})
	return out, err
}

// DroppedAt returns the record Apply dropped at (mp, offset), and false when the record there
// was applied, skipped, or not yet read.
func (s *Store) DroppedAt(mp int32, offset int64) (DroppedRecord, bool, error) {
	var d DroppedRecord
	var found bool
	err := s.read(func() (err error) {
		key := droppedKey(mp, offset)
		found, err = get(s.db, key, func(v []byte) error {
			var derr error
			if d, derr = decodeDropped(v, mp, offset); derr != nil {
				return corruptf(key, "%v", derr)
			}
			return nil
		})
		return err
	})
	return d, found, err
}

// ResetPartition deletes every row derived from metadata partition mp (every user partition
// whose events came from it, with all its segments and epochs, the tombstones of those it
// deleted and the records it dropped) and sets mp's next offset to to, in one synced batch. It is for rebuilding a metadata partition whose stored next offset fell
// below the topic's log start offset: the records in between are gone, so what was derived from
// them cannot be trusted, and the consumer starts again from to. Skips are kept.
//
// It reads the partition rows of every user partition (one seek each), not their segments.
func (s *Store) ResetPartition(mp int32, to int64) error {
	if mp < 0 || to < 0 {
		return fmt.Errorf("cache: reset metadata partition %d to %d: %w", mp, to, ErrInvalidEntry)
	}
	return s.write(func() error {
		b := s.db.NewBatch()
		defer b.Close()
		dropped := 0
		err := s.eachPartition(s.db, func(p tpPrefix, row *partRow) error {
			if row.mp != mp {
				return nil
			}
			dropped++
			delete(s.parts, p)
			return b.DeleteRange(p[:], p.upper(), nil)
		})
		if err != nil {
			return err
		}
		if err := s.resetDerived(b, mp); err != nil {
			return err
		}
		if err := b.Set(offsetKey(mp), encodeOffset(to), nil); err != nil {
			return err
		}
		if err := b.Commit(pebble.Sync); err != nil {
			return fmt.Errorf("cache: reset metadata partition %d to %d: %w", mp, to, err)
		}
		s.log.Info("metadata partition reset", zap.Int32("metadata_partition", mp), zap.Int64("next_offset", to), zap.Int("user_partitions_dropped", dropped))
		return nil
	})
}

// resetDerived adds to b the deletion of mp's dropped records and of the tombstones of the user
// partitions whose records came from mp.
func (s *Store) resetDerived(b *pebble.Batch, mp int32) error {
	lo, hi := droppedBounds(mp)
	if err := b.DeleteRange(lo, hi, nil); err != nil {
		return err
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagDeleted}, UpperBound: []byte{tagDeleted + 1}})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		tmp, _, derr := decodeDeleted(it.Value())
		if derr != nil {
			return errors.Join(corruptf(it.Key(), "%v", derr), it.Close())
		}
		if tmp == mp {
			if err := b.Delete(it.Key(), nil); err != nil {
				return errors.Join(err, it.Close())
			}
		}
	}
	return it.Close()
}

// iterable is what pebble.DB, pebble.Batch and pebble.Snapshot have in common for iteration.
type iterable interface {
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

// eachPartition calls fn with every user partition's row, in key order, seeking from one
// partition's prefix to the next so that it never reads their segments.
func (s *Store) eachPartition(r iterable, fn func(p tpPrefix, row *partRow) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{tagPartition}, UpperBound: []byte{tagPartition + 1}})
	if err != nil {
		return err
	}
	for valid := it.First(); valid; {
		k := it.Key()
		pk, perr := parseKey(k)
		if perr != nil {
			return errors.Join(corruptf(k, "%v", perr), it.Close())
		}
		if pk.kind != kindPartition {
			return errors.Join(corruptf(k, "no partition row precedes it"), it.Close())
		}
		row, derr := decodePart(it.Value())
		if derr != nil {
			return errors.Join(corruptf(k, "%v", derr), it.Close())
		}
		if err := fn(pk.prefix, &row); err != nil {
			return errors.Join(err, it.Close())
		}
		valid = it.SeekGE(pk.prefix.upper())
	}
	return it.Close()
}
