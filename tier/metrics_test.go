package tier

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratalog/strata/internal/promtest"
	"github.com/stratalog/strata/proto"
)

// The KIP-963 counters and lags follow the copies, deletes and fetches; two Tierers on one
// registry report into the same series.
func TestMetrics(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	tr := mustNew(t, e.meta, e.store, WithMetrics(reg))
	logBytes := bytes.Repeat([]byte("record-bytes "), 100)
	var segs []proto.SegmentMetadata
	for i := range int64(3) {
		s, err := tr.Copy(ctx, newSegment(i*100, i*100+99), segmentFiles(t, logBytes))
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, *s)
	}
	// A failed upload: an error, and its cleanup is a delete.
	failing := mustNew(t, e.meta, &failingStore{Manager: e.store, failCopy: true}, WithMetrics(reg))
	if _, err := failing.Copy(ctx, newSegment(1000, 1099), segmentFiles(t, logBytes)); !errors.Is(err, errInjected) {
		t.Fatalf("failing copy: %v", err)
	}
	rc, _, err := tr.Fetch(ctx, tp, 0, 150, 13)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if _, _, err := tr.Fetch(ctx, tp, 0, 5000, 0); !errors.Is(err, ErrNoSegment) {
		t.Fatalf("fetch of no segment: %v", err)
	}
	promtest.Expect(t, promtest.ScrapeRegistry(t, reg), map[string]float64{
		`strata_remote_copy_requests_total{topic="orders"}`:               4,
		`strata_remote_copy_errors_total{topic="orders"}`:                 1,
		`strata_remote_copy_bytes_total{topic="orders"}`:                  300,
		`strata_remote_delete_requests_total{topic="orders"}`:             1,
		`strata_remote_delete_errors_total{topic="orders"}`:               promtest.Absent,
		`strata_remote_fetch_requests_total{topic="orders"}`:              2,
		`strata_remote_fetch_errors_total{topic="orders"}`:                1,
		`strata_remote_fetch_bytes_total{topic="orders"}`:                 float64(len(logBytes) - 13),
		`strata_remote_delete_lag_segments{partition="0",topic="orders"}`: promtest.Absent,
		`strata_remote_copy_lag_segments{partition="0",topic="orders"}`:   promtest.Absent,
	})

	// A delete of three segments of which one fails leaves that one as the lag, as Kafka's
	// cleaner does until its next run; the next Delete takes it to zero.
	fs := &failingStore{Manager: e.store, failIDs: map[proto.UUID]bool{segs[1].SegmentID.ID: true}}
	if err := mustNew(t, e.meta, fs, WithMetrics(reg)).Delete(ctx, segs); err == nil {
		t.Fatal("delete with a failing segment succeeded")
	}
	promtest.Expect(t, promtest.ScrapeRegistry(t, reg), map[string]float64{
		`strata_remote_delete_requests_total{topic="orders"}`:             4,
		`strata_remote_delete_errors_total{topic="orders"}`:               1,
		`strata_remote_delete_lag_segments{partition="0",topic="orders"}`: 1,
		`strata_remote_delete_lag_bytes{partition="0",topic="orders"}`:    100,
	})
	left, err := e.meta.Segments(tp)
	if err != nil || len(left) != 1 {
		t.Fatalf("left = %v %v", left, err)
	}
	if err := tr.Delete(ctx, left); err != nil {
		t.Fatal(err)
	}
	// The broker reports its copy lag; ForgetPartition drops the partition's lags.
	tr.ReportCopyLag(tp, 4, 4096)
	promtest.Expect(t, promtest.ScrapeRegistry(t, reg), map[string]float64{
		`strata_remote_delete_requests_total{topic="orders"}`:             5,
		`strata_remote_delete_lag_segments{partition="0",topic="orders"}`: 0,
		`strata_remote_delete_lag_bytes{partition="0",topic="orders"}`:    0,
		`strata_remote_copy_lag_segments{partition="0",topic="orders"}`:   4,
		`strata_remote_copy_lag_bytes{partition="0",topic="orders"}`:      4096,
	})
	tr.ForgetPartition(tp)
	promtest.Expect(t, promtest.ScrapeRegistry(t, reg), map[string]float64{
		`strata_remote_delete_lag_segments{partition="0",topic="orders"}`: promtest.Absent,
		`strata_remote_copy_lag_segments{partition="0",topic="orders"}`:   promtest.Absent,
	})
}
