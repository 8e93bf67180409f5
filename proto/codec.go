package proto

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// frameVersion is the only frame version Kafka's metadata serde writes and accepts.
const frameVersion = 1

// recordVersion is the only version of each record type (validVersions "0").
const recordVersion = 0

// maxStringLen is Kafka's limit on a string field: its length must fit in an int16.
const maxStringLen = math.MaxInt16

// tagTxnIndexEmpty is the tag of TxnIndexEmpty in records 0 and 3.
const tagTxnIndexEmpty = 0

// Decode reads one value of __remote_log_metadata. It returns *SegmentMetadata,
// *SegmentMetadataUpdate, *PartitionDeleteMetadata or *SegmentMetadataSnapshot, or a *DecodeError.
// It never panics, never reads past b, and does not retain b: every byte slice in the result is
// a copy.
func Decode(b []byte) (Record, error) { return decode(b, nil) }

// Decoder decodes as Decode does, and remembers the topic names it has returned (up to
// decoderNames of them), so that the records of one topic share one string instead of each
// holding a copy: a reader of the whole topic meets a few names millions of times. The zero
// Decoder is ready; it is not safe for concurrent use.
type Decoder struct {
	names map[string]string
}

// decoderNames bounds what a Decoder remembers.
const decoderNames = 4096

// Decode is Decode, with d's names.
func (d *Decoder) Decode(b []byte) (Record, error) {
	if d.names == nil {
		d.names = make(map[string]string)
	}
	return decode(b, d.names)
}

func decode(b []byte, names map[string]string) (Record, error) {
	d := decoder{buf: b, record: "frame", names: names}
	fv := d.uvarint("FrameVersion")
	if d.err == nil && fv != frameVersion {
		d.failAt(0, "FrameVersion", ErrUnknownFrameVersion, fmt.Sprintf("want %d, found %d", frameVersion, fv))
	}
	keyAt := d.pos
	key := d.uvarint("ApiKey")
	if d.err == nil && key > math.MaxInt16 {
		d.failAt(keyAt, "ApiKey", ErrUnknownAPIKey, fmt.Sprintf("%d does not fit in an int16", key))
	}
	verAt := d.pos
	ver := d.uvarint("Version")
	if d.err != nil {
		return nil, d.err
	}
	k := APIKey(key)
	if k < KeySegmentMetadata || k > KeySegmentMetadataSnapshot {
		d.failAt(keyAt, "ApiKey", ErrUnknownAPIKey, fmt.Sprintf("%d is not one of 0..3", key))
		return nil, d.err
	}
	d.record = k.String()
	if ver != recordVersion {
		d.failAt(verAt, "Version", ErrUnknownVersion, fmt.Sprintf("want %d, found %d", recordVersion, ver))
		return nil, d.err
	}
	var r Record
	switch k {
	case KeySegmentMetadata:
		r = d.segmentMetadata()
	case KeySegmentMetadataUpdate:
		r = d.segmentMetadataUpdate()
	case KeyPartitionDeleteMetadata:
		r = d.partitionDeleteMetadata()
	case KeySegmentMetadataSnapshot:
		r = d.segmentMetadataSnapshot()
	}
	if d.err == nil && d.pos != len(d.buf) {
		d.failAt(d.pos, "(end)", ErrTrailingBytes, fmt.Sprintf("%d bytes left over", len(d.buf)-d.pos))
	}
	if d.err != nil {
		return nil, d.err
	}
	return r, nil
}

// decoder reads Kafka's flexible-version encoding. The first failure is kept in err; every read
// after it returns a zero value, so the decoding functions read straight through and check once.
type decoder struct {
	buf    []byte
	pos    int
	record string
	err    *DecodeError
	names  map[string]string // topic names met before (Decoder); nil: none kept
}

func (d *decoder) failAt(at int, field string, cause error, detail string) {
	if d.err == nil {
		d.err = &DecodeError{Record: d.record, Field: field, Offset: at, Err: cause, Detail: detail}
	}
}

func (d *decoder) need(field string, n int) bool {
	if d.err != nil {
		return false
	}
	if len(d.buf)-d.pos < n {
		d.failAt(d.pos, field, ErrTruncated, fmt.Sprintf("need %d bytes, %d left", n, len(d.buf)-d.pos))
		return false
	}
	return true
}

