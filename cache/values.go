package cache

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/stratalog/strata/proto"
)

// Values are a compact binary format of this package's own: a version byte, then varints.
// A reader refuses a version it does not know rather than guess, so a later format can change
// any row as long as it bumps the version. Unreferenced rows have an empty value.
const valueVersion byte = 1

// storeFormat is the value of the format row. It changes when the key layout changes; a store of
// another format is refused by Open (the store is derived data: rebuild it from the topic).
const storeFormat byte = 3

// partRow is the row of one user partition.
type partRow struct {
	name      string // the topic name the partition was first seen with
	mp        int32  // the metadata partition its events come from
	hasDelete bool
	delState  proto.PartitionDeleteState
	// counts holds the number of segments in COPY_SEGMENT_STARTED, COPY_SEGMENT_FINISHED and
	// DELETE_SEGMENT_STARTED, indexed by state; DELETE_SEGMENT_FINISHED segments are gone.
	counts [3]int64
	bytes  int64 // sum of SegmentSizeInBytes over the partition's segments
	// The state of the partition's greatest epoch lives here rather than in an epoch row of
	// its own: nearly every record a broker publishes is in its partition's current epoch, so
	// a fetch that touches a partition rewrites one row for it instead of two. Every other
	// epoch with a state has its row; none above cur has a state.
	hasCur bool
	cur    int32
	curRow epochRow
}

// epochRow is the state of one leader epoch of a user partition: its own row, or for the
// partition's greatest epoch part of the partition row. Kafka keeps the highest offset of an
// epoch even after every segment of the epoch is gone, and so does the store.
type epochRow struct {
	hasHighest bool
	highest    int64
	// hasLast and last are the greatest start offset in the epoch's referenced map. Kafka finds
	// it with lastEntry() on its in-memory map; keeping it here lets COPY_SEGMENT_FINISHED, the
	// common case, decide without an iterator whether any entry must be moved.
	hasLast bool
	last    int64
}

const (
	partFlagDelete = 1 << 0
	partFlagCur    = 1 << 1

	segFlagTxnIndexEmpty = 1 << 0
	segFlagCustom        = 1 << 1

	epochFlagHighest = 1 << 0
	epochFlagLast    = 1 << 1
)

func encodePart(dst []byte, p *partRow) []byte {
	dst = append(dst, valueVersion)
	dst = binary.AppendUvarint(dst, uint64(len(p.name)))
	dst = append(dst, p.name...)
	dst = binary.AppendVarint(dst, int64(p.mp))
	var flags byte
	if p.hasDelete {
		flags |= partFlagDelete
	}
	if p.hasCur {
		flags |= partFlagCur
	}
	dst = append(dst, flags, byte(p.delState))
	for _, c := range p.counts {
		dst = binary.AppendVarint(dst, c)
	}
	dst = binary.AppendVarint(dst, p.bytes)
	if p.hasCur {
		dst = binary.AppendVarint(dst, int64(p.cur))
		dst = appendEpochBody(dst, &p.curRow)
	}
	return dst
}

func decodePart(b []byte) (partRow, error) {
	var p partRow
	d := decoder{b: b}
	d.version()
	p.name = string(d.bytes(d.length()))
	p.mp = d.int32()
	flags := d.byte()
	p.hasDelete = flags&partFlagDelete != 0
	p.delState = proto.PartitionDeleteState(d.byte())
	for i := range p.counts {
		p.counts[i] = d.varint()
	}
	p.bytes = d.varint()
	if flags&partFlagCur != 0 {
		p.hasCur, p.cur = true, d.int32()
		p.curRow = d.epochBody()
	}
	return p, d.done()
}

// encodeSegment writes the current view of a segment: the version, then its body. The
// segment's topic id, partition and id are in the key; its topic name is in the value, so that
// a lookup needs no other row to return the segment. Unknown tagged fields are not kept (the
// view is for queries, not for re-encoding records).
func encodeSegment(dst []byte, m *proto.SegmentMetadata) []byte {
	return appendSegmentBody(append(dst, valueVersion), m)
}

// encodeRef writes a referenced row: the version, the segment's id, then the segment's body,
// a copy of its segment row. The copy makes SegmentFor one seek; a referenced segment's view
// changes only by an update that rewrites or removes the row anyway.
func encodeRef(dst []byte, m *proto.SegmentMetadata) []byte {
	dst = append(dst, valueVersion)
	dst = append(dst, m.SegmentID.ID[:]...)
	return appendSegmentBody(dst, m)
}

