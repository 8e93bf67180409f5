//go:build linux

package cache

import (
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

var benchStore = flag.String("cache.bench-store", "", "BenchmarkLookups' store: built there once with -cache.bench-segments segments and reused by later runs (default a fresh one in a temporary directory)")

// BenchmarkLookups measures SegmentFor alone on a store of -cache.bench-segments segments
// (BenchmarkApplyMillion's workload), reopened as after a restart: at random offsets of random
// segments (p50-ns, p99-ns), then as consumers reading through segments (seq-p50-ns,
// seq-p99-ns). With -cache.bench-store the store is built once and reused, so that a CPU profile
// of a later run holds the lookups only:
//
//	go test ./cache -run '^$' -bench BenchmarkLookups -benchtime 1x -cache.bench-segments 5000000 -cache.bench-store /tmp/strata-5m
func BenchmarkLookups(b *testing.B) {
	w := &benchWorkload{segments: *benchSegments}
	dir := *benchStore
	if dir == "" {
		dir = filepath.Join(b.TempDir(), "store")
	}
	marker := filepath.Join(dir, "strata-bench-segments")
	if got, err := os.ReadFile(marker); err != nil || string(got) != strconv.Itoa(w.segments) {
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		s, err := Open(dir, WithBlockCacheSize(*benchBlockCache), WithLookupCacheSize(*benchLookupCache))
		if err != nil {
			b.Fatal(err)
		}
		for ev := 0; ev < 2*w.segments; ev += benchBatch {
			if _, err := s.Apply(w.batch(ev, benchBatch)); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(marker, []byte(strconv.Itoa(w.segments)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		s, err := Open(dir, WithBlockCacheSize(*benchBlockCache), WithLookupCacheSize(*benchLookupCache))
		if err != nil {
			b.Fatal(err)
		}
		p50, p99 := benchLookups(b, s, w)
		b.ReportMetric(float64(p50.Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(p99.Nanoseconds()), "p99-ns")
		p50, p99 = benchSequentialLookups(b, s, w)
		b.ReportMetric(float64(p50.Nanoseconds()), "seq-p50-ns")
		b.ReportMetric(float64(p99.Nanoseconds()), "seq-p99-ns")
		if s.lookups != nil {
			used, _ := s.lookups.stats()
			b.ReportMetric(float64(used)/(1<<20), "lookup-cache-MB")
		}
		if rss, ok := peakRSS(); ok {
			b.ReportMetric(float64(rss)/(1<<20), "peak-rss-MB")
		}
		if testing.Verbose() {
			b.Logf("after the lookups:\n%s", s.db.Metrics())
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