// uvarint reads an unsigned varint of at most 32 bits, as Kafka's readUnsignedVarint does: at
// most five bytes, the fifth carrying no more than four bits.
func (d *decoder) uvarint(field string) uint32 {
	if d.err != nil {
		return 0
	}
	start := d.pos
	var v uint32
	for i := 0; i < 5; i++ {
		if d.pos >= len(d.buf) {
			d.failAt(start, field, ErrTruncated, "varint runs past the end of the input")
			return 0
		}
		c := d.buf[d.pos]
		d.pos++
		if i == 4 && c > 0x0f {
			d.failAt(start, field, ErrBadVarint, "varint does not fit in 32 bits")
			return 0
		}
		v |= uint32(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v
		}
	}
	d.failAt(start, field, ErrBadVarint, "varint longer than 5 bytes")
	return 0
}

func (d *decoder) int8(field string) int8 {
	if !d.need(field, 1) {
		return 0
	}
	v := int8(d.buf[d.pos])
	d.pos++
	return v
}

func (d *decoder) int32(field string) int32 {
	if !d.need(field, 4) {
		return 0
	}
	v := int32(binary.BigEndian.Uint32(d.buf[d.pos:]))
	d.pos += 4
	return v
}

func (d *decoder) int64(field string) int64 {
	if !d.need(field, 8) {
		return 0
	}
	v := int64(binary.BigEndian.Uint64(d.buf[d.pos:]))
	d.pos += 8
	return v
}

func (d *decoder) uuid(field string) (u UUID) {
	if !d.need(field, 16) {
		return u
	}
	copy(u[:], d.buf[d.pos:])
	d.pos += 16
	return u
}

// length reads a compact length prefix (uvarint of length+1) and checks the length against
// the bytes left. It returns -1 for null.
func (d *decoder) length(field string) int {
	at := d.pos
	n := d.uvarint(field)
	if d.err != nil {
		return 0
	}
	if n == 0 {
		return -1
	}
	l := int(n - 1)
	if l > len(d.buf)-d.pos {
		d.failAt(at, field, ErrLengthOverflow, fmt.Sprintf("length %d but only %d bytes left", l, len(d.buf)-d.pos))
		return 0
	}
	return l
}

func (d *decoder) string(field string) string {
	at := d.pos
	l := d.length(field)
	if d.err != nil {
		return ""
	}
	if l < 0 {
		d.failAt(at, field, ErrInvalidField, "null in a non-nullable string")
		return ""
	}
	if l > maxStringLen {
		d.failAt(at, field, ErrLengthOverflow, fmt.Sprintf("string length %d exceeds %d", l, maxStringLen))
		return ""
	}
	b := d.buf[d.pos : d.pos+l]
	d.pos += l
	if d.names == nil {
		return string(b)
	}
	if s, ok := d.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(d.names) < decoderNames {
		d.names[s] = s
	}
	return s
}

// nullableBytes keeps Kafka's distinction: nil for null, a non-nil empty slice for empty.
func (d *decoder) nullableBytes(field string) []byte {
	l := d.length(field)
	if d.err != nil || l < 0 {
		return nil
	}
	b := make([]byte, l)
	copy(b, d.buf[d.pos:])
	d.pos += l
	return b
}

// taggedFields reads a struct's tagged-field section. When txnIndexEmpty is not nil the struct
// knows tag 0 (TxnIndexEmpty) and it is decoded into it; every other tag is kept raw.
func (d *decoder) taggedFields(field string, txnIndexEmpty *bool) []TaggedField {
	n := d.uvarint(field)
	var unknown []TaggedField
	for i := uint32(0); i < n && d.err == nil; i++ {
		tagAt := d.pos
		tag := d.uvarint(field)
		sizeAt := d.pos
		size := int(d.uvarint(field))
		if d.err != nil {
			break
		}
		if size > len(d.buf)-d.pos {
			d.failAt(sizeAt, field, ErrLengthOverflow, fmt.Sprintf("tag %d has size %d but only %d bytes are left", tag, size, len(d.buf)-d.pos))
			break
		}
		if txnIndexEmpty != nil && tag == tagTxnIndexEmpty {
			if size != 1 {
				d.failAt(tagAt, "TxnIndexEmpty", ErrInvalidField, fmt.Sprintf("tag 0 has size %d, want 1", size))
				break
			}
			*txnIndexEmpty = d.buf[d.pos] != 0
			d.pos++
			continue
		}
		unknown = append(unknown, TaggedField{Tag: tag, Data: slices.Clone(d.buf[d.pos : d.pos+size])})
		d.pos += size
	}
	return unknown
}