func appendSegmentBody(dst []byte, m *proto.SegmentMetadata) []byte {
	dst = append(dst, byte(m.State))
	var flags byte
	if m.TxnIndexEmpty {
		flags |= segFlagTxnIndexEmpty
	}
	if m.CustomMetadata != nil {
		flags |= segFlagCustom
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(len(m.SegmentID.Topic)))
	dst = append(dst, m.SegmentID.Topic...)
	dst = binary.AppendVarint(dst, m.StartOffset)
	dst = binary.AppendVarint(dst, m.EndOffset-m.StartOffset)
	dst = binary.AppendVarint(dst, int64(m.BrokerID))
	dst = binary.AppendVarint(dst, m.MaxTimestampMs)
	dst = binary.AppendVarint(dst, m.EventTimestampMs)
	dst = binary.AppendVarint(dst, int64(m.SegmentSizeInBytes))
	dst = binary.AppendUvarint(dst, uint64(len(m.LeaderEpochs)))
	for _, e := range m.LeaderEpochs {
		dst = binary.AppendVarint(dst, int64(e.Epoch))
		dst = binary.AppendVarint(dst, e.StartOffset)
	}
	if m.CustomMetadata != nil {
		dst = binary.AppendUvarint(dst, uint64(len(m.CustomMetadata)))
		dst = append(dst, m.CustomMetadata...)
	}
	return dst
}

// decodeSegment decodes a segment row of the user partition with prefix p. The returned
// metadata owns its slices.
func decodeSegment(b []byte, p tpPrefix, id proto.UUID) (proto.SegmentMetadata, error) {
	d := decoder{b: b}
	d.version()
	return d.segmentBody(p, id)
}

// decodeRef decodes a referenced row of the user partition with prefix p.
func decodeRef(b []byte, p tpPrefix) (proto.SegmentMetadata, error) {
	d := decoder{b: b}
	d.version()
	var id proto.UUID
	copy(id[:], d.bytes(16))
	return d.segmentBody(p, id)
}

// refID returns the id a referenced row names, without decoding the rest.
func refID(b []byte) (proto.UUID, error) {
	var id proto.UUID
	d := decoder{b: b}
	d.version()
	copy(id[:], d.bytes(16))
	return id, d.err
}

func (d *decoder) segmentBody(p tpPrefix, id proto.UUID) (proto.SegmentMetadata, error) {
	var m proto.SegmentMetadata
	m.State = proto.SegmentState(d.byte())
	flags := d.byte()
	m.TxnIndexEmpty = flags&segFlagTxnIndexEmpty != 0
	m.SegmentID = proto.SegmentID{
		TopicIDPartition: proto.TopicIDPartition{TopicID: p.topicID(), Topic: string(d.bytes(d.length())), Partition: p.partition()},
		ID:               id,
	}
	m.StartOffset = d.varint()
	m.EndOffset = m.StartOffset + d.varint()
	m.BrokerID = d.int32()
	m.MaxTimestampMs = d.varint()
	m.EventTimestampMs = d.varint()
	m.SegmentSizeInBytes = d.int32()
	n := d.length()
	if d.err == nil && n > len(d.b)/2 { // each epoch takes at least two bytes
		d.fail("%d leader epochs in %d bytes", n, len(d.b))
	}
	if d.err == nil {
		m.LeaderEpochs = make([]proto.EpochEntry, n)
		for i := range m.LeaderEpochs {
			m.LeaderEpochs[i] = proto.EpochEntry{Epoch: d.int32(), StartOffset: d.varint()}
		}
	}
	if flags&segFlagCustom != 0 {
		m.CustomMetadata = append([]byte{}, d.bytes(d.length())...)
	}
	return m, d.done()
}

func encodeEpoch(dst []byte, e *epochRow) []byte {
	return appendEpochBody(append(dst, valueVersion), e)
}

func appendEpochBody(dst []byte, e *epochRow) []byte {
	var flags byte
	if e.hasHighest {
		flags |= epochFlagHighest
	}
	if e.hasLast {
		flags |= epochFlagLast
	}
	dst = append(dst, flags)
	if e.hasHighest {
		dst = binary.AppendVarint(dst, e.highest)
	}
	if e.hasLast {
		dst = binary.AppendVarint(dst, e.last)
	}
	return dst
}

