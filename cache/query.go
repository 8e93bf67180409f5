package cache

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/stratalog/strata/proto"
)

// Queries answer as Kafka's RemoteLogMetadataCache does (docs/KAFKA_SEMANTICS.md,
// section 6). A user partition is identified by topic id and partition number; the topic name a
// query passes is not compared (ids are unique across topics), and returned metadata carries
// the name the partition's records carried. Every returned value is the caller's to keep and
// modify. Every query reads through one Pebble iterator: it sees the store after some whole
// Apply, never part of one.

// view is one user partition as one Pebble iterator sees it. An iterator is a consistent view
// of the store, so a query made of several seeks never mixes two states of the store.
type view struct {
	it     *pebble.Iterator
	p      tpPrefix
	tp     proto.TopicIDPartition // as the caller named it
	row    partRow
	loaded bool
}

// withView runs fn on a view of tp. fn calls load when it needs the partition row, or to
// learn whether the store knows tp at all: a lookup that finds a row of the partition knows.
func (s *Store) withView(tp proto.TopicIDPartition, fn func(v *view) error) error {
	return s.read(func() error { return s.withViewLocked(tp, prefixOf(tp), fn) })
}

// withViewLocked is withView for a caller that already holds the store open.
func (s *Store) withViewLocked(tp proto.TopicIDPartition, p tpPrefix, fn func(v *view) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p[:], UpperBound: p.upper()})
	if err != nil {
		return err
	}
	err = fn(&view{it: it, p: p, tp: tp})
	return errors.Join(err, it.Close())
}

// withPartition runs fn on a view of tp whose partition row is loaded, or returns an error
// wrapping ErrNotFound when the store does not know tp.
func (s *Store) withPartition(tp proto.TopicIDPartition, fn func(v *view) error) error {
	return s.withView(tp, func(v *view) error {
		if err := v.load(); err != nil {
			return err
		}
		return fn(v)
	})
}

// load reads the partition row, or returns an error wrapping ErrNotFound.
func (v *view) load() error {
	if v.loaded {
		return nil
	}
	key := v.p.partitionKey()
	val, ok := v.get(key)
	if !ok {
		if err := v.it.Error(); err != nil {
			return err
		}
		return fmt.Errorf("cache: user partition %s: %w", v.tp, ErrNotFound)
	}
	row, err := decodePart(val)
	if err != nil {
		return corruptf(key, "%v", err)
	}
	v.row, v.loaded = row, true
	return nil
}

// get returns the value of key; it is valid until the iterator moves.
func (v *view) get(key []byte) ([]byte, bool) {
	if v.it.SeekGE(key) && bytes.Equal(v.it.Key(), key) {
		return v.it.Value(), true
	}
	return nil, false
}

func (v *view) segment(id proto.UUID) (proto.SegmentMetadata, bool, error) {
	key := v.p.segmentKey(id)
	val, ok := v.get(key)
	if !ok {
		return proto.SegmentMetadata{}, false, v.it.Error()
	}
	m, err := decodeSegment(val, v.p, id)
	if err != nil {
		return proto.SegmentMetadata{}, false, corruptf(key, "%v", err)
	}
	return m, true, nil
}

// segmentFor is Kafka's remoteLogSegmentMetadata(epoch, offset): the floor entry of offset in
// the epoch's referenced map, if offset is within that segment's part of the epoch. Referenced
// rows sort by start offset descending under the epoch's prefix, so the floor entry is the
// first row at or after (epoch, offset): one SeekPrefixGE, which bloom filters keep to the
// tables holding rows of the epoch. The row holds a copy of the segment, so this is the only
// read.
func (v *view) segmentFor(epoch int32, offset int64) (proto.SegmentMetadata, bool, error) {
	m, ok, _, err := v.floor(epoch, offset)
	if err != nil || !ok {
		return proto.SegmentMetadata{}, false, err
	}
	if offset > epochEnd(&m, epoch) {
		return proto.SegmentMetadata{}, false, nil
	}
	return m, true, nil
}