// emptyTaggedFields reads the tagged section of a nested struct that defines no tags.
func (d *decoder) emptyTaggedFields(field string) []TaggedField { return d.taggedFields(field, nil) }

// tpFields names the fields of a TopicIdPartition entry where it sits in a record; constants,
// so that naming them costs nothing on the success path.
type tpFields struct{ name, id, partition, tagged string }

var (
	segmentTPFields = tpFields{"RemoteLogSegmentId.TopicIdPartition.Name", "RemoteLogSegmentId.TopicIdPartition.Id",
		"RemoteLogSegmentId.TopicIdPartition.Partition", "RemoteLogSegmentId.TopicIdPartition._tagged"}
	deleteTPFields = tpFields{"TopicIdPartition.Name", "TopicIdPartition.Id", "TopicIdPartition.Partition", "TopicIdPartition._tagged"}
)

func (d *decoder) topicIDPartition(f *tpFields, unk **UnknownTags) TopicIDPartition {
	var tp TopicIDPartition
	tp.Topic = d.string(f.name)
	tp.TopicID = d.uuid(f.id)
	tp.Partition = d.int32(f.partition)
	if t := d.emptyTaggedFields(f.tagged); t != nil {
		unknownOf(unk).TopicIDPartition = t
	}
	return tp
}

func (d *decoder) segmentID(unk **UnknownTags) SegmentID {
	var id SegmentID
	id.TopicIDPartition = d.topicIDPartition(&segmentTPFields, unk)
	id.ID = d.uuid("RemoteLogSegmentId.Id")
	if t := d.emptyTaggedFields("RemoteLogSegmentId._tagged"); t != nil {
		unknownOf(unk).SegmentID = t
	}
	return id
}

func unknownOf(p **UnknownTags) *UnknownTags {
	if *p == nil {
		*p = &UnknownTags{}
	}
	return *p
}

func (d *decoder) segmentState(field string) SegmentState {
	at := d.pos
	s := SegmentState(d.int8(field))
	if d.err == nil && !s.Valid() {
		d.failAt(at, field, ErrInvalidState, fmt.Sprintf("segment state id %d is not one of 0..3", int8(s)))
	}
	return s
}

func (d *decoder) leaderEpochs(unk **UnknownTags) []EpochEntry {
	at := d.pos
	n := d.length("SegmentLeaderEpochs")
	if d.err != nil {
		return nil
	}
	if n < 0 {
		d.failAt(at, "SegmentLeaderEpochs", ErrInvalidField, "null in a non-nullable array")
		return nil
	}
	// Each entry takes at least 13 bytes; a count the input cannot hold is rejected before
	// allocating for it.
	if n > (len(d.buf)-d.pos)/13 {
		d.failAt(at, "SegmentLeaderEpochs", ErrLengthOverflow, fmt.Sprintf("%d entries cannot fit in %d bytes", n, len(d.buf)-d.pos))
		return nil
	}
	epochs := make([]EpochEntry, n)
	sorted := true
	for i := range epochs {
		epochs[i].Epoch = d.int32("SegmentLeaderEpochs.LeaderEpoch")
		epochs[i].StartOffset = d.int64("SegmentLeaderEpochs.Offset")
		if t := d.emptyTaggedFields("SegmentLeaderEpochs._tagged"); t != nil {
			u := unknownOf(unk)
			for len(u.Epochs) < i {
				u.Epochs = append(u.Epochs, nil)
			}
			u.Epochs = append(u.Epochs, t)
		}
		if i > 0 && epochs[i].Epoch <= epochs[i-1].Epoch {
			sorted = false
		}
	}
	if !sorted && d.err == nil {
		var from []int
		epochs, from = normalizeEpochsIndexed(epochs)
		if u := *unk; u != nil && u.Epochs != nil {
			tags := make([][]TaggedField, len(from))
			for k, i := range from {
				if i < len(u.Epochs) {
					tags[k] = u.Epochs[i]
				}
			}
			for len(tags) > 0 && tags[len(tags)-1] == nil {
				tags = tags[:len(tags)-1]
			}
			u.Epochs = tags
		}
	}
	return epochs
}

