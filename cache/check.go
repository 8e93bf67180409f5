package cache

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/stratalog/strata/proto"
)

// maxViolations bounds what Check collects: a store broken everywhere needs rebuilding, not a
// list of a million rows.
const maxViolations = 100

// Check reads the whole store and verifies every row decodes and the invariants that tie rows
// together hold:
//   - every partition's rows follow its partition row, whose segment counts and byte total
//     equal what its segment rows hold, and whose delete state is never FINISHED;
//   - a segment is COPY_SEGMENT_STARTED, COPY_SEGMENT_FINISHED or DELETE_SEGMENT_STARTED, with
//     a start offset >= 0, an end offset >= its start and strictly ascending leader epochs;
//   - a segment still copying or being deleted is unreferenced in each of its epochs and
//     referenced in none; a finished one is not both, and its epochs' highest offsets cover
//     its part of each epoch;
//   - a referenced row names a COPY_SEGMENT_FINISHED segment whose epoch starts at the row's
//     offset; an unreferenced row names a segment of that epoch;
//   - an epoch's greatest referenced start offset is the greatest referenced row's; the
//     partition row holds the state of the greatest epoch that has one, epoch rows the others;
//   - a deleted partition's tombstone has no partition row beside it;
//   - the writer's in-memory copy of partition rows (Store.parts) equals the rows.
//
// It returns nil, or the violations joined (errors.Join), each a *CorruptError, at most 100.
// It reads a snapshot, so it may run while Apply does (it waits only for an Apply in flight to
// take the snapshot). Its memory grows with the number of partitions, not of segments.
func (s *Store) Check() error {
	s.writeMu.Lock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		s.writeMu.Unlock()
		return ErrClosed
	}
	// The snapshot and the copy of the writer's cache are taken together, between two Apply
	// calls, so that they must agree.
	snap := s.db.NewSnapshot()
	defer snap.Close()
	cached := make(map[tpPrefix]partRow, len(s.parts))
	for p, row := range s.parts {
		cached[p] = row
	}
	s.writeMu.Unlock()

	c := &checker{snap: snap}
	it, err := snap.NewIter(nil)
	if err != nil {
		return err
	}
	for it.First(); it.Valid() && len(c.errs) < maxViolations; it.Next() {
		c.visit(it.Key(), it.Value())
	}
	c.endPartition()
	if err := it.Close(); err != nil {
		return err
	}
	if !c.format {
		c.fail(formatKey0, "missing")
	}
	c.cache(cached)
	if c.err != nil {
		return c.err
	}
	if len(c.errs) >= maxViolations {
		c.errs = append(c.errs[:maxViolations], fmt.Errorf("cache: check stopped after %d violations", maxViolations))
	}
	return errors.Join(c.errs...)
}

// cache compares the writer's cache with the rows it copies.
func (c *checker) cache(cached map[tpPrefix]partRow) {
	for p, want := range cached {
		key := p.partitionKey()
		v, ok := c.value(key)
		row, err := decodePart(v)
		if !ok || err != nil || row != want {
			c.fail(key, "the writer's cache holds %+v, the store %+v (present %t)", want, row, ok)
		}
	}
}

type checker struct {
	snap   *pebble.Snapshot
	errs   []error
	err    error // a read error: the check could not finish
	format bool

	cur     tpPrefix // the partition whose rows are being read
	inPart  bool
	hasRow  bool // cur has a partition row
	row     partRow
	counts  [3]int64
	bytes   int64
	refOpen bool // a run of referenced rows of one epoch is open
	refEp   int32
	refLast int64
	refRow  epochRow
	refHas  bool
}

func (c *checker) fail(key []byte, format string, args ...any) {
	c.errs = append(c.errs, corruptf(key, format, args...))
}

// value returns a copy of the value of key in the snapshot.
func (c *checker) value(key []byte) ([]byte, bool) {
	var out []byte
	ok, err := get(c.snap, key, func(v []byte) error {
		out = append([]byte{}, v...)
		return nil
	})
	if err != nil && c.err == nil {
		c.err = err
	}
	return out, ok
}

