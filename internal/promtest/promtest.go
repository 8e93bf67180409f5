// Package promtest scrapes a metrics endpoint the way Prometheus does, for tests that check
// exported values against known state.
package promtest

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Get sends GET path to h and returns the status and body.
func Get(tb testing.TB, h http.Handler, path string) (int, string) {
	tb.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

// Scrape GETs /metrics from h and returns every sample by its series as the text format
// writes it: name{label="value",...}, labels in name order.
func Scrape(tb testing.TB, h http.Handler) map[string]float64 {
	tb.Helper()
	code, body := Get(tb, h, "/metrics")
	if code != http.StatusOK {
		tb.Fatalf("/metrics: %d %s", code, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			tb.Fatalf("sample %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// ScrapeRegistry scrapes g through promhttp's handler.
func ScrapeRegistry(tb testing.TB, g prometheus.Gatherer) map[string]float64 {
	tb.Helper()
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	return Scrape(tb, mux)
}

// Absent, as a wanted value, says the series must not be exported.
const Absent = -1

// Expect checks the series of got against want.
func Expect(tb testing.TB, got map[string]float64, want map[string]float64) {
	tb.Helper()
	for k, w := range want {
		g, ok := got[k]
		switch {
		case w == Absent && ok:
			tb.Errorf("%s = %v, want absent", k, g)
		case w != Absent && !ok:
			tb.Errorf("%s absent, want %v", k, w)
		case w != Absent && g != w:
			tb.Errorf("%s = %v, want %v", k, g, w)
		}
	}
}
