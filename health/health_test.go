package health

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, h http.Handler, method, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

func TestProbes(t *testing.T) {
	var readyErr error
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_test_total", Help: "A counter."})
	reg.MustRegister(c)
	c.Add(3)
	h := Handler(WithGatherer(reg),
		WithReadiness("a", func() error { return nil }),
		WithReadiness("b", func() error { return readyErr }),
		WithLiveness("a", func() error { return nil }))

	for _, tc := range []struct {
		path string
		err  error
		code int
		body string
	}{
		{"/readyz", nil, 200, "ok\n"},
		{"/healthz", nil, 200, "ok\n"},
		{"/readyz", errors.New("partition 2 halted at offset 7"), 503, "b: partition 2 halted at offset 7\n"},
		// Joined errors: one line each, each naming the check.
		{"/readyz", errors.Join(errors.New("x halted"), errors.New("y halted")), 503, "b: x halted\nb: y halted\n"},
		{"/healthz", errors.New("not live"), 200, "ok\n"},
	} {
		readyErr = tc.err
		code, body := get(t, h, http.MethodGet, tc.path)
		if code != tc.code || body != tc.body {
			t.Errorf("%s with %v = %d %q, want %d %q", tc.path, tc.err, code, body, tc.code, tc.body)
		}
	}
	if code, body := get(t, h, http.MethodGet, "/metrics"); code != 200 || !strings.Contains(body, "strata_test_total 3\n") {
		t.Errorf("/metrics = %d %q", code, body)
	}
	if code, _ := get(t, h, http.MethodPost, "/readyz"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /readyz = %d", code)
	}
	if code, _ := get(t, Handler(), http.MethodGet, "/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics without a gatherer = %d", code)
	}
	if code, _ := get(t, Handler(), http.MethodGet, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz without checks = %d", code)
	}
}