func (c *checker) visit(k, v []byte) {
	pk, err := parseKey(k)
	if err != nil {
		c.fail(k, "%v", err)
		return
	}
	switch pk.tag {
	case tagFormat:
		c.format = true
		if len(v) != 1 || v[0] != storeFormat {
			c.fail(k, "format %x, want %d", v, storeFormat)
		}
		return
	case tagOffset:
		if n, err := decodeOffset(v); err != nil {
			c.fail(k, "%v", err)
		} else if n < 0 {
			c.fail(k, "negative next offset %d", n)
		}
		return
	case tagSkipped:
		if _, _, err := decodeSkipped(v); err != nil {
			c.fail(k, "%v", err)
		}
		return
	case tagIdentity:
		if _, err := decodeIdentity(v); err != nil {
			c.fail(k, "%v", err)
		}
		return
	case tagDropped:
		if _, err := decodeDropped(v, pk.mp, pk.offset); err != nil {
			c.fail(k, "%v", err)
		}
		return
	case tagDeleted:
		if _, _, err := decodeDeleted(v); err != nil {
			c.fail(k, "%v", err)
		}
		if _, ok := c.value(pk.prefix.partitionKey()); ok {
			c.fail(k, "the deleted partition has a partition row")
		}
		return
	}
	if !c.inPart || pk.prefix != c.cur {
		c.endPartition()
		c.cur, c.inPart, c.hasRow = pk.prefix, true, false
		c.counts, c.bytes = [3]int64{}, 0
		if pk.kind != kindPartition {
			c.fail(k, "no partition row precedes it")
		}
	}
	switch pk.kind {
	case kindPartition:
		c.partition(k, v)
	case kindSegment:
		c.segment(k, pk, v)
	case kindEpoch:
		c.epoch(k, pk, v)
	case kindRef:
		c.ref(k, pk, v)
	case kindUnref:
		c.unref(k, pk, v)
	}
}

func (c *checker) partition(k, v []byte) {
	row, err := decodePart(v)
	if err != nil {
		c.fail(k, "%v", err)
		return
	}
	c.row, c.hasRow = row, true
	if row.hasDelete && (!row.delState.Valid() || row.delState == proto.DeletePartitionFinished) {
		c.fail(k, "delete state %s: a partition is either before DELETE_PARTITION_FINISHED or gone", row.delState)
	}
	if row.mp < 0 {
		c.fail(k, "negative metadata partition %d", row.mp)
	}
	if row.hasCur {
		c.epochRow(k, row.cur, row.curRow)
	}
}

func (c *checker) endPartition() {
	c.endRefRun()
	if !c.inPart || !c.hasRow {
		return
	}
	if c.counts != c.row.counts || c.bytes != c.row.bytes {
		c.fail(c.cur.partitionKey(), "counts %v and %d bytes, but its segment rows hold %v and %d bytes",
			c.row.counts, c.row.bytes, c.counts, c.bytes)
	}
}

func (c *checker) segment(k []byte, pk parsedKey, v []byte) {
	m, err := decodeSegment(v, pk.prefix, pk.id)
	if err != nil {
		c.fail(k, "%v", err)
		return
	}
	if c.hasRow && m.SegmentID.Topic != c.row.name {
		c.fail(k, "topic %q, but the partition's is %q", m.SegmentID.Topic, c.row.name)
	}
	switch m.State {
	case proto.CopySegmentStarted, proto.CopySegmentFinished, proto.DeleteSegmentStarted:
		c.counts[m.State]++
	default:
		c.fail(k, "state %s is not one the store keeps", m.State)
		return
	}
	c.bytes += int64(m.SegmentSizeInBytes)
	if m.StartOffset < 0 || m.EndOffset < m.StartOffset || len(m.LeaderEpochs) == 0 {
		c.fail(k, "offsets %d..%d with %d leader epochs", m.StartOffset, m.EndOffset, len(m.LeaderEpochs))
		return
	}
	for i, e := range m.LeaderEpochs {
		if i > 0 && e.Epoch <= m.LeaderEpochs[i-1].Epoch {
			c.fail(k, "leader epochs not strictly ascending: %d after %d", e.Epoch, m.LeaderEpochs[i-1].Epoch)
			return
		}
	}
	for i, e := range m.LeaderEpochs {
		_, unref := c.value(c.cur.unrefKey(e.Epoch, pk.id))
		refVal, isRef := c.value(c.cur.refKey(e.Epoch, e.StartOffset))
		if isRef {
			id, err := refID(refVal)
			isRef = err == nil && id == pk.id
		}
		switch {
		case m.State != proto.CopySegmentFinished && (!unref || isRef):
			c.fail(k, "%s in epoch %d: unreferenced %t, referenced %t; want unreferenced only", m.State, e.Epoch, unref, isRef)
		case m.State == proto.CopySegmentFinished && unref && isRef:
			c.fail(k, "%s in epoch %d: both referenced and unreferenced", m.State, e.Epoch)
		case m.State == proto.CopySegmentFinished:
			end := proto.EndOffsetForEpoch(m.LeaderEpochs, i, m.EndOffset)
			row, ok := c.epochState(e.Epoch)
			if !ok || !row.hasHighest || row.highest < end {
				c.fail(k, "epoch %d ends at %d in this finished segment, but the epoch's highest offset is %s", e.Epoch, end, optional(row.highest, ok && row.hasHighest))
			}
		}
	}
}

