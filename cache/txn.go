package cache

import (
	"bytes"
	"cmp"
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
type txn struct {
	s       *Store
	it      *pebble.Iterator
	offsets map[int32]int64
	parts   map[tpPrefix]*ptx
	vbuf    []byte
}

// ptx holds the slots of one user partition. A nil row or m, or a slot not present, is an
// absent row.
type ptx struct {
	tx      *txn
	p       tpPrefix
	row     *partRow
	dirty   bool
	dropped bool // DELETE_PARTITION_FINISHED applied: every row the store held is gone
	segs    map[proto.UUID]*segSlot
	epochs  map[int32]*epochSlot
	refs    map[int32]map[int64]*refSlot
	unrefs  map[unrefKey]*unrefSlot
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

type unrefKey struct {
	epoch int32
	id    proto.UUID
}

type unrefSlot struct {
	present  bool
	mayExist bool
}

func (s *Store) newTxn() *txn {
	return &txn{s: s, offsets: make(map[int32]int64), parts: make(map[tpPrefix]*ptx)}
}

// get reads key from the store and calls fn with its value. The iterator has bloom filters on
// every level, Pebble's last level included: most keys Apply looks up are segments about to be
// added, which do not exist, and a filter answers that without reading a data block.
func (tx *txn) get(key []byte, fn func(v []byte) error) (bool, error) {
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
	pt := &ptx{tx: tx, p: p}
	pt.reset()
	tx.parts[p] = pt
	if row, ok := tx.s.parts[p]; ok {
		pt.row = &row
		return pt, nil
	}
	_, err := tx.get(p.partitionKey(), func(v []byte) error {
		row, err := decodePart(v)
		pt.row = &row
		return err
	})
	return pt, err
}

func (pt *ptx) reset() {
	pt.segs = make(map[proto.UUID]*segSlot)
	pt.epochs = make(map[int32]*epochSlot)
	pt.refs = make(map[int32]map[int64]*refSlot)
	pt.unrefs = make(map[unrefKey]*unrefSlot)
}

// prefetch loads the segment rows the entries name before any record is applied, in key
// order, so that the txn's iterator moves forward through each level of the store instead of
// jumping back and forth; most of these reads are misses, for segments about to be added.
func (tx *txn) prefetch(entries []Entry) error {
	type ref struct {
		p  tpPrefix
		id proto.UUID
	}
	refs := make([]ref, 0, len(entries))
	for i := range entries {
		var id proto.SegmentID
		switch r := entries[i].Record.(type) {
		case *proto.SegmentMetadata:
			id = r.SegmentID
		case *proto.SegmentMetadataUpdate:
			id = r.SegmentID
		default:
			continue
		}
		refs = append(refs, ref{prefixOf(id.TopicIDPartition), id.ID})
	}
	slices.SortFunc(refs, func(a, b ref) int {
		if c := bytes.Compare(a.p[:], b.p[:]); c != 0 {
			return c
		}
		return bytes.Compare(a.id[:], b.id[:])
	})
	for _, r := range refs {
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

func (pt *ptx) segment(id proto.UUID) (*segSlot, error) {
	if sl, ok := pt.segs[id]; ok {
		return sl, nil
	}
	sl := &segSlot{fresh: true}
	pt.segs[id] = sl
	if pt.dropped || pt.row == nil {
		return sl, nil // a segment row exists only under a partition row
	}
	_, err := pt.tx.get(pt.p.segmentKey(id), func(v []byte) error {
		m, err := decodeSegment(v, pt.p, id)
		sl.m, sl.fresh = &m, false
		return err
	})
	return sl, err
}

func (pt *ptx) epoch(epoch int32) (*epochSlot, error) {
	if sl, ok := pt.epochs[epoch]; ok {
		return sl, nil
	}
	sl := &epochSlot{}
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

func (pt *ptx) refSlots(epoch int32) map[int64]*refSlot {
	m := pt.refs[epoch]
	if m == nil {
		m = make(map[int64]*refSlot)
		pt.refs[epoch] = m
	}
	return m
}

// ref returns the slot of the referenced row at (epoch, start), reading the store if needed.
func (pt *ptx) ref(epoch int32, start int64) (*refSlot, error) {
	slots := pt.refSlots(epoch)
	if sl, ok := slots[start]; ok {
		return sl, nil
	}
	sl := &refSlot{}
	slots[start] = sl
	if pt.dropped {
		return sl, nil
	}
	_, err := pt.tx.get(pt.p.refKey(epoch, start), func(v []byte) error {
		id, err := refID(v)
		sl.present, sl.mayExist, sl.m = true, true, &proto.SegmentMetadata{SegmentID: proto.SegmentID{ID: id}}
		return err
	})
	return sl, err
}

// setRef references m at (epoch, start), without reading what was there.
func (pt *ptx) setRef(epoch int32, start int64, m *proto.SegmentMetadata) {
	slots := pt.refSlots(epoch)
	sl := slots[start]
	if sl == nil {
		sl = &refSlot{mayExist: !pt.dropped}
		slots[start] = sl
	}
	sl.present, sl.m, sl.dirty = true, m, true
}

// refStarts returns the start offsets referenced in the epoch from from up, ascending, or only
// the greatest if last, as the store overlaid with this txn has them. Only overlapping uploads
// and the deletion of an epoch's last referenced segment need it.
func (pt *ptx) refStarts(epoch int32, from int64, last bool) ([]int64, error) {
	slots := pt.refs[epoch]
	var out []int64
	if !pt.dropped {
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
			if _, inTxn := slots[pk.offset]; inTxn {
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
	for start, sl := range slots {
		if sl.present && start >= from {
			out = append(out, start)
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
		sl = &unrefSlot{mayExist: !pt.dropped && !fresh}
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
func (tx *txn) write(b *pebble.Batch) error {
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
	for _, p := range prefixes {
		if err := tx.parts[p].write(b); err != nil {
			return err
		}
	}
	return nil
}

func (pt *ptx) write(b *pebble.Batch) error {
	tx := pt.tx
	if pt.dropped {
		if err := b.DeleteRange(pt.p[:], pt.p.upper(), nil); err != nil {
			return err
		}
	}
	pt.placeEpochs()
	if pt.dirty {
		tx.vbuf = encodePart(tx.vbuf[:0], pt.row)
		if err := b.Set(pt.p.partitionKey(), tx.vbuf, nil); err != nil {
			return err
		}
	}
	for _, id := range sortedKeys(pt.segs, func(a, b proto.UUID) int { return bytes.Compare(a[:], b[:]) }) {
		sl := pt.segs[id]
		k := pt.p.segmentKey(id)
		var err error
		switch {
		case !sl.dirty || (sl.m == nil && sl.fresh):
		case sl.m == nil:
			err = b.Delete(k, nil)
		default:
			tx.vbuf = encodeSegment(tx.vbuf[:0], sl.m)
			err = b.Set(k, tx.vbuf, nil)
		}
		if err != nil {
			return err
		}
	}
	for _, epoch := range sortedKeys(pt.epochs, cmp.Compare[int32]) {
		if sl := pt.epochs[epoch]; sl.dirty {
			tx.vbuf = encodeEpoch(tx.vbuf[:0], &sl.row)
			if err := b.Set(pt.p.epochKey(epoch), tx.vbuf, nil); err != nil {
				return err
			}
		}
	}
	for _, epoch := range sortedKeys(pt.refs, cmp.Compare[int32]) {
		slots := pt.refs[epoch]
		// Descending, the rows' key order.
		for _, start := range sortedKeys(slots, func(a, b int64) int { return cmp.Compare(b, a) }) {
			sl := slots[start]
			k := pt.p.refKey(epoch, start)
			var err error
			switch {
			case !sl.dirty || (!sl.present && !sl.mayExist):
			case !sl.present:
				err = b.Delete(k, nil)
			default:
				tx.vbuf = encodeRef(tx.vbuf[:0], sl.m)
				err = b.Set(k, tx.vbuf, nil)
			}
			if err != nil {
				return err
			}
		}
	}
	for _, u := range sortedKeys(pt.unrefs, func(a, b unrefKey) int {
		if a.epoch != b.epoch {
			return cmp.Compare(a.epoch, b.epoch)
		}
		return bytes.Compare(a.id[:], b.id[:])
	}) {
		sl := pt.unrefs[u]
		var err error
		switch {
		case sl.present:
			err = b.Set(pt.p.unrefKey(u.epoch, u.id), nil, nil)
		case sl.mayExist:
			err = b.Delete(pt.p.unrefKey(u.epoch, u.id), nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// sortedKeys returns the keys of m in order. Most maps of a partition hold one key in a fetch
// spread over many partitions, so that case allocates nothing beyond the one-key slice.
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
				old = &epochSlot{row: r.curRow, present: true}
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

func sortedKeys[K comparable, V any](m map[K]V, cmp func(a, b K) int) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp)
	return keys
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
}
