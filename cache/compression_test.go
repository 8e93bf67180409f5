//go:build linux

package cache

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestStoreReadsTablesOfEitherCompression writes half of BenchmarkApplyMillion's workload into
// tables compressed with Snappy, as stores were before blockCompression, and the other half
// after reopening as the store is now: the reopened store must answer for every segment from
// both kinds of table, and the tables it wrote must be uncompressed.
func TestStoreReadsTablesOfEitherCompression(t *testing.T) {
	fs := vfs.NewMem()
	w := &benchWorkload{segments: 4000}
	if blockCompression != sstable.NoCompression {
		t.Fatalf("blockCompression = %s, want %s", blockCompression.Name, sstable.NoCompression.Name)
	}
	write := func(s *Store, from, to int) {
		t.Helper()
		for ev := from; ev < to; ev += benchBatch {
			if _, err := s.Apply(w.batch(ev, min(benchBatch, to-ev))); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.db.Flush(); err != nil {
			t.Fatal(err)
		}
	}

	blockCompression = sstable.SnappyCompression
	t.Cleanup(func() { blockCompression = sstable.NoCompression })
	s, err := Open("db", WithFS(fs), WithLookupCacheSize(0))
	if err != nil {
		t.Fatal(err)
	}
	write(s, 0, w.segments)
	if m := s.db.Metrics().Table; m.CompressedCountSnappy == 0 || m.CompressedCountNone != 0 {
		t.Fatalf("old store's tables: %d Snappy, %d uncompressed; want all Snappy", m.CompressedCountSnappy, m.CompressedCountNone)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	blockCompression = sstable.NoCompression
	s = openOn(t, fs, WithLookupCacheSize(0))
	write(s, w.segments, 2*w.segments)
	if m := s.db.Metrics().Table; m.CompressedCountSnappy == 0 || m.CompressedCountNone == 0 {
		t.Fatalf("reopened store's tables: %d Snappy, %d uncompressed; want both", m.CompressedCountSnappy, m.CompressedCountNone)
	}
	for k := range w.segments {
		id, start, epoch := w.segment(k)
		m, ok, err := s.SegmentFor(id.TopicIDPartition, epoch, start+50)
		if err != nil || !ok || m.SegmentID != id {
			t.Fatalf("SegmentFor(%s, %d, %d) = %v, %t, %v; want segment %d", id.TopicIDPartition, epoch, start+50, m.SegmentID, ok, err, k)
		}
	}
}
