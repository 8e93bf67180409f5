package cache

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/stratalog/strata/proto"
)

// Key layout. Integers are big-endian with the sign bit flipped, so that byte order is numeric
// order and a bounded iterator walks epochs and offsets in order.
//
//	00                                    store format
//	01 <mp:4>                             next offset of metadata partition mp
//	02 <mp:4> <offset:8>                  a record the operator chose to skip
//	03                                    identity: the cluster and metadata topic it was built from
//	04 <mp:4> <offset:8>                  a record Apply dropped, and why
//	05 <topic id:16> <partition:4>        a deleted user partition: its DELETE_PARTITION_FINISHED
//	                                      was applied, every later record of it is stale
//	10 <topic id:16> <partition:4> 00     user partition: name, metadata partition, delete state, counters
//	10 <tp> 01 <segment id:16>            segment: its current view (add record merged with its latest update)
//	10 <tp> 02 <epoch:4>                  leader epoch: highest offset, greatest referenced start offset
//	10 <tp> 03 <epoch:4> <^start:8>       referenced: epoch start offset -> a COPY_SEGMENT_FINISHED
//	                                      segment, with a copy of its row
//	10 <tp> 04 <epoch:4> <segment id:16>  unreferenced segment of the epoch
//
// Everything of a user partition shares its 21-byte prefix: each query is one iterator bounded
// to that prefix (a consistent view without a snapshot), and DELETE_PARTITION_FINISHED is one
// range deletion.
//
// Referenced rows store the start offset inverted (^start), so that within an epoch they sort
// by start offset descending, and the store's comparer (see comparer) splits them after the
// epoch, the way an MVCC store splits a key from its timestamp. SegmentFor is then one
// SeekPrefixGE to (epoch, ^offset), which lands on the greatest start offset at or below
// offset: Pebble's bloom filters, built on that split prefix, skip every table holding nothing
// of the epoch, so a lookup reads one data block instead of one on every level, as a SeekLT
// would. The copy of the segment in the row makes it the only read.
const (
	tagFormat    byte = 0x00
	tagOffset    byte = 0x01
	tagSkipped   byte = 0x02
	tagIdentity  byte = 0x03
	tagDropped   byte = 0x04
	tagDeleted   byte = 0x05
	tagPartition byte = 0x10
)

const (
	kindPartition byte = 0x00
	kindSegment   byte = 0x01
	kindEpoch     byte = 0x02
	kindRef       byte = 0x03
	kindUnref     byte = 0x04
)

const tpPrefixLen = 1 + 16 + 4

// tpPrefix is the key prefix of one user partition.
type tpPrefix [tpPrefixLen]byte

func prefixOf(tp proto.TopicIDPartition) tpPrefix {
	var p tpPrefix
	p[0] = tagPartition
	copy(p[1:17], tp.TopicID[:])
	binary.BigEndian.PutUint32(p[17:], flip32(tp.Partition))
	return p
}

func (p tpPrefix) topicID() proto.UUID {
	var u proto.UUID
	copy(u[:], p[1:17])
	return u
}

func (p tpPrefix) partition() int32 { return unflip32(binary.BigEndian.Uint32(p[17:])) }

func flip32(v int32) uint32   { return uint32(v) ^ 1<<31 }
func unflip32(v uint32) int32 { return int32(v ^ 1<<31) }
func flip64(v int64) uint64   { return uint64(v) ^ 1<<63 }
func unflip64(v uint64) int64 { return int64(v ^ 1<<63) }

func (p *tpPrefix) with(kind byte, extra int) []byte {
	return p.appendWith(make([]byte, 0, tpPrefixLen+1+extra), kind)
}

// appendWith and the other append methods append a key to dst, so that the writer can build
// every key of a commit in one buffer (a batch copies what it is given).
func (p *tpPrefix) appendWith(dst []byte, kind byte) []byte {
	return append(append(dst, p[:]...), kind)
}

func (p *tpPrefix) partitionKey() []byte { return p.with(kindPartition, 0) }

// upper returns the smallest key above every key of the partition.
func (p *tpPrefix) upper() []byte { return successor(p[:]) }

// kindBounds returns the bounds of every key of one kind.
func (p *tpPrefix) kindBounds(kind byte) (lo, hi []byte) {
	return p.with(kind, 0), p.with(kind+1, 0)
}

