package cache

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/stratalog/strata/proto"
)

// txn is one Apply. Every row it reads or changes is held in a slot until commit, which writes
// the net changes into one plain batch: a row a fetch touches many times (the partition row by
// every record of the partition) is read once and written once, a row created and removed
// within the fetch (the unreferenced row of a segment added and finished in one fetch) is not
// written at all, and nothing is read back from the batch.
//
// Reads of the store go through one iterator opened at the first read, a view of the store as
// the previous Apply left it (no other writer runs), and the partition rows through the
// writer's cache (Store.parts).
//
// The writer keeps one txn (Store.tx) and reuses it, with its maps, slots and buffers, from one
// Apply to the next: a fetch spread over hundreds of partitions would otherwise allocate a
// handful of maps and slots for each of them every time. What it keeps is bounded by the
// largest fetch applied, not by the store's history, and holds nothing of an Apply's records
// after it: release empties the maps and zeroes every slot.
type txn struct {
	s       *Store
	bulk    bool // a Loader's: the store holds nothing of the txn's partitions, nothing is read
	it      *pebble.Iterator
	offsets map[int32]int64
	parts   map[tpPrefix]*ptx
	vbuf    []byte  // a value being encoded
	kbuf    []byte  // a key being built
	drops   []*Drop // the records dropped, in entry order, kept in the store at commit

	// The segments prefetch reads, and their order; kept for the next Apply.
	refs  []prefetchRef
	order []int32

	// The sorted keys of one partition's slots, as commit writes them.
	ids       []proto.UUID
	epochKeys []int32
	refKeys   []refKey
	unrefKeys []unrefKey

	spare    []*ptx // partitions of earlier Applies, for reuse
	segSlots slab[segSlot]
	epSlots  slab[epochSlot]
	refSlots slab[refSlot]
	unrSlots slab[unrefSlot]
	metas    slab[proto.SegmentMetadata]
}

// slab hands out zeroed values of T from chunks it keeps from one Apply to the next.
type slab[T any] struct {
	chunks [][]T
	n      int // values handed out since reset
}

const slabChunk = 128

func (s *slab[T]) alloc() *T {
	c, i := s.n/slabChunk, s.n%slabChunk
	if c == len(s.chunks) {
		s.chunks = append(s.chunks, make([]T, slabChunk))
	}
	s.n++
	return &s.chunks[c][i]
}

// reset zeroes every value handed out, so that none keeps what it pointed to alive, and
// makes them available again.
func (s *slab[T]) reset() {
	for c := 0; s.n > 0; c++ {
		n := min(s.n, slabChunk)
		clear(s.chunks[c][:n])
		s.n -= n
	}
}

// ptx holds the slots of one user partition. A nil row or m, or a slot not present, is an
// absent row.
type ptx struct {
	tx      *txn
	p       tpPrefix
	row     *partRow // nil, or &rowBuf
	rowBuf  partRow
	dirty   bool
	dropped bool // DELETE_PARTITION_FINISHED applied: every row the store held is gone
	// The partition's tombstone: delKnown once the txn has looked for it, isDel when there is
	// one, newDel when this txn applied the DELETE_PARTITION_FINISHED that writes it.
	delKnown, isDel, newDel bool
	delMP                   int32
	delName                 string
	segs                    map[proto.UUID]*segSlot
	epochs                  map[int32]*epochSlot
	refs                    map[refKey]*refSlot
	unrefs                  map[unrefKey]*unrefSlot
}

type segSlot struct {
	m     *proto.SegmentMetadata
	dirty bool
	// fresh: the segment was absent when the txn first looked, so none of its rows can be in
	// the store and removing them needs no deletes.
	fresh bool
}

type epochSlot struct {
	row     epochRow
	present bool
	dirty   bool
}

type refSlot struct {
	present  bool
	m        *proto.SegmentMetadata // the referenced segment; only its id when read from the store
	dirty    bool
	mayExist bool // the store may hold the row, so removing it needs a delete
}

type refKey struct {
	epoch int32
	start int64
}

type unrefKey struct {
	epoch int32
	id    proto.UUID
}

