package s3_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratalog/strata/internal/promtest"
	"github.com/stratalog/strata/rsm"
	"github.com/stratalog/strata/rsm/internal/rsmtest"
	"github.com/stratalog/strata/rsm/s3"
)

// The S3 counters match what the server saw: calls, retries (attempts beyond the first) and
// errors by kind, per operation.
func TestMetrics(t *testing.T) {
	f := newFakeS3(t)
	reg := prometheus.NewRegistry()
	st := f.open(t, "metrics", s3.WithMetrics(reg))
	ctx := t.Context()
	tp := rsmtest.Partition("metrics", 0)
	seg := func(start int64) *rsmtest.Segment {
		return rsmtest.Write(t, t.TempDir(), rsmtest.Spec{Partition: tp, StartOffset: start, LogSize: 1000, Seed: uint64(start) + 1})
	}
	op := func(name, op string) string { return fmt.Sprintf(`strata_s3_%s{operation=%q}`, name, op) }

	f.count.take()
	rsmtest.Copy(t, st, seg(0))
	promtest.Expect(t, promtest.ScrapeRegistry(t, reg), map[string]float64{
		op("requests_total", "PutObject"):                 2,
		op("retries_total", "PutObject"):                  0,
		op("request_duration_seconds_count", "PutObject"): 2,
	})

	// Throttled on every request's first attempt: each call retries once, and the server sees
	// calls plus retries.
	f.faults.setRule(func(_ *http.Request, n int) fault { return pick(n == 1, faultSlowDown) })
	s := seg(100)
	rsmtest.Copy(t, st, s)
	rsmtest.Read(t)(st.FetchLog(ctx, s.Meta, 0, rsm.EndOfLog))
	f.faults.setRule(nil)
	got := promtest.ScrapeRegistry(t, reg)
	promtest.Expect(t, got, map[string]float64{
		op("requests_total", "PutObject"): 4,
		op("retries_total", "PutObject"):  2,
		op("requests_total", "GetObject"): 1,
		op("retries_total", "GetObject"):  1,
	})
	seen := f.count.take()
	if calls := got[op("requests_total", "PutObject")] + got[op("retries_total", "PutObject")]; float64(seen["PutObject"]) != calls {
		t.Errorf("the server saw %d PutObject attempts, the metrics %v", seen["PutObject"], calls)
	}

	// Denied: one permanent error, no retry. Missing: a not-found error.
	f.faults.setRule(func(*http.Request, int) fault { return faultAccessDenied })
	if _, err := st.Copy(ctx, seg(200).Meta, seg(200).Data); !errors.Is(err, rsm.ErrPermanent) {
		t.Fatalf("copy with access denied: %v", err)
	}
	f.faults.setRule(nil)
	if _, err := st.FetchLog(ctx, seg(300).Meta, 0, rsm.EndOfLog); !errors.Is(err, rsm.ErrNotFound) {
		t.Fatalf("fetch of a segment never copied: %v", err)
	}
	promtest.Expect(t, promtest.ScrapeRegistry(t, reg), map[string]float64{
		`strata_s3_errors_total{kind="permanent",operation="PutObject"}`: 1,
		`strata_s3_errors_total{kind="not_found",operation="GetObject"}`: 1,
		op("retries_total", "PutObject"):                                 2,
	})

	// A second Store on the same registry adds to the same series.
	other := f.open(t, "metrics-2", s3.WithMetrics(reg))
	rsmtest.Copy(t, other, seg(400))
	if got := promtest.ScrapeRegistry(t, reg)[op("requests_total", "PutObject")]; got != 7 {
		t.Errorf("PutObject calls after a second store's copy = %v, want 7", got)
	}
}
