package rsm_test

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stratalog/strata/rsm/internal/rsmtest"
)

// The ceilings the implementations' benchmarks compare with: the same log copied to another
// file and synced, as rsm/local does without the rename, and read from the page cache.
// STRATA_BENCH_SEGMENT_SIZE sets the size (default 16MiB).

func BenchmarkFileCopy(b *testing.B) {
	size := rsmtest.SegmentSize(b, 16<<20)
	seg := rsmtest.Write(b, b.TempDir(), rsmtest.Spec{Partition: rsmtest.Partition("bench", 0), LogSize: size, Seed: 1})
	dst := filepath.Join(b.TempDir(), "copy.log")
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		in, err := os.Open(seg.Data.LogPath)
		if err != nil {
			b.Fatal(err)
		}
		out, err := os.Create(dst)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			b.Fatal(err)
		}
		if err := out.Sync(); err != nil {
			b.Fatal(err)
		}
		in.Close()
		if err := out.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFileRead(b *testing.B) {
	size := rsmtest.SegmentSize(b, 16<<20)
	seg := rsmtest.Write(b, b.TempDir(), rsmtest.Spec{Partition: rsmtest.Partition("bench", 0), LogSize: size, Seed: 1})
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		in, err := os.Open(seg.Data.LogPath)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, in); err != nil || n != size {
			b.Fatalf("read %d bytes, %v", n, err)
		}
		in.Close()
	}
}