type unrefSlot struct {
	present  bool
	mayExist bool
}

// newTxn returns the writer's txn, empty. The caller holds writeMu and calls release when the
// Apply is over.
func (s *Store) newTxn() *txn {
	if s.tx == nil {
		s.tx = &txn{s: s, offsets: make(map[int32]int64), parts: make(map[tpPrefix]*ptx)}
	}
	return s.tx
}

// release closes the txn's iterator and empties it for the next Apply, whether this one
// committed or not. Nothing of the Apply's records stays reachable: the slots are zeroed.
func (tx *txn) release() error {
	err := tx.close()
	tx.bulk = false
	clear(tx.offsets)
	clear(tx.drops)
	tx.drops = tx.drops[:0]
	for _, pt := range tx.parts {
		pt.reset()
		pt.tx, pt.row, pt.rowBuf, pt.delName = nil, nil, partRow{}, ""
		tx.spare = append(tx.spare, pt)
	}
	clear(tx.parts)
	tx.segSlots.reset()
	tx.epSlots.reset()
	tx.refSlots.reset()
	tx.unrSlots.reset()
	tx.metas.reset()
	return err
}

// meta returns a slot for a segment's metadata, a copy of m.
func (tx *txn) meta(m *proto.SegmentMetadata) *proto.SegmentMetadata {
	v := tx.metas.alloc()
	*v = *m
	return v
}

// get reads key from the store and calls fn with its value. The iterator has bloom filters on
// every level, Pebble's last level included: most keys Apply looks up are segments about to be
// added, which do not exist, and a filter answers that without reading a data block.
func (tx *txn) get(key []byte, fn func(v []byte) error) (bool, error) {
	if tx.bulk {
		return false, nil
	}
	if tx.it == nil {
		it, err := tx.s.db.NewIter(&pebble.IterOptions{UseL6Filters: true})
		if err != nil {
			return false, err
		}
		tx.it = it
	}
	if !tx.it.SeekPrefixGE(key) || !bytes.Equal(tx.it.Key(), key) {
		return false, tx.it.Error()
	}
	v, err := tx.it.ValueAndErr()
	if err != nil {
		return false, err
	}
	if err := fn(v); err != nil {
		return false, corruptf(key, "%v", err)
	}
	return true, nil
}

// close releases the txn's iterator.
func (tx *txn) close() error {
	if tx.it == nil {
		return nil
	}
	err := tx.it.Close()
	tx.it = nil
	return err
}

func (tx *txn) nextOffset(mp int32) (int64, error) {
	if n, ok := tx.offsets[mp]; ok {
		return n, nil
	}
	n, err := readOffset(tx.s.db, mp)
	if err != nil {
		return 0, err
	}
	tx.offsets[mp] = n
	return n, nil
}

// part returns the slots of a user partition, reading its row if the txn has not yet.
func (tx *txn) part(p tpPrefix) (*ptx, error) {
	if pt, ok := tx.parts[p]; ok {
		return pt, nil
	}
	var pt *ptx
	if n := len(tx.spare); n > 0 {
		pt, tx.spare = tx.spare[n-1], tx.spare[:n-1] // emptied by release
	} else {
		pt = &ptx{}
		pt.reset()
	}
	pt.tx, pt.p, pt.row, pt.dirty, pt.dropped = tx, p, nil, false, false
	pt.delKnown, pt.isDel, pt.newDel, pt.delMP, pt.delName = false, false, false, 0, ""
	tx.parts[p] = pt
	if row, ok := tx.s.parts[p]; ok {
		pt.setRow(row)
		return pt, nil
	}
	_, err := tx.get(p.partitionKey(), func(v []byte) error {
		row, err := decodePart(v)
		pt.setRow(row)
		return err
	})
	return pt, err
}

func (pt *ptx) setRow(row partRow) { pt.rowBuf, pt.row = row, &pt.rowBuf }

// isDeleted reports whether the partition has a tombstone. Only a partition without a row can
// have one, so the store is read at most once per Apply for a partition it does not know.
func (pt *ptx) isDeleted() (bool, error) {
	if pt.delKnown {
		return pt.isDel, nil
	}
	found, err := pt.tx.get(pt.p.deletedKey(), func(v []byte) error {
		_, _, err := decodeDeleted(v)
		return err
	})
	if err != nil {
		return false, err
	}
	pt.delKnown, pt.isDel = true, found
	return found, nil
}

