package proto

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// Encode returns r in Kafka's byte format, exactly as Kafka's RemoteLogMetadataSerde writes it.
// It fails with ErrInvalidRecord for a record Kafka could not hold.
func Encode(r Record) ([]byte, error) {
	return AppendEncode(make([]byte, 0, sizeHint(r)), r)
}

// AppendEncode appends the encoding of r to dst. On error dst is returned unchanged.
func AppendEncode(dst []byte, r Record) ([]byte, error) {
	if err := validate(r); err != nil {
		return dst, err
	}
	e := encoder{buf: dst}
	e.uvarint(frameVersion)
	e.uvarint(uint32(r.Key()))
	e.uvarint(recordVersion)
	switch r := r.(type) {
	case *SegmentMetadata:
		e.segmentID(r.SegmentID, r.Unknown)
		e.int64(r.StartOffset)
		e.int64(r.EndOffset)
		e.int32(r.BrokerID)
		e.int64(r.MaxTimestampMs)
		e.int64(r.EventTimestampMs)
		e.leaderEpochs(r.LeaderEpochs, r.Unknown)
		e.int32(r.SegmentSizeInBytes)
		e.nullableBytes(r.CustomMetadata)
		e.int8(int8(r.State))
		e.taggedFields(recordTags(r.Unknown), r.TxnIndexEmpty)
	case *SegmentMetadataUpdate:
		e.segmentID(r.SegmentID, r.Unknown)
		e.int32(r.BrokerID)
		e.int64(r.EventTimestampMs)
		e.nullableBytes(r.CustomMetadata)
		e.int8(int8(r.State))
		e.taggedFields(recordTags(r.Unknown), false)
	case *PartitionDeleteMetadata:
		e.topicIDPartition(r.TopicIDPartition, r.Unknown)
		e.int32(r.BrokerID)
		e.int64(r.EventTimestampMs)
		e.int8(int8(r.State))
		e.taggedFields(recordTags(r.Unknown), false)
	case *SegmentMetadataSnapshot:
		e.uuid(r.SegmentUUID)
		e.int64(r.StartOffset)
		e.int64(r.EndOffset)
		e.int32(r.BrokerID)
		e.int64(r.MaxTimestampMs)
		e.int64(r.EventTimestampMs)
		e.leaderEpochs(r.LeaderEpochs, r.Unknown)
		e.int32(r.SegmentSizeInBytes)
		e.nullableBytes(r.CustomMetadata)
		e.int8(int8(r.State))
		e.taggedFields(recordTags(r.Unknown), r.TxnIndexEmpty)
	}
	return e.buf, nil
}

func sizeHint(r Record) int {
	n := 64
	switch r := r.(type) {
	case *SegmentMetadata:
		n += len(r.SegmentID.Topic) + 13*len(r.LeaderEpochs) + len(r.CustomMetadata) + 70
	case *SegmentMetadataUpdate:
		n += len(r.SegmentID.Topic) + len(r.CustomMetadata)
	case *PartitionDeleteMetadata:
		n += len(r.TopicIDPartition.Topic)
	case *SegmentMetadataSnapshot:
		n += 13*len(r.LeaderEpochs) + len(r.CustomMetadata) + 70
	}
	return n
}

func invalid(r Record, format string, args ...any) error {
	return fmt.Errorf("proto: encoding %s: %w: %s", r.Key(), ErrInvalidRecord, fmt.Sprintf(format, args...))
}

