package cache

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/stratalog/strata/proto"
)

// The lookup cache keeps a run's rows in a form of its own, about half the size of the rows as
// Pebble holds them, so that its budget holds twice the segments: the topic name once per run
// (every row of a partition normally carries the same), and every number as the difference from
// the row above it (neighbouring segments of a partition have nearly the same sizes, timestamps
// and offsets, so most differences take a byte or two). The segment id is kept whole: ids are
// random. A row of a segment with one leader epoch takes about 28 bytes instead of about 70.
//
// Rows are in groups of runGroupRows; each group starts from zero differences, so a lookup
// decodes at most one group, and a table at the head of the run gives each group's first start
// and where its rows begin:
//
//	run:   groups x (start offset of its first row: 8, offset of its rows after the table: 4)
//	       then the rows
//	row:   uvarint  previous row's key start - this row's (0 for a group's first row)
//	       uvarint  state<<4 | one epoch<<3 | custom<<2 | txnIndexEmpty<<1 | topic differs
//	                from the run's
//	       16 bytes segment id
//	       [uvarint length, bytes: topic name, when it differs]
//	       varint   start offset - key start
//	       varint   end offset - (previous row's start offset - 1), or - start offset in a
//	                group's first row
//	       varint   broker id, max timestamp, event timestamp, size: each minus the previous
//	                row's (0 for a group's first row)
//	       unless the segment has one leader epoch, the run's, from its start offset (one
//	       epoch): uvarint leader epochs, then each: varint epoch - the one before (the run's
//	       epoch for the first), varint its start offset - the one before (the segment's start
//	       offset for the first)
//	       [uvarint length, bytes: custom metadata, when present]
//
// Differences are taken in wrapping int64 arithmetic, so every value round-trips exactly.
// What a row decodes to is what decodeRef returns for the row Pebble held (TestLookupRowsRoundTrip).
const runGroupRows = 16

// runGroupHead is the size of a group's entry in the table at the head of a run.
const runGroupHead = 12

// denseRow is one row as the cache's form decodes it, or as encodeRun reads it from Pebble's.
type denseRow struct {
	key                    int64 // the key's start offset
	state                  byte
	txnEmpty, hasCustom    bool
	id                     [16]byte
	topic                  []byte // when not sameTopic
	sameTopic              bool   // the row's topic name is the run's
	start, end             int64
	broker, maxTs, eventTs int64
	size                   int64
	epochs                 []proto.EpochEntry
	custom                 []byte
}

var errRunRow = errors.New("cache: a referenced row the lookup cache cannot read")

// parseRef reads Pebble's form of a referenced row (encodeRef) into r, reusing r's slices.
func parseRef(b []byte, key int64, r *denseRow) error {
	d := decoder{b: b}
	d.version()
	copy(r.id[:], d.bytes(16))
	r.key = key
	r.state = d.byte()
	flags := d.byte()
	r.txnEmpty = flags&segFlagTxnIndexEmpty != 0
	r.hasCustom = flags&segFlagCustom != 0
	r.topic = d.bytes(d.length())
	r.start = d.varint()
	r.end = r.start + d.varint()
	r.broker = int64(d.int32())
	r.maxTs = d.varint()
	r.eventTs = d.varint()
	r.size = int64(d.int32())
	n := d.length()
	if d.err == nil && n > len(d.b)/2 {
		d.fail("%d leader epochs in %d bytes", n, len(d.b))
	}
	r.epochs = r.epochs[:0]
	for range n {
		if d.err != nil {
			break
		}
		r.epochs = append(r.epochs, proto.EpochEntry{Epoch: d.int32(), StartOffset: d.varint()})
	}
	r.custom = nil
	if r.hasCustom {
		r.custom = d.bytes(d.length())
	}
	if d.err != nil {
		return d.err
	}
	if err := d.done(); err != nil {
		return err
	}
	return nil
}

// encodeRun appends the cache's form of the rows of rr to dst and returns it with the run's
// topic name (the first row's). It fails if a row does not parse: such a run is not kept, and a
// lookup of that row reads Pebble, which reports the damage.
func encodeRun(dst []byte, rr *runRead) ([]byte, string, error) {
	n := len(rr.starts)
	groups := (n + runGroupRows - 1) / runGroupRows
	base := len(dst)
	dst = append(dst, make([]byte, groups*runGroupHead)...)
	rowsAt := len(dst)
	var topic []byte
	var row, prev denseRow
	for i, key := range rr.starts {
		from := uint32(0)
		if i > 0 {
			from = rr.ends[i-1]
		}
		if err := parseRef(rr.vals[from:rr.ends[i]], key, &row); err != nil {
			return dst[:base], "", err
		}
		if i == 0 {
			topic = append(topic, row.topic...)
		}
		first := i%runGroupRows == 0
		if first {
			g := dst[base+runGroupHead*(i/runGroupRows):]
			binary.LittleEndian.PutUint64(g, uint64(key))
			binary.LittleEndian.PutUint32(g[8:], uint32(len(dst)-rowsAt))
			prev = denseRow{key: key}
		}
		dst = appendDenseRow(dst, &row, &prev, first, topic, rr.epoch)
		prev, row = row, prev // keep row's slices for reuse
	}
	return dst, string(topic), nil
}