// markDeleted gives the partition a tombstone, written at commit.
func (pt *ptx) markDeleted(mp int32, name string) {
	pt.delKnown, pt.isDel, pt.newDel, pt.delMP, pt.delName = true, true, true, mp, name
}

// reset empties the slots, keeping the maps' room for the next Apply.
func (pt *ptx) reset() {
	if pt.segs == nil {
		pt.segs = make(map[proto.UUID]*segSlot)
		pt.epochs = make(map[int32]*epochSlot)
		pt.refs = make(map[refKey]*refSlot)
		pt.unrefs = make(map[unrefKey]*unrefSlot)
	}
	clear(pt.segs)
	clear(pt.epochs)
	clear(pt.refs)
	clear(pt.unrefs)
}

// prefetch loads the segment rows the entries name before any record is applied, in key
// order, so that the txn's iterator moves forward through each level of the store instead of
// jumping back and forth; most of these reads are misses, for segments about to be added.
func (tx *txn) prefetch(entries []Entry) error {
	refs := tx.refs[:0]
	for i := range entries {
		var id *proto.SegmentID
		switch r := entries[i].Record.(type) {
		case *proto.SegmentMetadata:
			id = &r.SegmentID
		case *proto.SegmentMetadataUpdate:
			id = &r.SegmentID
		default:
			continue
		}
		p := prefixOf(id.TopicIDPartition)
		refs = append(refs, prefetchRef{
			k: [5]uint64{
				binary.BigEndian.Uint64(p[1:9]),
				binary.BigEndian.Uint64(p[9:17]),
				uint64(binary.BigEndian.Uint32(p[17:21])),
				binary.BigEndian.Uint64(id.ID[0:8]),
				binary.BigEndian.Uint64(id.ID[8:16]),
			},
			p: p, id: id.ID,
		})
	}
	tx.refs = refs
	// Sorted through their indexes, by words: sorting the refs themselves copied two 48-byte
	// values into every comparison and compared byte strings, ~5% of a cold load's CPU.
	order := tx.order[:0]
	for i := range refs {
		order = append(order, int32(i))
	}
	tx.order = order
	slices.SortFunc(order, func(i, j int32) int {
		a, b := &refs[i].k, &refs[j].k
		for w := range a {
			if a[w] != b[w] {
				return cmp.Compare(a[w], b[w])
			}
		}
		return 0
	})
	for _, i := range order {
		r := &refs[i]
		pt, err := tx.part(r.p)
		if err != nil {
			return err
		}
		if _, err := pt.segment(r.id); err != nil {
			return err
		}
	}
	return nil
}

// prefetchRef is a segment prefetch reads. k is its key after the tag byte and the kind (the
// topic id, the partition, the segment id) as big-endian words, which compare in key order.
type prefetchRef struct {
	k  [5]uint64
	p  tpPrefix
	id proto.UUID
}

func (pt *ptx) segment(id proto.UUID) (*segSlot, error) {
	if sl, ok := pt.segs[id]; ok {
		return sl, nil
	}
	sl := pt.tx.segSlots.alloc()
	sl.fresh = true
	pt.segs[id] = sl
	if pt.dropped || pt.row == nil {
		return sl, nil // a segment row exists only under a partition row
	}
	_, err := pt.tx.get(pt.p.segmentKey(id), func(v []byte) error {
		m, err := decodeSegment(v, pt.p, id)
		sl.m, sl.fresh = pt.tx.meta(&m), false
		return err
	})
	return sl, err
}