func decodeEpoch(b []byte) (epochRow, error) {
	d := decoder{b: b}
	d.version()
	e := d.epochBody()
	return e, d.done()
}

func (d *decoder) epochBody() epochRow {
	var e epochRow
	flags := d.byte()
	if flags&epochFlagHighest != 0 {
		e.hasHighest, e.highest = true, d.varint()
	}
	if flags&epochFlagLast != 0 {
		e.hasLast, e.last = true, d.varint()
	}
	return e
}

func encodeOffset(next int64) []byte {
	return binary.AppendVarint([]byte{valueVersion}, next)
}

func decodeOffset(b []byte) (int64, error) {
	d := decoder{b: b}
	d.version()
	n := d.varint()
	return n, d.done()
}

func encodeSkipped(atNanos int64, reason string) []byte {
	dst := binary.AppendVarint([]byte{valueVersion}, atNanos)
	dst = binary.AppendUvarint(dst, uint64(len(reason)))
	return append(dst, reason...)
}

func decodeSkipped(b []byte) (atNanos int64, reason string, err error) {
	d := decoder{b: b}
	d.version()
	atNanos = d.varint()
	reason = string(d.bytes(d.length()))
	return atNanos, reason, d.done()
}

// encodeDropped writes a dropped record's row: why, and what it was about.
func encodeDropped(dst []byte, d *Drop) []byte {
	dst = append(dst, valueVersion, byte(d.Reason))
	dst = append(dst, d.UserPartition.TopicID[:]...)
	dst = binary.AppendVarint(dst, int64(d.UserPartition.Partition))
	dst = binary.AppendUvarint(dst, uint64(len(d.UserPartition.Topic)))
	dst = append(dst, d.UserPartition.Topic...)
	dst = append(dst, d.Segment[:]...)
	dst = binary.AppendUvarint(dst, uint64(len(d.Detail)))
	return append(dst, d.Detail...)
}

func decodeDropped(b []byte, mp int32, offset int64) (DroppedRecord, error) {
	d := decoder{b: b}
	d.version()
	r := DroppedRecord{Partition: mp, Offset: offset, Reason: DropReason(d.byte())}
	copy(r.UserPartition.TopicID[:], d.bytes(16))
	r.UserPartition.Partition = d.int32()
	r.UserPartition.Topic = string(d.bytes(d.length()))
	copy(r.Segment[:], d.bytes(16))
	r.Detail = string(d.bytes(d.length()))
	if d.err == nil && (r.Reason <= 0 || int(r.Reason) >= len(dropReasonNames)) {
		d.fail("unknown drop reason %d", r.Reason)
	}
	return r, d.done()
}

// encodeDeleted writes a deleted partition's tombstone: the metadata partition its records came
// from (so that ResetPartition of that metadata partition removes it) and its topic name.
func encodeDeleted(mp int32, name string) []byte {
	dst := binary.AppendVarint([]byte{valueVersion}, int64(mp))
	dst = binary.AppendUvarint(dst, uint64(len(name)))
	return append(dst, name...)
}

func decodeDeleted(b []byte) (mp int32, name string, err error) {
	d := decoder{b: b}
	d.version()
	mp = d.int32()
	name = string(d.bytes(d.length()))
	return mp, name, d.done()
}

// decoder reads a value; the first problem sticks and every later read returns zero.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *decoder) version() {
	if v := d.byte(); d.err == nil && v != valueVersion {
		d.fail("value version %d, want %d", v, valueVersion)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("value ends early")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int32() int32 {
	v := d.varint()
	if v != int64(int32(v)) {
		d.fail("%d does not fit an int32", v)
		return 0
	}
	return int32(v)
}

// length reads a uvarint length and checks it against what is left.
func (d *decoder) length() int {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad length")
		return 0
	}
	d.b = d.b[n:]
	if v > uint64(len(d.b)) {
		d.fail("length %d exceeds the %d bytes left", v, len(d.b))
		return 0
	}
	return int(v)
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.fail("value ends early")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

var errTrailing = errors.New("trailing bytes")

func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		return fmt.Errorf("%w: %d after the value", errTrailing, len(d.b))
	}
	return d.err
}