// floor returns the decoded floor row of offset in the epoch's referenced map and the start
// offset its key holds (the epoch's first offset in the segment, which is the segment's start
// offset only in its first epoch).
func (v *view) floor(epoch int32, offset int64) (m proto.SegmentMetadata, ok bool, keyStart int64, err error) {
	key := v.p.refKey(epoch, offset)
	if !v.it.SeekPrefixGE(key) || !bytes.HasPrefix(v.it.Key(), key[:refPrefixLen]) {
		return proto.SegmentMetadata{}, false, 0, v.it.Error()
	}
	if m, err = decodeRef(v.it.Value(), v.p); err != nil {
		return proto.SegmentMetadata{}, false, 0, corruptf(v.it.Key(), "%v", err)
	}
	pk, err := parseKey(v.it.Key())
	if err != nil {
		return proto.SegmentMetadata{}, false, 0, corruptf(v.it.Key(), "%v", err)
	}
	return m, true, pk.offset, nil
}

// run reads, for the lookup cache, a run of the epoch's referenced rows around offset: up to
// rows/2 rows above its floor, not into the run the cache holds from above on, then the floor
// and the rows below it, up to rows in all, stopping before a row whose start is at or below
// below (the cache holds those). The run's hi is one below the start of the row just above
// it (math.MaxInt64 when there is none); its lo is its least start, or math.MinInt64 when it
// reached the epoch's last row. A run without rows at or below offset means the epoch has no
// row at or below offset.
func (v *view) run(epoch int32, offset, below, above int64, rows int) (*runRead, error) {
	key := v.p.refKey(epoch, offset)
	pre := key[:refPrefixLen]
	r := &runRead{p: v.p, epoch: epoch, hi: math.MaxInt64}
	// Up from the floor, to the row just above the run.
	valid, up := v.it.SeekLT(key), 0
	for ; valid && bytes.HasPrefix(v.it.Key(), pre); valid = v.it.Prev() {
		pk, err := parseKey(v.it.Key())
		if err != nil {
			return nil, corruptf(v.it.Key(), "%v", err)
		}
		if up == rows/2 || pk.offset >= above {
			r.hi = pk.offset - 1
			break
		}
		up++
	}
	if valid {
		valid = v.it.Next()
	} else {
		valid = v.it.SeekGE(pre)
	}
	// Down through the floor.
	floor := false
	for ; valid && bytes.HasPrefix(v.it.Key(), pre); valid = v.it.Next() {
		pk, err := parseKey(v.it.Key())
		if err != nil {
			return nil, corruptf(v.it.Key(), "%v", err)
		}
		if n := len(r.starts); floor && (n >= rows || pk.offset <= below) {
			r.lo = r.starts[n-1]
			return r, nil
		}
		r.add(pk.offset, v.it.Value())
		floor = floor || pk.offset <= offset
	}
	if err := v.it.Error(); err != nil {
		return nil, err
	}
	r.lo = math.MinInt64
	return r, nil
}