func (p *tpPrefix) segmentKey(id proto.UUID) []byte {
	return p.appendSegmentKey(make([]byte, 0, tpPrefixLen+1+16), id)
}

func (p *tpPrefix) appendSegmentKey(dst []byte, id proto.UUID) []byte {
	return append(p.appendWith(dst, kindSegment), id[:]...)
}

func (p *tpPrefix) epochKey(epoch int32) []byte {
	return p.appendEpochKey(make([]byte, 0, tpPrefixLen+1+4), epoch)
}

func (p *tpPrefix) appendEpochKey(dst []byte, epoch int32) []byte {
	return binary.BigEndian.AppendUint32(p.appendWith(dst, kindEpoch), flip32(epoch))
}

func (p *tpPrefix) refKey(epoch int32, start int64) []byte {
	return p.appendRefKey(make([]byte, 0, refKeyLen), epoch, start)
}

func (p *tpPrefix) appendRefKey(dst []byte, epoch int32, start int64) []byte {
	k := binary.BigEndian.AppendUint32(p.appendWith(dst, kindRef), flip32(epoch))
	return binary.BigEndian.AppendUint64(k, ^flip64(start))
}

// Referenced rows: the key's length, and the length of the prefix the comparer splits off.
const (
	refKeyLen    = tpPrefixLen + 1 + 4 + 8
	refPrefixLen = tpPrefixLen + 1 + 4
)

// refEpoch returns the prefix shared by every referenced row of one epoch.
func (p *tpPrefix) refEpoch(epoch int32) []byte {
	return binary.BigEndian.AppendUint32(p.with(kindRef, 4), flip32(epoch))
}

func (p *tpPrefix) unrefKey(epoch int32, id proto.UUID) []byte {
	return p.appendUnrefKey(make([]byte, 0, tpPrefixLen+1+20), epoch, id)
}

func (p *tpPrefix) appendUnrefKey(dst []byte, epoch int32, id proto.UUID) []byte {
	k := binary.BigEndian.AppendUint32(p.appendWith(dst, kindUnref), flip32(epoch))
	return append(k, id[:]...)
}

func (p *tpPrefix) unrefEpoch(epoch int32) []byte {
	return binary.BigEndian.AppendUint32(p.with(kindUnref, 4), flip32(epoch))
}

func offsetKey(mp int32) []byte {
	return binary.BigEndian.AppendUint32([]byte{tagOffset}, flip32(mp))
}

func skippedKey(mp int32, offset int64) []byte {
	k := binary.BigEndian.AppendUint32(make([]byte, 1, 13), flip32(mp))
	k[0] = tagSkipped
	return binary.BigEndian.AppendUint64(k, flip64(offset))
}

func droppedKey(mp int32, offset int64) []byte {
	k := binary.BigEndian.AppendUint32(make([]byte, 1, 13), flip32(mp))
	k[0] = tagDropped
	return binary.BigEndian.AppendUint64(k, flip64(offset))
}

// droppedBounds are the bounds of metadata partition mp's dropped rows.
func droppedBounds(mp int32) (lo, hi []byte) {
	lo = binary.BigEndian.AppendUint32([]byte{tagDropped}, flip32(mp))
	return lo, successor(lo)
}

// deletedKey is the tombstone of the user partition of prefix p.
func (p *tpPrefix) deletedKey() []byte {
	k := make([]byte, tpPrefixLen)
	copy(k, p[:])
	k[0] = tagDeleted
	return k
}

var formatKey0 = []byte{tagFormat}

// successor returns the smallest key greater than every key with prefix b, or nil (no upper
// bound) when b is all 0xff.
func successor(b []byte) []byte {
	s := append([]byte(nil), b...)
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] != 0xff {
			s[i]++
			return s[:i+1]
		}
	}
	return nil
}

// parsedKey is a key taken apart; which fields are set depends on tag and kind.
type parsedKey struct {
	tag    byte
	kind   byte
	prefix tpPrefix
	mp     int32
	offset int64 // skipped offset, or the start offset of a referenced row
	epoch  int32
	id     proto.UUID
}