// epochState returns the state of an epoch of the current partition: the partition row's for
// its current epoch, else the epoch's row.
func (c *checker) epochState(epoch int32) (epochRow, bool) {
	if c.hasRow && c.row.hasCur && c.row.cur == epoch {
		return c.row.curRow, true
	}
	v, ok := c.value(c.cur.epochKey(epoch))
	if !ok {
		return epochRow{}, false
	}
	row, err := decodeEpoch(v)
	return row, err == nil
}

func (c *checker) epoch(k []byte, pk parsedKey, v []byte) {
	row, err := decodeEpoch(v)
	if err != nil {
		c.fail(k, "%v", err)
		return
	}
	if c.hasRow && (!c.row.hasCur || pk.epoch >= c.row.cur) {
		c.fail(k, "an epoch row, but the partition row's current epoch is %s", optional(int64(c.row.cur), c.row.hasCur))
	}
	c.epochRow(k, pk.epoch, row)
}

// epochRow checks an epoch's state against its referenced rows.
func (c *checker) epochRow(k []byte, epoch int32, row epochRow) {
	if row.hasLast && !row.hasHighest {
		c.fail(k, "epoch %d: a referenced segment but no highest offset", epoch)
	}
	if row.hasLast {
		if _, ok := c.value(c.cur.refKey(epoch, row.last)); !ok {
			c.fail(k, "epoch %d: greatest referenced start offset %d, but nothing is referenced there", epoch, row.last)
		}
	}
}

func (c *checker) ref(k []byte, pk parsedKey, v []byte) {
	if !c.refOpen || c.refEp != pk.epoch {
		c.endRefRun()
		c.refOpen, c.refEp = true, pk.epoch
		c.refRow, c.refHas = c.epochState(pk.epoch)
		if !c.refHas || !c.refRow.hasLast {
			c.fail(k, "its epoch has no state, or one without a greatest referenced start offset")
		}
		c.refLast = pk.offset // rows sort by start offset descending: the first is the greatest
	}
	copied, err := decodeRef(v, pk.prefix)
	if err != nil {
		c.fail(k, "%v", err)
		return
	}
	id := copied.SegmentID.ID
	sv, ok := c.value(c.cur.segmentKey(id))
	if !ok {
		c.fail(k, "names segment %s, which the store does not hold", id)
		return
	}
	m, err := decodeSegment(sv, pk.prefix, id)
	if err != nil {
		return // reported with the segment row
	}
	if !bytes.Equal(v[1+16:], sv[1:]) {
		c.fail(k, "its copy of segment %s differs from the segment's row", id)
	}
	if m.State != proto.CopySegmentFinished {
		c.fail(k, "names segment %s in %s; only COPY_SEGMENT_FINISHED segments are referenced", id, m.State)
	}
	for _, e := range m.LeaderEpochs {
		if e.Epoch == pk.epoch {
			if e.StartOffset != pk.offset {
				c.fail(k, "names segment %s, whose epoch %d starts at %d", id, pk.epoch, e.StartOffset)
			}
			return
		}
	}
	c.fail(k, "names segment %s, which has no epoch %d", id, pk.epoch)
}

// endRefRun checks that the run of referenced rows of one epoch began where its epoch row says.
func (c *checker) endRefRun() {
	if !c.refOpen {
		return
	}
	c.refOpen = false
	if c.refHas && c.refRow.hasLast && c.refRow.last != c.refLast {
		c.fail(c.cur.refEpoch(c.refEp), "epoch %d: greatest referenced start offset %d, but the greatest referenced row is at %d", c.refEp, c.refRow.last, c.refLast)
	}
}

func (c *checker) unref(k []byte, pk parsedKey, v []byte) {
	if len(v) != 0 {
		c.fail(k, "value of %d bytes, want none", len(v))
	}
	sv, ok := c.value(c.cur.segmentKey(pk.id))
	if !ok {
		c.fail(k, "names a segment the store does not hold")
		return
	}
	m, err := decodeSegment(sv, pk.prefix, pk.id)
	if err != nil {
		return
	}
	if !hasEpoch(m.LeaderEpochs, pk.epoch) {
		c.fail(k, "names a segment without epoch %d", pk.epoch)
	}
}