// following reads, for the lookup cache, up to rows referenced rows of the partition's epochs
// from where the iterator is, in key order: each epoch's rows from its greatest start down, as a
// run of its own (hi math.MaxInt64; lo its least start, or math.MinInt64 when it holds the
// epoch's last row). It stops before the first epoch stop reports true for (where another pass
// begins), and skips the epochs held reports true for (the cache holds them already). A partition's epochs follow one another in key order,
// so this is one pass of the iterator; it lets a miss fill the cache with a partition whose
// epochs hold few segments each.
func (v *view) following(rows int, stop, held func(epoch int32) bool) ([]*runRead, error) {
	kind := len(v.p) + 1
	var out []*runRead
	var r *runRead
	valid := v.it.Valid()
	for valid && rows > 0 {
		k := v.it.Key()
		if len(k) <= kind || k[kind-1] != kindRef || !bytes.HasPrefix(k, v.p[:]) {
			break
		}
		pk, err := parseKey(k)
		if err != nil {
			return nil, corruptf(k, "%v", err)
		}
		if r == nil || pk.epoch != r.epoch {
			if stop(pk.epoch) {
				break
			}
			if held(pk.epoch) {
				r = nil
				if pk.epoch == math.MaxInt32 {
					break
				}
				valid = v.it.SeekGE(v.p.refEpoch(pk.epoch + 1))
				continue
			}
			r = &runRead{p: v.p, epoch: pk.epoch, hi: math.MaxInt64, lo: math.MinInt64}
			out = append(out, r)
		}
		r.add(pk.offset, v.it.Value())
		rows--
		valid = v.it.Next()
		if rows == 0 && valid && bytes.HasPrefix(v.it.Key(), k[:refPrefixLen]) {
			// Stopped before the epoch's last row.
			r.lo = pk.offset
		}
	}
	return out, v.it.Error()
}

// epochEnd returns the last offset of m within leader epoch epoch: the offset before the next
// epoch's start, or the segment's end offset in its last epoch.
func epochEnd(m *proto.SegmentMetadata, epoch int32) int64 {
	for _, e := range m.LeaderEpochs {
		if e.Epoch > epoch {
			return e.StartOffset - 1
		}
	}
	return m.EndOffset
}