func (pt *ptx) epoch(epoch int32) (*epochSlot, error) {
	if sl, ok := pt.epochs[epoch]; ok {
		return sl, nil
	}
	sl := pt.tx.epSlots.alloc()
	pt.epochs[epoch] = sl
	// The partition row's cur fields are as the store has them until write moves them.
	switch r := pt.row; {
	case pt.dropped || r == nil || !r.hasCur || epoch > r.cur:
		return sl, nil // no epoch has a state above the current one
	case epoch == r.cur:
		sl.row, sl.present = r.curRow, true
		return sl, nil
	}
	_, err := pt.tx.get(pt.p.epochKey(epoch), func(v []byte) error {
		row, err := decodeEpoch(v)
		sl.row, sl.present = row, true
		return err
	})
	return sl, err
}

// ref returns the slot of the referenced row at (epoch, start), reading the store if needed.
func (pt *ptx) ref(epoch int32, start int64) (*refSlot, error) {
	k := refKey{epoch, start}
	if sl, ok := pt.refs[k]; ok {
		return sl, nil
	}
	sl := pt.tx.refSlots.alloc()
	pt.refs[k] = sl
	if pt.dropped {
		return sl, nil
	}
	_, err := pt.tx.get(pt.p.refKey(epoch, start), func(v []byte) error {
		id, err := refID(v)
		m := pt.tx.metas.alloc()
		m.SegmentID.ID = id
		sl.present, sl.mayExist, sl.m = true, true, m
		return err
	})
	return sl, err
}

// setRef references m at (epoch, start), without reading what was there.
func (pt *ptx) setRef(epoch int32, start int64, m *proto.SegmentMetadata) {
	k := refKey{epoch, start}
	sl := pt.refs[k]
	if sl == nil {
		sl = pt.tx.refSlots.alloc()
		sl.mayExist = !pt.dropped
		pt.refs[k] = sl
	}
	sl.present, sl.m, sl.dirty = true, m, true
}

// refStarts returns the start offsets referenced in the epoch from from up, ascending, or only
// the greatest if last, as the store overlaid with this txn has them. Only overlapping uploads
// and the deletion of an epoch's last referenced segment need it.
func (pt *ptx) refStarts(epoch int32, from int64, last bool) ([]int64, error) {
	var out []int64
	if !pt.dropped && !pt.tx.bulk {
		// Rows sort by start offset descending: those at or above from run from the epoch's
		// first row to (epoch, from), and the greatest comes first.
		upper := successor(pt.p.refEpoch(epoch))
		if from != math.MinInt64 {
			upper = pt.p.refKey(epoch, from-1)
		}
		it, err := pt.tx.s.db.NewIter(&pebble.IterOptions{LowerBound: pt.p.refEpoch(epoch), UpperBound: upper})
		if err != nil {
			return nil, err
		}
		for valid := it.First(); valid; valid = it.Next() {
			pk, err := parseKey(it.Key())
			if err != nil {
				return nil, errors.Join(corruptf(it.Key(), "%v", err), it.Close())
			}
			if _, inTxn := pt.refs[refKey{epoch, pk.offset}]; inTxn {
				continue // the slot says whether it still counts
			}
			out = append(out, pk.offset)
			if last {
				break
			}
		}
		if err := it.Close(); err != nil {
			return nil, err
		}
	}
	for k, sl := range pt.refs {
		if k.epoch == epoch && sl.present && k.start >= from {
			out = append(out, k.start)
		}
	}
	slices.Sort(out)
	if last && len(out) > 0 {
		out = out[len(out)-1:]
	}
	return out, nil
}

func (pt *ptx) setUnref(epoch int32, id proto.UUID, present bool) {
	k := unrefKey{epoch, id}
	sl := pt.unrefs[k]
	if sl == nil {
		fresh := false
		if ss, ok := pt.segs[id]; ok {
			fresh = ss.fresh
		}
		sl = pt.tx.unrSlots.alloc()
		sl.mayExist = !pt.dropped && !fresh
		pt.unrefs[k] = sl
	}
	sl.present = present
}

// drop removes every row of the partition: commit writes one range deletion before the
// partition's other rows, and the slots are emptied so that commit does not write them back.
// Records later in the same Apply about the partition find it absent, and what they write
// lands after the deletion.
func (pt *ptx) drop() {
	pt.dropped, pt.row, pt.dirty = true, nil, false
	pt.reset()
}