// parseKey takes k apart, or says why it is not a key of this store.
func parseKey(k []byte) (parsedKey, error) {
	var pk parsedKey
	if len(k) == 0 {
		return pk, fmt.Errorf("empty key")
	}
	pk.tag = k[0]
	switch pk.tag {
	case tagFormat:
		if len(k) != 1 {
			return pk, fmt.Errorf("format key of %d bytes, want 1", len(k))
		}
	case tagIdentity:
		if len(k) != 1 {
			return pk, fmt.Errorf("identity key of %d bytes, want 1", len(k))
		}
	case tagOffset:
		if len(k) != 5 {
			return pk, fmt.Errorf("offset key of %d bytes, want 5", len(k))
		}
		pk.mp = unflip32(binary.BigEndian.Uint32(k[1:]))
	case tagSkipped, tagDropped:
		if len(k) != 13 {
			return pk, fmt.Errorf("skipped or dropped key of %d bytes, want 13", len(k))
		}
		pk.mp = unflip32(binary.BigEndian.Uint32(k[1:]))
		pk.offset = unflip64(binary.BigEndian.Uint64(k[5:]))
	case tagDeleted:
		if len(k) != tpPrefixLen {
			return pk, fmt.Errorf("deleted-partition key of %d bytes, want %d", len(k), tpPrefixLen)
		}
		copy(pk.prefix[:], k)
		pk.prefix[0] = tagPartition
	case tagPartition:
		if len(k) < tpPrefixLen+1 {
			return pk, fmt.Errorf("partition key of %d bytes, want at least %d", len(k), tpPrefixLen+1)
		}
		copy(pk.prefix[:], k)
		pk.kind = k[tpPrefixLen]
		rest := k[tpPrefixLen+1:]
		want := 0
		switch pk.kind {
		case kindPartition:
		case kindSegment:
			want = 16
		case kindEpoch:
			want = 4
		case kindRef:
			want = 12
		case kindUnref:
			want = 20
		default:
			return pk, fmt.Errorf("unknown row kind %#02x", pk.kind)
		}
		if len(rest) != want {
			return pk, fmt.Errorf("row kind %#02x with %d bytes after the prefix, want %d", pk.kind, len(rest), want)
		}
		switch pk.kind {
		case kindSegment:
			copy(pk.id[:], rest)
		case kindEpoch:
			pk.epoch = unflip32(binary.BigEndian.Uint32(rest))
		case kindRef:
			pk.epoch = unflip32(binary.BigEndian.Uint32(rest))
			pk.offset = unflip64(^binary.BigEndian.Uint64(rest[4:]))
		case kindUnref:
			pk.epoch = unflip32(binary.BigEndian.Uint32(rest))
			copy(pk.id[:], rest[4:])
		}
	default:
		return pk, fmt.Errorf("unknown key tag %#02x", pk.tag)
	}
	return pk, nil
}

// String prints a user partition by its key, without its name (which lives in the rows).
func (p tpPrefix) String() string {
	return p.topicID().String() + "-" + strconv.FormatInt(int64(p.partition()), 10)
}

// formatKey prints a key as Dump does; a key that does not parse prints as hex.
func formatKey(k []byte) string {
	pk, err := parseKey(k)
	if err != nil {
		return "key(" + hex.EncodeToString(k) + ")"
	}
	switch pk.tag {
	case tagFormat:
		return "format"
	case tagIdentity:
		return "identity"
	case tagOffset:
		return "offset mp=" + strconv.FormatInt(int64(pk.mp), 10)
	case tagSkipped:
		return fmt.Sprintf("skipped mp=%d offset=%d", pk.mp, pk.offset)
	case tagDropped:
		return fmt.Sprintf("dropped mp=%d offset=%d", pk.mp, pk.offset)
	case tagDeleted:
		return "deleted " + pk.prefix.String()
	}
	tp := pk.prefix.String()
	switch pk.kind {
	case kindPartition:
		return "partition " + tp
	case kindSegment:
		return "segment " + tp + " " + pk.id.String()
	case kindEpoch:
		return fmt.Sprintf("epoch %s %d", tp, pk.epoch)
	case kindRef:
		return fmt.Sprintf("referenced %s epoch=%d start=%d", tp, pk.epoch, pk.offset)
	default:
		return fmt.Sprintf("unreferenced %s epoch=%d %s", tp, pk.epoch, pk.id)
	}
}