func appendDenseRow(dst []byte, r, prev *denseRow, first bool, topic []byte, epoch int32) []byte {
	dst = binary.AppendUvarint(dst, uint64(prev.key-r.key))
	head := uint64(r.state) << 4
	// The common case: the segment's one epoch is the run's, from its start offset.
	oneEpoch := len(r.epochs) == 1 && r.epochs[0] == proto.EpochEntry{Epoch: epoch, StartOffset: r.start}
	if oneEpoch {
		head |= 1 << 3
	}
	if r.hasCustom {
		head |= 1 << 2
	}
	if r.txnEmpty {
		head |= 1 << 1
	}
	otherTopic := string(r.topic) != string(topic)
	if otherTopic {
		head |= 1
	}
	dst = binary.AppendUvarint(dst, head)
	dst = append(dst, r.id[:]...)
	if otherTopic {
		dst = binary.AppendUvarint(dst, uint64(len(r.topic)))
		dst = append(dst, r.topic...)
	}
	dst = binary.AppendVarint(dst, r.start-r.key)
	if first {
		dst = binary.AppendVarint(dst, r.end-r.start)
	} else {
		dst = binary.AppendVarint(dst, r.end-(prev.start-1))
	}
	dst = binary.AppendVarint(dst, r.broker-prev.broker)
	dst = binary.AppendVarint(dst, r.maxTs-prev.maxTs)
	dst = binary.AppendVarint(dst, r.eventTs-prev.eventTs)
	dst = binary.AppendVarint(dst, r.size-prev.size)
	if !oneEpoch {
		dst = binary.AppendUvarint(dst, uint64(len(r.epochs)))
		pe, ps := int64(epoch), r.start
		for _, e := range r.epochs {
			dst = binary.AppendVarint(dst, int64(e.Epoch)-pe)
			dst = binary.AppendVarint(dst, e.StartOffset-ps)
			pe, ps = int64(e.Epoch), e.StartOffset
		}
	}
	if r.hasCustom {
		dst = binary.AppendUvarint(dst, uint64(len(r.custom)))
		dst = append(dst, r.custom...)
	}
	return dst
}

// runReader decodes the rows of one group of a run in the cache's form.
type runReader struct {
	b     []byte // what is left of the group's rows
	epoch int32
	first bool
	err   error
}

func (rd *runReader) uvarint() uint64 {
	v, n := binary.Uvarint(rd.b)
	if n <= 0 {
		rd.fail()
		return 0
	}
	rd.b = rd.b[n:]
	return v
}

func (rd *runReader) varint() int64 {
	v, n := binary.Varint(rd.b)
	if n <= 0 {
		rd.fail()
		return 0
	}
	rd.b = rd.b[n:]
	return v
}

func (rd *runReader) bytes(n uint64) []byte {
	if n > uint64(len(rd.b)) {
		rd.fail()
		return nil
	}
	v := rd.b[:n]
	rd.b = rd.b[n:]
	return v
}

func (rd *runReader) fail() {
	if rd.err == nil {
		rd.err = errRunRow
	}
	rd.b = nil
}

// next decodes the row after prev (whose key, for a group's first row, is the group's start)
// into r, reusing r's epochs.
func (rd *runReader) next(prev, r *denseRow) {
	r.key = prev.key - int64(rd.uvarint())
	head := rd.uvarint()
	r.state = byte(head >> 4)
	r.hasCustom = head&(1<<2) != 0
	r.txnEmpty = head&(1<<1) != 0
	copy(r.id[:], rd.bytes(16))
	r.topic, r.sameTopic = nil, head&1 == 0
	if !r.sameTopic {
		r.topic = rd.bytes(rd.uvarint())
	}
	r.start = r.key + rd.varint()
	if rd.first {
		r.end = r.start + rd.varint()
	} else {
		r.end = prev.start - 1 + rd.varint()
	}
	r.broker = prev.broker + rd.varint()
	r.maxTs = prev.maxTs + rd.varint()
	r.eventTs = prev.eventTs + rd.varint()
	r.size = prev.size + rd.varint()
	r.epochs = r.epochs[:0]
	if head&(1<<3) != 0 {
		r.epochs = append(r.epochs, proto.EpochEntry{Epoch: rd.epoch, StartOffset: r.start})
	} else {
		rd.epochList(r)
	}
	r.custom = nil
	if r.hasCustom {
		r.custom = rd.bytes(rd.uvarint())
	}
	rd.first = false
}