// commit writes the net changes of the txn into one batch, commits it with sync, and then
// brings the writer's partition cache up to date.
func (tx *txn) commit() error {
	if err := tx.close(); err != nil {
		return err
	}
	b := tx.s.db.NewBatch()
	defer b.Close()
	if err := tx.write(b); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("cache: commit: %w", err)
	}
	tx.publish()
	return nil
}

// write adds the net changes to b in key order: Pebble inserts a batch into its memtable entry
// by entry and starts each insert from where the previous one landed, so rows in key order
// cost far less than rows in map order. A dropped partition's range deletion comes before its
// rows, so that the rows written after the drop survive it.
func (tx *txn) write(b rowWriter) error {
	mps := make([]int32, 0, len(tx.offsets))
	for mp := range tx.offsets {
		mps = append(mps, mp)
	}
	slices.Sort(mps)
	for _, mp := range mps {
		if err := b.Set(offsetKey(mp), encodeOffset(tx.offsets[mp]), nil); err != nil {
			return err
		}
	}
	prefixes := make([]tpPrefix, 0, len(tx.parts))
	for p := range tx.parts {
		prefixes = append(prefixes, p)
	}
	slices.SortFunc(prefixes, func(a, b tpPrefix) int { return bytes.Compare(a[:], b[:]) })
	for _, d := range tx.drops {
		tx.vbuf = encodeDropped(tx.vbuf[:0], d)
		if err := b.Set(droppedKey(d.Partition, d.Offset), tx.vbuf, nil); err != nil {
			return err
		}
	}
	for _, p := range prefixes {
		if err := tx.parts[p].write(b); err != nil {
			return err
		}
	}
	return nil
}

