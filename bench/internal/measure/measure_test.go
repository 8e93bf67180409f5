package measure

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPercentileIsNearestRank(t *testing.T) {
	var s []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		s = append(s, time.Duration(i))
	}
	for p, want := range map[float64]time.Duration{0.01: 1, 0.5: 50, 0.99: 99, 0.995: 100, 1: 100} {
		if got := Percentile(s, p); got != want {
			t.Errorf("Percentile(1..100, %v) = %d, want %d", p, got, want)
		}
	}
	if got := Percentile([]time.Duration{7}, 0.99); got != 7 {
		t.Errorf("Percentile of one sample = %d, want 7", got)
	}
	if got := Percentile([]time.Duration{3, 1, 2, 4}, 0.5); got != 2 {
		t.Errorf("p50 of 1..4 = %d, want 2 (nearest rank, not interpolated)", got)
	}
	if s[0] != 100 {
		t.Error("Percentile sorted its argument")
	}
}

func TestDurationUnits(t *testing.T) {
	r := NewResult()
	r.Duration(ColdLoadMs, 1500*time.Microsecond)
	r.Duration(AddP50Ns, 2*time.Microsecond)
	if r.Metrics[ColdLoadMs] != 1.5 || r.Metrics[AddP50Ns] != 2000 {
		t.Fatalf("metrics %v, want cold_load_ms 1.5 and add_p50_ns 2000", r.Metrics)
	}
}

func TestParseResult(t *testing.T) {
	r, err := ParseResult([]byte("a stray line\n{\"metrics\":{\"restart_ms\":12.5},\"info\":{\"lookup.checksum\":\"99\"}}\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Metrics[RestartMs] != 12.5 || r.Info[InfoLookupChecksum] != "99" {
		t.Fatalf("parsed %+v", r)
	}
	for _, bad := range []string{"", "not json", `{"info":{}}`, `{"metrics":{"restart_ms":-1}}`} {
		if _, err := ParseResult([]byte(bad)); err == nil {
			t.Errorf("ParseResult(%q) succeeded", bad)
		}
	}
}

func TestPeakRSS(t *testing.T) {
	n, err := PeakRSS()
	if err != nil {
		t.Fatal(err)
	}
	if n <= 0 {
		t.Fatalf("PeakRSS = %d", n)
	}
}

func TestStatusBytesErrors(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"missing": "VmRSS:\t 10 kB\n",
		"unit":    "VmHWM:\t 10 MB\n",
		"number":  "VmHWM:\t ten kB\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := statusBytes(p, "VmHWM:"); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: err %v, want one naming %s", name, err, p)
		}
	}
	p := filepath.Join(dir, "good")
	if err := os.WriteFile(p, []byte("Name:\tx\nVmHWM:\t   2048 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := statusBytes(p, "VmHWM:"); err != nil || n != 2048*1024 {
		t.Errorf("good: %d, %v; want %d", n, err, 2048*1024)
	}
}