// epochList decodes the leader epochs of a row whose epochs are not the run's one.
func (rd *runReader) epochList(r *denseRow) {
	n := rd.uvarint()
	if n > uint64(len(rd.b)) {
		rd.fail()
		n = 0
	}
	pe, ps := int64(rd.epoch), r.start
	for range n {
		pe += rd.varint()
		ps += rd.varint()
		r.epochs = append(r.epochs, proto.EpochEntry{Epoch: int32(pe), StartOffset: ps})
	}
}

// metadata returns the segment r holds as decodeRef returns it from Pebble's form: what it
// returns is the caller's. topic is the run's topic as a string, used when r's is the same.
func (r *denseRow) metadata(p tpPrefix, topic string) proto.SegmentMetadata {
	name := topic
	if !r.sameTopic {
		name = string(r.topic)
	}
	m := proto.SegmentMetadata{
		SegmentID: proto.SegmentID{
			TopicIDPartition: proto.TopicIDPartition{TopicID: p.topicID(), Topic: name, Partition: p.partition()},
			ID:               r.id,
		},
		StartOffset:        r.start,
		EndOffset:          r.end,
		BrokerID:           int32(r.broker),
		MaxTimestampMs:     r.maxTs,
		EventTimestampMs:   r.eventTs,
		SegmentSizeInBytes: int32(r.size),
		LeaderEpochs:       append(make([]proto.EpochEntry, 0, len(r.epochs)), r.epochs...),
		State:              proto.SegmentState(r.state),
		TxnIndexEmpty:      r.txnEmpty,
	}
	if r.hasCustom {
		m.CustomMetadata = append([]byte{}, r.custom...)
	}
	return m
}

// runFloor finds, in run b of n rows in the cache's form, the row with the greatest key start
// at or below offset, decodes it into r and returns true, with the key start of the run's row
// just above it (hasAbove false when it is the run's first row); false when every row starts
// above offset.
func runFloor(b []byte, n int, epoch int32, offset int64, r *denseRow) (found bool, above int64, hasAbove bool, err error) {
	groups := (n + runGroupRows - 1) / runGroupRows
	if len(b) < runGroupHead*groups {
		return false, 0, false, errRunRow
	}
	// Starts descend: the first group whose first row is at or below offset. The floor is in
	// the group before it, after that group's first row, or else is this group's first row,
	// below the group before's last.
	lo, hi := 0, groups
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if runGroupStart(b, m) > offset {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo > 0 {
		found, above, hasAbove, err = runGroupFloor(b, groups, lo-1, epoch, offset, r)
		if found || err != nil || lo == groups {
			return found, above, hasAbove, err
		}
	}
	if lo == groups {
		return false, 0, false, nil
	}
	found, _, _, err = runGroupFloor(b, groups, lo, epoch, math.MaxInt64, r)
	return found, above, hasAbove, err
}

func runGroupStart(b []byte, g int) int64 {
	return int64(binary.LittleEndian.Uint64(b[runGroupHead*g:]))
}

// runGroupFloor is runFloor within group g; when it finds no floor, above is the group's last
// row's key start.
func runGroupFloor(b []byte, groups, g int, epoch int32, offset int64, r *denseRow) (found bool, above int64, hasAbove bool, err error) {
	rows := b[runGroupHead*groups:]
	from := binary.LittleEndian.Uint32(b[runGroupHead*g+8:])
	to := uint32(len(rows))
	if g+1 < groups {
		to = binary.LittleEndian.Uint32(b[runGroupHead*(g+1)+8:])
	}
	if from > to || to > uint32(len(rows)) {
		return false, 0, false, errRunRow
	}
	rd := runReader{b: rows[from:to], epoch: epoch, first: true}
	prev, cur := denseRow{key: runGroupStart(b, g)}, denseRow{epochs: r.epochs[:0]}
	for len(rd.b) > 0 {
		rd.next(&prev, &cur)
		if rd.err != nil {
			return false, 0, false, rd.err
		}
		if cur.key <= offset {
			*r = cur
			return true, above, hasAbove, nil
		}
		above, hasAbove = cur.key, true
		prev, cur = cur, prev
	}
	return false, above, hasAbove, nil
}