func (pt *ptx) write(b rowWriter) error {
	tx := pt.tx
	if pt.dropped {
		if err := b.DeleteRange(pt.p[:], pt.p.upper(), nil); err != nil {
			return err
		}
	}
	if pt.newDel {
		if err := b.Set(pt.p.deletedKey(), encodeDeleted(pt.delMP, pt.delName), nil); err != nil {
			return err
		}
	}
	pt.placeEpochs()
	if pt.dirty {
		tx.vbuf = encodePart(tx.vbuf[:0], pt.row)
		tx.kbuf = pt.p.appendWith(tx.kbuf[:0], kindPartition)
		if err := b.Set(tx.kbuf, tx.vbuf, nil); err != nil {
			return err
		}
	}
	// Only the slots that write something are sorted: in a fetch that adds and finishes a
	// segment, or in a load, most unreferenced slots end as they began, absent.
	tx.ids = sortedKeys(tx.ids, pt.segs, func(sl *segSlot) bool { return sl.dirty && (sl.m != nil || !sl.fresh) }, compareUUID)
	for _, id := range tx.ids {
		sl := pt.segs[id]
		tx.kbuf = pt.p.appendSegmentKey(tx.kbuf[:0], id)
		var err error
		switch {
		case !sl.dirty || (sl.m == nil && sl.fresh):
		case sl.m == nil:
			err = b.Delete(tx.kbuf, nil)
		default:
			tx.vbuf = encodeSegment(tx.vbuf[:0], sl.m)
			err = b.Set(tx.kbuf, tx.vbuf, nil)
		}
		if err != nil {
			return err
		}
	}
	tx.epochKeys = sortedKeys(tx.epochKeys, pt.epochs, func(sl *epochSlot) bool { return sl.dirty }, cmp.Compare[int32])
	for _, epoch := range tx.epochKeys {
		if sl := pt.epochs[epoch]; sl.dirty {
			tx.vbuf = encodeEpoch(tx.vbuf[:0], &sl.row)
			tx.kbuf = pt.p.appendEpochKey(tx.kbuf[:0], epoch)
			if err := b.Set(tx.kbuf, tx.vbuf, nil); err != nil {
				return err
			}
		}
	}
	// By epoch, then start offset descending: the rows' key order.
	tx.refKeys = sortedKeys(tx.refKeys, pt.refs, func(sl *refSlot) bool { return sl.dirty && (sl.present || sl.mayExist) }, func(a, b refKey) int {
		if a.epoch != b.epoch {
			return cmp.Compare(a.epoch, b.epoch)
		}
		return cmp.Compare(b.start, a.start)
	})
	for _, k := range tx.refKeys {
		sl := pt.refs[k]
		tx.kbuf = pt.p.appendRefKey(tx.kbuf[:0], k.epoch, k.start)
		var err error
		switch {
		case !sl.dirty || (!sl.present && !sl.mayExist):
		case !sl.present:
			err = b.Delete(tx.kbuf, nil)
		default:
			tx.vbuf = encodeRef(tx.vbuf[:0], sl.m)
			err = b.Set(tx.kbuf, tx.vbuf, nil)
		}
		if err != nil {
			return err
		}
	}
	tx.unrefKeys = sortedKeys(tx.unrefKeys, pt.unrefs, func(sl *unrefSlot) bool { return sl.present || sl.mayExist }, func(a, b unrefKey) int {
		if a.epoch != b.epoch {
			return cmp.Compare(a.epoch, b.epoch)
		}
		return compareUUID(a.id, b.id)
	})
	for _, u := range tx.unrefKeys {
		sl := pt.unrefs[u]
		tx.kbuf = pt.p.appendUnrefKey(tx.kbuf[:0], u.epoch, u.id)
		var err error
		switch {
		case sl.present:
			err = b.Set(tx.kbuf, nil, nil)
		case sl.mayExist:
			err = b.Delete(tx.kbuf, nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// rowWriter receives what a txn writes: a Pebble batch, or a Loader's tables.
type rowWriter interface {
	Set(key, value []byte, opts *pebble.WriteOptions) error
	Delete(key []byte, opts *pebble.WriteOptions) error
	DeleteRange(start, end []byte, opts *pebble.WriteOptions) error
}

// placeEpochs keeps the state of the partition's greatest epoch in the partition row: when an
// epoch above the current one gained a state, the current one moves to a row of its own and
// the new one into the partition row.
func (pt *ptx) placeEpochs() {
	r := pt.row
	if r == nil {
		return
	}
	cur, has := r.cur, r.hasCur
	for epoch, sl := range pt.epochs {
		if sl.present && (!has || epoch > cur) {
			cur, has = epoch, true
		}
	}
	if !has {
		return
	}
	if !r.hasCur || cur != r.cur {
		if r.hasCur {
			old := pt.epochs[r.cur]
			if old == nil {
				old = pt.tx.epSlots.alloc()
				old.row, old.present = r.curRow, true
				pt.epochs[r.cur] = old
			}
			old.dirty = true
		}
		r.hasCur, r.cur = true, cur
		pt.dirty = true
	}
	if sl := pt.epochs[cur]; sl != nil && sl.dirty {
		r.curRow, sl.dirty, pt.dirty = sl.row, false, true
	}
}

// sortedKeys returns the keys of m whose values keep, in order, in dst's room.
func sortedKeys[K comparable, V any](dst []K, m map[K]V, keep func(V) bool, cmp func(a, b K) int) []K {
	dst = dst[:0]
	for k, v := range m {
		if keep(v) {
			dst = append(dst, k)
		}
	}
	slices.SortFunc(dst, cmp)
	return dst
}

// compareUUID orders ids as their bytes, in two word comparisons.
func compareUUID(a, b proto.UUID) int {
	if c := cmp.Compare(binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])); c != 0 {
		return c
	}
	return cmp.Compare(binary.BigEndian.Uint64(a[8:]), binary.BigEndian.Uint64(b[8:]))
}

// publish copies the committed partition rows into the writer's cache (Store.parts).
func (tx *txn) publish() {
	for p, pt := range tx.parts {
		if pt.row == nil {
			delete(tx.s.parts, p)
		} else {
			tx.s.parts[p] = *pt.row
		}
	}
	if tx.s.lookups != nil {
		tx.s.lookups.forget(func(forget func(p tpPrefix)) {
			for p := range tx.parts {
				forget(p)
			}
		})
	}
	if len(tx.parts) > 0 {
		tx.s.gens.bump(func(bump func(p tpPrefix)) {
			for p := range tx.parts {
				bump(p)
			}
		})
	}
}