func validate(r Record) error {
	var (
		topic  string
		epochs []EpochEntry
		custom []byte
		unk    *UnknownTags
		txnTag bool
	)
	switch v := r.(type) {
	case *SegmentMetadata:
		if !v.State.Valid() {
			return invalid(r, "segment state %d", int8(v.State))
		}
		topic, epochs, custom, unk, txnTag = v.SegmentID.Topic, v.LeaderEpochs, v.CustomMetadata, v.Unknown, true
	case *SegmentMetadataUpdate:
		if !v.State.Valid() {
			return invalid(r, "segment state %d", int8(v.State))
		}
		topic, custom, unk = v.SegmentID.Topic, v.CustomMetadata, v.Unknown
	case *PartitionDeleteMetadata:
		if !v.State.Valid() {
			return invalid(r, "partition-delete state %d", int8(v.State))
		}
		topic, unk = v.TopicIDPartition.Topic, v.Unknown
	case *SegmentMetadataSnapshot:
		if !v.State.Valid() {
			return invalid(r, "segment state %d", int8(v.State))
		}
		epochs, custom, unk, txnTag = v.LeaderEpochs, v.CustomMetadata, v.Unknown, true
	case nil:
		return fmt.Errorf("proto: encoding: %w: nil record", ErrInvalidRecord)
	}
	if len(topic) > maxStringLen {
		return invalid(r, "topic name of %d bytes exceeds %d", len(topic), maxStringLen)
	}
	if len(custom) > math.MaxInt32-1 {
		return invalid(r, "custom metadata of %d bytes is too long", len(custom))
	}
	for i := 1; i < len(epochs); i++ {
		if epochs[i].Epoch <= epochs[i-1].Epoch {
			return invalid(r, "leader epochs not in ascending order: epoch %d follows %d", epochs[i].Epoch, epochs[i-1].Epoch)
		}
	}
	if unk != nil {
		if len(unk.Epochs) > len(epochs) {
			return invalid(r, "tagged fields for %d leader epochs, but the record has %d", len(unk.Epochs), len(epochs))
		}
		if txnTag && slices.ContainsFunc(unk.Record, func(t TaggedField) bool { return t.Tag == tagTxnIndexEmpty }) {
			return invalid(r, "unknown tagged field uses tag 0, which is TxnIndexEmpty")
		}
	}
	return nil
}

func recordTags(u *UnknownTags) []TaggedField {
	if u == nil {
		return nil
	}
	return u.Record
}

type encoder struct{ buf []byte }

func (e *encoder) uvarint(v uint32) { e.buf = binary.AppendUvarint(e.buf, uint64(v)) }
func (e *encoder) int8(v int8)      { e.buf = append(e.buf, byte(v)) }
func (e *encoder) int32(v int32)    { e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(v)) }
func (e *encoder) int64(v int64)    { e.buf = binary.BigEndian.AppendUint64(e.buf, uint64(v)) }
func (e *encoder) uuid(u UUID)      { e.buf = append(e.buf, u[:]...) }

func (e *encoder) string(s string) {
	e.uvarint(uint32(len(s) + 1))
	e.buf = append(e.buf, s...)
}

func (e *encoder) nullableBytes(b []byte) {
	if b == nil {
		e.uvarint(0)
		return
	}
	e.uvarint(uint32(len(b) + 1))
	e.buf = append(e.buf, b...)
}

// taggedFields writes a tagged-field section: TxnIndexEmpty (tag 0) only when true, as Kafka
// writes a tagged field only when it differs from its default, then the unknown fields in the
// order they were read, so that a record passes through byte for byte. (Tag 0 is the smallest
// tag, so a record whose unknown tags are ascending, as every writer produces them, stays
// ascending.)
func (e *encoder) taggedFields(unknown []TaggedField, txnIndexEmpty bool) {
	n := len(unknown)
	if txnIndexEmpty {
		n++
	}
	e.uvarint(uint32(n))
	if txnIndexEmpty {
		// Tag 0 is the smallest possible tag, so it always comes first.
		e.uvarint(tagTxnIndexEmpty)
		e.uvarint(1)
		e.buf = append(e.buf, 1)
	}
	for _, t := range unknown {
		e.uvarint(t.Tag)
		e.uvarint(uint32(len(t.Data)))
		e.buf = append(e.buf, t.Data...)
	}
}

func (e *encoder) topicIDPartition(tp TopicIDPartition, u *UnknownTags) {
	e.string(tp.Topic)
	e.uuid(tp.TopicID)
	e.int32(tp.Partition)
	var t []TaggedField
	if u != nil {
		t = u.TopicIDPartition
	}
	e.taggedFields(t, false)
}

func (e *encoder) segmentID(id SegmentID, u *UnknownTags) {
	e.topicIDPartition(id.TopicIDPartition, u)
	e.uuid(id.ID)
	var t []TaggedField
	if u != nil {
		t = u.SegmentID
	}
	e.taggedFields(t, false)
}

func (e *encoder) leaderEpochs(epochs []EpochEntry, u *UnknownTags) {
	e.uvarint(uint32(len(epochs) + 1))
	for i, ep := range epochs {
		e.int32(ep.Epoch)
		e.int64(ep.StartOffset)
		var t []TaggedField
		if u != nil && i < len(u.Epochs) {
			t = u.Epochs[i]
		}
		e.taggedFields(t, false)
	}
}