// normalizeEpochs orders epochs as Kafka's TreeMap holds them: ascending, and where an epoch
// repeats, the later entry wins.
func normalizeEpochs(in []EpochEntry) []EpochEntry {
	out, _ := normalizeEpochsIndexed(in)
	return out
}

// normalizeEpochsIndexed is normalizeEpochs that also says, for each entry of the result, the
// index in the input it came from, so that per-entry tagged fields can follow their entries.
func normalizeEpochsIndexed(in []EpochEntry) ([]EpochEntry, []int) {
	idx := make([]int, len(in))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(in[a].Epoch, in[b].Epoch) })
	w := 0
	for _, i := range idx {
		if w > 0 && in[idx[w-1]].Epoch == in[i].Epoch {
			idx[w-1] = i
			continue
		}
		idx[w] = i
		w++
	}
	idx = idx[:w]
	out := make([]EpochEntry, w)
	for k, i := range idx {
		out[k] = in[i]
	}
	return out, idx
}

func (d *decoder) segmentMetadata() *SegmentMetadata {
	r := &SegmentMetadata{}
	r.SegmentID = d.segmentID(&r.Unknown)
	r.StartOffset = d.int64("StartOffset")
	r.EndOffset = d.int64("EndOffset")
	r.BrokerID = d.int32("BrokerId")
	r.MaxTimestampMs = d.int64("MaxTimestampMs")
	r.EventTimestampMs = d.int64("EventTimestampMs")
	r.LeaderEpochs = d.leaderEpochs(&r.Unknown)
	r.SegmentSizeInBytes = d.int32("SegmentSizeInBytes")
	r.CustomMetadata = d.nullableBytes("CustomMetadata")
	r.State = d.segmentState("RemoteLogSegmentState")
	if t := d.taggedFields("_tagged", &r.TxnIndexEmpty); t != nil {
		unknownOf(&r.Unknown).Record = t
	}
	return r
}

func (d *decoder) segmentMetadataUpdate() *SegmentMetadataUpdate {
	r := &SegmentMetadataUpdate{}
	r.SegmentID = d.segmentID(&r.Unknown)
	r.BrokerID = d.int32("BrokerId")
	r.EventTimestampMs = d.int64("EventTimestampMs")
	r.CustomMetadata = d.nullableBytes("CustomMetadata")
	r.State = d.segmentState("RemoteLogSegmentState")
	if t := d.taggedFields("_tagged", nil); t != nil {
		unknownOf(&r.Unknown).Record = t
	}
	return r
}

func (d *decoder) partitionDeleteMetadata() *PartitionDeleteMetadata {
	r := &PartitionDeleteMetadata{}
	r.TopicIDPartition = d.topicIDPartition(&deleteTPFields, &r.Unknown)
	r.BrokerID = d.int32("BrokerId")
	r.EventTimestampMs = d.int64("EventTimestampMs")
	at := d.pos
	r.State = PartitionDeleteState(d.int8("RemotePartitionDeleteState"))
	if d.err == nil && !r.State.Valid() {
		d.failAt(at, "RemotePartitionDeleteState", ErrInvalidState, fmt.Sprintf("partition-delete state id %d is not one of 0..2", int8(r.State)))
	}
	if t := d.taggedFields("_tagged", nil); t != nil {
		unknownOf(&r.Unknown).Record = t
	}
	return r
}

func (d *decoder) segmentMetadataSnapshot() *SegmentMetadataSnapshot {
	r := &SegmentMetadataSnapshot{}
	r.SegmentUUID = d.uuid("SegmentId")
	r.StartOffset = d.int64("StartOffset")
	r.EndOffset = d.int64("EndOffset")
	r.BrokerID = d.int32("BrokerId")
	r.MaxTimestampMs = d.int64("MaxTimestampMs")
	r.EventTimestampMs = d.int64("EventTimestampMs")
	r.LeaderEpochs = d.leaderEpochs(&r.Unknown)
	r.SegmentSizeInBytes = d.int32("SegmentSizeInBytes")
	r.CustomMetadata = d.nullableBytes("CustomMetadata")
	r.State = d.segmentState("RemoteLogSegmentState")
	if t := d.taggedFields("_tagged", &r.TxnIndexEmpty); t != nil {
		unknownOf(&r.Unknown).Record = t
	}
	return r
}
