package s3

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/stratalog/strata/rsm"
)

// The index bundle: one object holding all of a segment's indexes, so that a segment costs two
// PUTs (log and bundle) instead of six. Layout, integers big-endian:
//
//	offset  size  field
//	0       4     magic "SIDX"
//	4       2     format version, 1
//	6       2     entry count n (5 in version 1)
//	8       24*n  entries: code u8, flags u8 (bit 0: present), reserved u16 (0),
//	              CRC-32C of the index u32, offset u64, length u64
//	8+24n   4     CRC-32C of bytes [0, 8+24n)
//	12+24n  ...   the indexes' bytes, at the offsets the entries give
//
// The header has a fixed size for a given n and comes first, so a reader fetches it with one
// ranged GET, usually together with the indexes it wants (see indexWindow). Each index carries
// its own CRC-32C because a ranged GET cannot be checked against the object's S3 checksum,
// which covers the whole object. Readers ignore entries with codes they do not know, so a later
// version may add indexes without breaking them.

const (
	bundleMagic   = "SIDX"
	bundleVersion = 1
	entrySize     = 24
	maxEntries    = 64 // sanity bound for decoding; version 1 writes 5
)

// Entry codes are part of the stored format; they never change meaning.
const (
	codeOffset           = 1
	codeTime             = 2
	codeTransaction      = 3
	codeLeaderEpoch      = 4
	codeProducerSnapshot = 5
)

// bundleOrder is the order the indexes are stored in: the three Kafka's RemoteIndexCache fetches
// on every cache miss first, so that they usually arrive with the header in one GET.
var bundleOrder = []struct {
	code uint8
	t    rsm.IndexType
}{
	{codeOffset, rsm.IndexOffset},
	{codeTime, rsm.IndexTimestamp},
	{codeTransaction, rsm.IndexTransaction},
	{codeLeaderEpoch, rsm.IndexLeaderEpoch},
	{codeProducerSnapshot, rsm.IndexProducerSnapshot},
}

func codeOf(t rsm.IndexType) uint8 {
	for _, b := range bundleOrder {
		if b.t == t {
			return b.code
		}
	}
	return 0
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func headerSize(n int) int { return 8 + entrySize*n + 4 }

// bundleEntry is one decoded header entry.
type bundleEntry struct {
	code    uint8
	present bool
	crc     uint32
	off     uint64
	len     uint64
}

// encodeBundle builds the bundle from the indexes; an absent index is a nil slice in present
// false. The result is one allocation of the bundle's final size.
func encodeBundle(indexes map[rsm.IndexType][]byte) []byte {
	n := len(bundleOrder)
	total := headerSize(n)
	for _, b := range bundleOrder {
		total += len(indexes[b.t])
	}
	out := make([]byte, total)
	copy(out, bundleMagic)
	binary.BigEndian.PutUint16(out[4:], bundleVersion)
	binary.BigEndian.PutUint16(out[6:], uint16(n))
	off := headerSize(n)
	for i, b := range bundleOrder {
		e := out[8+entrySize*i:]
		data, present := indexes[b.t]
		e[0] = b.code
		if present {
			e[1] = 1
		}
		binary.BigEndian.PutUint32(e[4:], crc32.Checksum(data, castagnoli))
		binary.BigEndian.PutUint64(e[8:], uint64(off))
		binary.BigEndian.PutUint64(e[16:], uint64(len(data)))
		off += copy(out[off:], data)
	}
	hdrEnd := headerSize(n) - 4
	binary.BigEndian.PutUint32(out[hdrEnd:], crc32.Checksum(out[:hdrEnd], castagnoli))
	return out
}

var errShortHeader = errors.New("index bundle header is incomplete")

// decodeBundleHeader reads the header at the start of b. objectSize, when positive, bounds the
// entries' ranges. It never panics, whatever b holds. errShortHeader means b is a valid prefix
// that ends before the header does; every other error means the bytes are not a bundle header.
func decodeBundleHeader(b []byte, objectSize int64) ([]bundleEntry, error) {
	if len(b) < 8 {
		return nil, errShortHeader
	}
	if string(b[:4]) != bundleMagic {
		return nil, fmt.Errorf("index bundle starts with %q, not the magic %q", b[:4], bundleMagic)
	}
	if v := binary.BigEndian.Uint16(b[4:]); v != bundleVersion {
		return nil, fmt.Errorf("index bundle format version %d is not supported (this build reads version %d)", v, bundleVersion)
	}
	n := int(binary.BigEndian.Uint16(b[6:]))
	if n > maxEntries {
		return nil, fmt.Errorf("index bundle claims %d entries, more than %d", n, maxEntries)
	}
	hs := headerSize(n)
	if len(b) < hs {
		return nil, errShortHeader
	}
	if want, got := binary.BigEndian.Uint32(b[hs-4:]), crc32.Checksum(b[:hs-4], castagnoli); want != got {
		return nil, fmt.Errorf("index bundle header CRC-32C is %08x, computed %08x", want, got)
	}
	entries := make([]bundleEntry, n)
	for i := range entries {
		e := b[8+entrySize*i:]
		entries[i] = bundleEntry{
			code:    e[0],
			present: e[1]&1 != 0,
			crc:     binary.BigEndian.Uint32(e[4:]),
			off:     binary.BigEndian.Uint64(e[8:]),
			len:     binary.BigEndian.Uint64(e[16:]),
		}
		en := entries[i]
		end := en.off + en.len
		if en.off < uint64(hs) || end < en.off || (objectSize > 0 && end > uint64(objectSize)) {
			return nil, fmt.Errorf("index bundle entry %d (code %d) spans [%d, %d), outside the object of %d bytes", i, en.code, en.off, end, objectSize)
		}
	}
	return entries, nil
}