// epochSegments is Kafka's listRemoteLogSegments(epoch): the referenced and unreferenced
// segments of the epoch, in no particular order.
func (v *view) epochSegments(epoch int32) ([]proto.SegmentMetadata, error) {
	var out []proto.SegmentMetadata
	ref := v.p.refEpoch(epoch)
	for ok := v.it.SeekGE(ref); ok && bytes.HasPrefix(v.it.Key(), ref); ok = v.it.Next() {
		m, err := decodeRef(v.it.Value(), v.p)
		if err != nil {
			return nil, corruptf(v.it.Key(), "%v", err)
		}
		out = append(out, m)
	}
	var unref []proto.UUID
	prefix := v.p.unrefEpoch(epoch)
	for ok := v.it.SeekGE(prefix); ok && bytes.HasPrefix(v.it.Key(), prefix); ok = v.it.Next() {
		pk, err := parseKey(v.it.Key())
		if err != nil {
			return nil, corruptf(v.it.Key(), "%v", err)
		}
		unref = append(unref, pk.id)
	}
	if err := v.it.Error(); err != nil {
		return nil, err
	}
	for _, id := range unref {
		m, ok, err := v.segment(id)
		if err == nil && !ok {
			// Kafka throws RemoteResourceNotFoundException in the same place.
			err = corruptf(v.p.unrefKey(epoch, id), "names segment %s, which the store does not hold", id)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// sortByStart orders segments by start offset, then by id so that the order is total (Kafka
// leaves segments with equal start offsets in no particular order).
func sortByStart(ms []proto.SegmentMetadata) {
	slices.SortFunc(ms, func(a, b proto.SegmentMetadata) int {
		if a.StartOffset != b.StartOffset {
			if a.StartOffset < b.StartOffset {
				return -1
			}
			return 1
		}
		return bytes.Compare(a.SegmentID.ID[:], b.SegmentID.ID[:])
	})
}

// SegmentFor returns the COPY_SEGMENT_FINISHED segment that holds offset in leader epoch
// epoch, as Kafka's remoteLogSegmentMetadata(epoch, offset): the segment referenced at the
// greatest start offset at or below offset in that epoch, if offset is within its part of the
// epoch. Segments still copying or being deleted are never returned.
func (s *Store) SegmentFor(tp proto.TopicIDPartition, epoch int32, offset int64) (proto.SegmentMetadata, bool, error) {
	var m proto.SegmentMetadata
	var ok bool
	err := s.read(func() error {
		p := prefixOf(tp)
		if s.lookups == nil {
			return s.withViewLocked(tp, p, func(v *view) (err error) {
				if m, ok, err = v.segmentFor(epoch, offset); err != nil || ok {
					return err
				}
				return v.load()
			})
		}
		var f lookupFloor
		found, row, below, above, rows, err := s.lookups.find(p, epoch, offset, &f)
		if found {
			m = f.m
			if err != nil {
				// The run was encoded from rows that parsed; it cannot fail now unless
				// memory is damaged. Say which row.
				return corruptf(p.refKey(epoch, offset), "cached referenced row: %v", err)
			}
			if ok = row && offset <= epochEnd(&m, epoch); !ok {
				m = proto.SegmentMetadata{}
			}
			return nil
		}
		m, ok, err = s.segmentForMiss(tp, p, epoch, offset, below, above, rows)
		return err
	})
	return m, ok, err
}

// segmentForMiss is SegmentFor after the lookup cache missed, with what find returned: it reads
// Pebble, and a run of rows around the floor into the cache (see find and readAhead). The caller
// holds the store open.
func (s *Store) segmentForMiss(tp proto.TopicIDPartition, p tpPrefix, epoch int32, offset, below, above int64, rows int) (m proto.SegmentMetadata, ok bool, err error) {
	gen, all := s.lookups.generation(p)
	err = s.withViewLocked(tp, p, func(v *view) error {
		decoded := false
		if rows == 0 {
			// The cache is full: the floor alone, and a run only for a floor found twice.
			fm, found, keyStart, err := v.floor(epoch, offset)
			if err != nil {
				return err
			}
			if !found {
				return v.load()
			}
			if offset <= epochEnd(&fm, epoch) {
				m, ok = fm, true
			}
			if !s.lookups.admit(p, epoch, keyStart) {
				return nil
			}
			rows, decoded = lookupRunRowsFull, true
		}
		r, err := v.run(epoch, offset, below, above, rows)
		if err != nil {
			return err
		}
		if !decoded {
			val, found := r.floor(offset)
			if !found {
				return v.load()
			}
			fm, err := decodeRef(val, p)
			if err != nil {
				return corruptf(p.refKey(epoch, r.starts[0]), "%v", err)
			}
			if offset <= epochEnd(&fm, epoch) {
				m, ok = fm, true
			}
		}
		s.lookups.keep(r, gen, all)
		if rows == lookupRunRows {
			return s.readAhead(v, r, gen, all)
		}
		return nil
	})
	return m, ok, err
}

// readAhead fills the cache, after a miss that read run r of an epoch down to its last row,
// with the partition's other epochs (those the cache does not hold), up to lookupRunRows rows
// in all: the epochs after r's, where the iterator is, then those before it, from the
// partition's first. A uniform lookup over a partition of many short epochs then misses about
// once per partition rather than once per epoch.
func (s *Store) readAhead(v *view, r *runRead, gen, all uint64) error {
	rows := lookupRunRows - len(r.starts)
	if r.lo != math.MinInt64 || rows <= 0 {
		return nil
	}
	held := func(e int32) bool { return s.lookups.holds(v.p, e) }
	after, err := v.following(rows, func(int32) bool { return false }, held)
	if err != nil {
		return err
	}
	for _, a := range after {
		s.lookups.keep(a, gen, all)
		rows -= len(a.starts)
	}
	if rows <= 0 || !v.it.SeekGE(v.p.with(kindRef, 0)) {
		return v.it.Error()
	}
	before, err := v.following(rows, func(e int32) bool { return e >= r.epoch }, held)
	for _, b := range before {
		s.lookups.keep(b, gen, all)
	}
	return err
}

// NextSegmentWithTxnIndex returns the first segment from SegmentFor(tp, epoch, offset) onwards,
// walking the epoch by end offset + 1, whose transaction index is not empty, as Kafka's
// nextSegmentWithTxnIndex.
func (s *Store) NextSegmentWithTxnIndex(tp proto.TopicIDPartition, epoch int32, offset int64) (proto.SegmentMetadata, bool, error) {
	var out proto.SegmentMetadata
	var found bool
	err := s.withView(tp, func(v *view) error {
		m, ok, err := v.segmentFor(epoch, offset)
		for ok && err == nil {
			if !m.TxnIndexEmpty {
				out, found = m, true
				return nil
			}
			if m.EndOffset == math.MaxInt64 {
				break
			}
			// Each step asks for the offset after the segment just seen and accepts only a
			// segment that holds it, so the offset asked for grows at every step and the walk
			// ends. Kafka accepts any segment SegmentFor returns there; one whose epoch map names
			// an epoch starting after its end offset (Apply refuses those) would be returned
			// again and again.
			next := m.EndOffset + 1
			m, ok, err = v.segmentFor(epoch, next)
			if ok && m.EndOffset < next {
				break
			}
		}
		if err != nil {
			return err
		}
		return v.load()
	})
	return out, found, err
}

// HighestOffsetForEpoch returns the highest offset copied in leader epoch epoch, as Kafka's
// highestOffsetForEpoch: raised by every COPY_SEGMENT_FINISHED segment of the epoch, never
// lowered, not even when those segments are deleted. None until a segment of the epoch finished
// copying.
func (s *Store) HighestOffsetForEpoch(tp proto.TopicIDPartition, epoch int32) (int64, bool, error) {
	var row epochRow
	err := s.withPartition(tp, func(v *view) error {
		if v.row.hasCur && v.row.cur == epoch {
			row = v.row.curRow
			return nil
		}
		key := v.p.epochKey(epoch)
		val, found := v.get(key)
		if !found {
			return v.it.Error()
		}
		var err error
		if row, err = decodeEpoch(val); err != nil {
			return corruptf(key, "%v", err)
		}
		return nil
	})
	return row.highest, row.hasHighest, err
}

// Segments returns every segment of tp not yet DELETE_SEGMENT_FINISHED, whatever its state,
// ordered by start offset (then id): Kafka's listRemoteLogSegments(tp), which has no order.
func (s *Store) Segments(tp proto.TopicIDPartition) ([]proto.SegmentMetadata, error) {
	var out []proto.SegmentMetadata
	err := s.withPartition(tp, func(v *view) error {
		lo, hi := v.p.kindBounds(kindSegment)
		for ok := v.it.SeekGE(lo); ok && bytes.Compare(v.it.Key(), hi) < 0; ok = v.it.Next() {
			pk, err := parseKey(v.it.Key())
			if err != nil {
				return corruptf(v.it.Key(), "%v", err)
			}
			m, err := decodeSegment(v.it.Value(), v.p, pk.id)
			if err != nil {
				return corruptf(v.it.Key(), "%v", err)
			}
			out = append(out, m)
		}
		return v.it.Error()
	})
	if err != nil {
		return nil, err
	}
	sortByStart(out)
	return out, nil
}

// SegmentsForEpoch returns the segments of leader epoch epoch, as Kafka's
// listRemoteLogSegments(tp, epoch): those referenced for reads and those unreferenced (still
// copying, being deleted, or replaced by a later upload), ordered by start offset (then id).
// An epoch no segment named yields none.
func (s *Store) SegmentsForEpoch(tp proto.TopicIDPartition, epoch int32) ([]proto.SegmentMetadata, error) {
	var out []proto.SegmentMetadata
	err := s.withPartition(tp, func(v *view) (err error) {
		out, err = v.epochSegments(epoch)
		return err
	})
	if err != nil {
		return nil, err
	}
	sortByStart(out)
	return out, nil
}

// RemoteLogSizeForEpoch returns the sum of the sizes of SegmentsForEpoch(tp, epoch), as Kafka's
// remoteLogSize(tp, epoch): segments still copying or being deleted count. 0 for an epoch no
// segment named.
func (s *Store) RemoteLogSizeForEpoch(tp proto.TopicIDPartition, epoch int32) (int64, error) {
	var size int64
	err := s.withPartition(tp, func(v *view) error {
		ms, err := v.epochSegments(epoch)
		for _, m := range ms {
			size += int64(m.SegmentSizeInBytes)
		}
		return err
	})
	return size, err
}

// RemoteLogSize returns the sum of the sizes of every segment of tp not yet
// DELETE_SEGMENT_FINISHED, kept as a running total in the partition's row: one read, whatever
// the number of segments. Kafka has no such query.
func (s *Store) RemoteLogSize(tp proto.TopicIDPartition) (int64, error) {
	var size int64
	err := s.withPartition(tp, func(v *view) error {
		size = v.row.bytes
		return nil
	})
	return size, err
}

// Segment returns the current view of one segment, and false if the store does not hold it
// (never added, or DELETE_SEGMENT_FINISHED). An unknown user partition wraps ErrNotFound.
func (s *Store) Segment(id proto.SegmentID) (proto.SegmentMetadata, bool, error) {
	var m proto.SegmentMetadata
	var ok bool
	err := s.withView(id.TopicIDPartition, func(v *view) (err error) {
		if m, ok, err = v.segment(id.ID); err != nil || ok {
			return err
		}
		return v.load()
	})
	return m, ok, err
}

// PartitionDeleteState returns the partition-delete state of tp, and false if no
// partition-delete record was applied for it. A partition whose DELETE_PARTITION_FINISHED was
// applied is unknown: the error wraps ErrNotFound.
func (s *Store) PartitionDeleteState(tp proto.TopicIDPartition) (proto.PartitionDeleteState, bool, error) {
	var st proto.PartitionDeleteState
	var ok bool
	err := s.withPartition(tp, func(v *view) error {
		st, ok = v.row.delState, v.row.hasDelete
		return nil
	})
	return st, ok, err
}

// SegmentCounts counts a partition's segments by state. DELETE_SEGMENT_FINISHED segments are
// gone from the store and not counted.
type SegmentCounts struct {
	CopyStarted   int64
	CopyFinished  int64
	DeleteStarted int64
}

// Total is the number of segments the store holds for the partition.
func (c SegmentCounts) Total() int64 { return c.CopyStarted + c.CopyFinished + c.DeleteStarted }

// PartitionInfo describes one user partition the store knows.
type PartitionInfo struct {
	Partition         proto.TopicIDPartition // with the topic name its records carry
	MetadataPartition int32                  // where its records come from
	Segments          SegmentCounts
	Bytes             int64 // RemoteLogSize
	DeleteState       proto.PartitionDeleteState
	HasDeleteState    bool
}

func (row *partRow) info(p tpPrefix) PartitionInfo {
	return PartitionInfo{
		Partition:         proto.TopicIDPartition{TopicID: p.topicID(), Topic: row.name, Partition: p.partition()},
		MetadataPartition: row.mp,
		Segments: SegmentCounts{
			CopyStarted:   row.counts[proto.CopySegmentStarted],
			CopyFinished:  row.counts[proto.CopySegmentFinished],
			DeleteStarted: row.counts[proto.DeleteSegmentStarted],
		},
		Bytes:          row.bytes,
		DeleteState:    row.delState,
		HasDeleteState: row.hasDelete,
	}
}

// Partitions returns every user partition the store knows, ordered by topic id and partition.
// It reads one row per partition. The slice is the caller's.
func (s *Store) Partitions() ([]PartitionInfo, error) {
	var out []PartitionInfo
	err := s.read(func() error {
		return s.eachPartition(s.db, func(p tpPrefix, row *partRow) error {
			out = append(out, row.info(p))
			return nil
		})
	})
	return out, err
}
