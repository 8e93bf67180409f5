package s3_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"testing"

	"github.com/stratalog/strata/rsm"
	"github.com/stratalog/strata/rsm/internal/rsmtest"
	"github.com/stratalog/strata/rsm/s3"
)

// Upload and download throughput of one segment's log, and the requests each costs, with the
// Store's default options. STRATA_BENCH_SEGMENT_SIZE sets the size (default 16MiB).
//
// By default the store is gofakes3 in this process, which measures the client's own overhead
// (checksums, signing, copying) rather than a network. With STRATA_S3_BUCKET set it is a real
// S3 server: STRATA_S3_ENDPOINT (empty for AWS), STRATA_S3_PREFIX, STRATA_S3_PATH_STYLE,
// AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or any source of the SDK's chain).
// Each run writes under a fresh prefix and deletes what it wrote.

// benchStore returns a store and the counter of its requests.
func benchStore(b *testing.B) (*s3.Store, *counter) {
	b.Helper()
	if os.Getenv(s3.EnvBucket) == "" {
		f := newFakeS3(b)
		st, err := s3.New(b.Context(), f.config("bench"), s3.WithHTTPClient(&http.Client{Transport: f.count}))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return st, f.count
	}
	cfg, err := s3.ConfigFromEnv()
	if err != nil {
		b.Fatal(err)
	}
	cfg.Prefix += "strata-bench-" + rand.Text() + "/"
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	if bundle := os.Getenv("AWS_CA_BUNDLE"); bundle != "" {
		// WithHTTPClient takes the client as it is, so the CA bundle the SDK would add to its
		// own client is added here.
		pem, err := os.ReadFile(bundle)
		if err != nil {
			b.Fatal(err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pool.AppendCertsFromPEM(pem)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	b.Cleanup(tr.CloseIdleConnections)
	count := &counter{next: tr, ops: map[string]int{}}
	st, err := s3.New(b.Context(), cfg, s3.WithHTTPClient(&http.Client{Transport: count}))
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Check(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Logf("benchmarking against %v", cfg)
	b.Cleanup(func() { st.Close() })
	return st, count
}

func benchSegment(b *testing.B, st *s3.Store) *rsmtest.Segment {
	b.Helper()
	size := rsmtest.SegmentSize(b, 16<<20)
	seg := rsmtest.Write(b, b.TempDir(), rsmtest.Spec{Partition: rsmtest.Partition("bench", 0), LogSize: size, Txn: true, Seed: 1})
	b.Cleanup(func() {
		if err := st.Delete(context.Background(), seg.Meta); err != nil {
			b.Errorf("deleting the benchmark's segment: %v", err)
		}
	})
	return seg
}

func reportRequests(b *testing.B, count *counter) {
	ops := count.take()
	total := 0
	for _, n := range ops {
		total += n
	}
	n := float64(b.N)
	b.ReportMetric(float64(putRequests(ops))/n, "PUTs/op")
	b.ReportMetric(float64(ops["GetObject"])/n, "GETs/op")
	b.ReportMetric(float64(total)/n, "requests/op")
}

func BenchmarkCopy(b *testing.B) {
	st, count := benchStore(b)
	seg := benchSegment(b, st)
	ctx := context.Background()
	count.take()
	b.SetBytes(seg.LogSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.Copy(ctx, seg.Meta, seg.Data); err != nil {
			b.Fatal(err)
		}
	}
	reportRequests(b, count)
}

func BenchmarkFetchLog(b *testing.B) {
	st, count := benchStore(b)
	seg := benchSegment(b, st)
	ctx := context.Background()
	if _, err := st.Copy(ctx, seg.Meta, seg.Data); err != nil {
		b.Fatal(err)
	}
	count.take()
	b.SetBytes(seg.LogSize)
	b.ReportAllocs()
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	for b.Loop() {
		rc, err := st.FetchLog(ctx, seg.Meta, 0, rsm.EndOfLog)
		if err != nil {
			b.Fatal(err)
		}
		h.Reset()
		if n, err := io.Copy(h, rc); err != nil || n != seg.LogSize || h.Sum32() != seg.LogCRC {
			b.Fatalf("fetched %d bytes (CRC-32C %08x, want %08x), %v", n, h.Sum32(), seg.LogCRC, err)
		}
		rc.Close()
	}
	reportRequests(b, count)
}
