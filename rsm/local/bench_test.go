package local_test

import (
	"context"
	"io"
	"testing"

	"github.com/stratalog/strata/rsm"
	"github.com/stratalog/strata/rsm/internal/rsmtest"
	"github.com/stratalog/strata/rsm/local"
)

// Upload and download throughput of one segment's log; STRATA_BENCH_SEGMENT_SIZE sets the size
// (default 16MiB). Compare with rsm's BenchmarkFileCopy and BenchmarkFileRead.

func benchSegment(b *testing.B) (*local.Store, *rsmtest.Segment) {
	b.Helper()
	st, err := local.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	size := rsmtest.SegmentSize(b, 16<<20)
	return st, rsmtest.Write(b, b.TempDir(), rsmtest.Spec{Partition: rsmtest.Partition("bench", 0), LogSize: size, Txn: true, Seed: 1})
}

func BenchmarkCopy(b *testing.B) {
	st, seg := benchSegment(b)
	ctx := context.Background()
	b.SetBytes(seg.LogSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.Copy(ctx, seg.Meta, seg.Data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFetchLog(b *testing.B) {
	st, seg := benchSegment(b)
	ctx := context.Background()
	if _, err := st.Copy(ctx, seg.Meta, seg.Data); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(seg.LogSize)
	b.ReportAllocs()
	for b.Loop() {
		rc, err := st.FetchLog(ctx, seg.Meta, 0, rsm.EndOfLog)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, rc); err != nil || n != seg.LogSize {
			b.Fatalf("fetched %d bytes, %v", n, err)
		}
		rc.Close()
	}
}
