package s3

import (
	"bytes"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/stratalog/strata/rsm"
)

func testIndexes() map[rsm.IndexType][]byte {
	return map[rsm.IndexType][]byte{
		rsm.IndexOffset:           bytes.Repeat([]byte{1}, 80),
		rsm.IndexTimestamp:        bytes.Repeat([]byte{2}, 120),
		rsm.IndexProducerSnapshot: []byte("snapshot"),
		rsm.IndexLeaderEpoch:      {},
	}
}

func TestBundleRoundTrip(t *testing.T) {
	in := testIndexes()
	b := encodeBundle(in)
	entries, err := decodeBundleHeader(b, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 5 {
		t.Fatalf("%d entries, want 5", len(entries))
	}
	seen := map[rsm.IndexType]bool{}
	for _, e := range entries {
		var it rsm.IndexType = -1
		for _, o := range bundleOrder {
			if o.code == e.code {
				it = o.t
			}
		}
		want, present := in[it]
		if e.present != present {
			t.Errorf("%v: present %v, want %v", it, e.present, present)
		}
		got := b[e.off : e.off+e.len]
		if !bytes.Equal(got, want) || crc32.Checksum(got, castagnoli) != e.crc {
			t.Errorf("%v: %d bytes at %d do not match", it, e.len, e.off)
		}
		seen[it] = true
	}
	if len(seen) != 5 {
		t.Errorf("entries cover %v", seen)
	}
	// The leader-epoch checkpoint is present though empty; the transaction index is absent.
	for _, e := range entries {
		if e.code == codeLeaderEpoch && (!e.present || e.len != 0) {
			t.Errorf("empty leader-epoch checkpoint: %+v", e)
		}
		if e.code == codeTransaction && e.present {
			t.Errorf("absent transaction index marked present: %+v", e)
		}
	}
}

// Any single flipped bit in the header is detected, and any prefix of the header is reported as
// short or invalid, never decoded.
func TestBundleHeaderDamage(t *testing.T) {
	b := encodeBundle(testIndexes())
	hs := headerSize(len(bundleOrder))
	for i := range hs {
		for bit := range 8 {
			d := bytes.Clone(b)
			d[i] ^= 1 << bit
			if _, err := decodeBundleHeader(d, int64(len(d))); err == nil {
				t.Fatalf("flipping bit %d of byte %d went unnoticed", bit, i)
			}
		}
	}
	for n := range hs {
		if _, err := decodeBundleHeader(b[:n], 0); err == nil {
			t.Fatalf("a %d-byte prefix decoded", n)
		}
	}
	if _, err := decodeBundleHeader(b[:hs], 0); err != nil {
		t.Fatalf("the header alone, object size unknown: %v", err)
	}
	if _, err := decodeBundleHeader(b, int64(len(b)-1)); err == nil {
		t.Fatal("entries beyond the object's size decoded")
	}
	if _, err := decodeBundleHeader(b[:hs-1], 0); !errors.Is(err, errShortHeader) {
		t.Fatalf("a header cut short: %v, want errShortHeader", err)
	}
}

func FuzzDecodeBundleHeader(f *testing.F) {
	f.Add(encodeBundle(testIndexes()), int64(0))
	f.Add([]byte("SIDX\x00\x01\x00\x00"), int64(12))
	f.Fuzz(func(t *testing.T, b []byte, size int64) {
		entries, err := decodeBundleHeader(b, size)
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.off+e.len < e.off || (size > 0 && e.off+e.len > uint64(size)) {
				t.Fatalf("decoded an entry outside the object: %+v", e)
			}
		}
	})
}