func optional(v int64, ok bool) string {
	if !ok {
		return "none"
	}
	return strconv.FormatInt(v, 10)
}

// Dump writes every row of the store, one line each, in key order: the format, the next offset
// of each metadata partition, the skips, then each user partition (by topic id and partition)
// with its segments (by id), epochs, referenced rows (by epoch, then start offset descending)
// and unreferenced rows. Two stores that applied the same records dump the same text, so
// diffing dumps compares stores. A row that does not decode prints as hex with the reason. Dump
// reads one consistent view.
func (s *Store) Dump(w io.Writer) error {
	return s.read(func() error {
		it, err := s.db.NewIter(nil)
		if err != nil {
			return err
		}
		bw := bufio.NewWriter(w)
		for it.First(); it.Valid(); it.Next() {
			bw.WriteString(formatRow(it.Key(), it.Value()))
			bw.WriteByte('\n')
		}
		return errors.Join(it.Close(), bw.Flush())
	})
}

// formatRow prints one row as Dump does.
func formatRow(k, v []byte) string {
	var b strings.Builder
	b.WriteString(formatKey(k))
	pk, err := parseKey(k)
	if err == nil {
		err = formatValue(&b, pk, v)
	}
	if err != nil {
		fmt.Fprintf(&b, " !value(%s): %v", hex.EncodeToString(v), err)
	}
	return b.String()
}

func formatValue(b *strings.Builder, pk parsedKey, v []byte) error {
	switch pk.tag {
	case tagFormat:
		fmt.Fprintf(b, " %x", v)
		return nil
	case tagOffset:
		n, err := decodeOffset(v)
		fmt.Fprintf(b, " next=%d", n)
		return err
	case tagIdentity:
		id, err := decodeIdentity(v)
		fmt.Fprintf(b, " cluster=%q topic-id=%s partitions=%d", id.ClusterID, id.TopicID, id.Partitions)
		return err
	case tagSkipped:
		at, reason, err := decodeSkipped(v)
		fmt.Fprintf(b, " at=%s reason=%q", time.Unix(0, at).UTC().Format(time.RFC3339Nano), reason)
		return err
	case tagDropped:
		d, err := decodeDropped(v, pk.mp, pk.offset)
		fmt.Fprintf(b, " reason=%s partition=%s segment=%s detail=%q", d.Reason, d.UserPartition, d.Segment, d.Detail)
		return err
	case tagDeleted:
		mp, name, err := decodeDeleted(v)
		fmt.Fprintf(b, " topic=%q mp=%d", name, mp)
		return err
	}
	switch pk.kind {
	case kindPartition:
		row, err := decodePart(v)
		del := "none"
		if row.hasDelete {
			del = row.delState.String()
		}
		fmt.Fprintf(b, " topic=%q mp=%d delete=%s copy-started=%d copy-finished=%d delete-started=%d bytes=%d",
			row.name, row.mp, del, row.counts[0], row.counts[1], row.counts[2], row.bytes)
		if row.hasCur {
			fmt.Fprintf(b, " epoch=%d highest=%s last-referenced=%s", row.cur,
				optional(row.curRow.highest, row.curRow.hasHighest), optional(row.curRow.last, row.curRow.hasLast))
		}
		return err
	case kindSegment:
		m, err := decodeSegment(v, pk.prefix, pk.id)
		fmt.Fprintf(b, " %s start=%d end=%d epochs=[", m.State, m.StartOffset, m.EndOffset)
		for i, e := range m.LeaderEpochs {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(b, "%d:%d", e.Epoch, e.StartOffset)
		}
		custom := "null"
		if m.CustomMetadata != nil {
			custom = "0x" + hex.EncodeToString(m.CustomMetadata)
		}
		fmt.Fprintf(b, "] size=%d broker=%d max-ts=%d event-ts=%d txn-index-empty=%t custom=%s",
			m.SegmentSizeInBytes, m.BrokerID, m.MaxTimestampMs, m.EventTimestampMs, m.TxnIndexEmpty, custom)
		return err
	case kindEpoch:
		row, err := decodeEpoch(v)
		fmt.Fprintf(b, " highest=%s last-referenced=%s", optional(row.highest, row.hasHighest), optional(row.last, row.hasLast))
		return err
	case kindRef:
		m, err := decodeRef(v, pk.prefix)
		fmt.Fprintf(b, " -> %s", m.SegmentID.ID)
		return err
	case kindUnref:
		if len(v) != 0 {
			return fmt.Errorf("value of %d bytes, want none", len(v))
		}
	}
	return nil
}
