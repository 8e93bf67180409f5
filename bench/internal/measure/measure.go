// Package measure holds what both sides of Strata's benchmark report and how they compute it:
// the names of the figures, percentiles by nearest rank, and the process's peak resident set
// size. The Java side (bench/kafka-rlmm, Measure.java) computes the same figures the same way.
package measure

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The figures a side reports, by the names both sides print.
const (
	ColdLoadMs       = "cold_load_ms"        // manager created -> every user partition ready
	PeakRSSBytes     = "peak_rss_bytes"      // VmHWM right after the cold load (with the process's children's)
	HeapAfterGCBytes = "heap_after_gc_bytes" // heap in use after a full collection, manager open
	LookupP50Ns      = "lookup_p50_ns"
	LookupP99Ns      = "lookup_p99_ns"
	// The same lookups as consumers reading through segments make them (workload.ConsumerKeys).
	ConsumerLookupP50Ns = "consumer_lookup_p50_ns"
	ConsumerLookupP99Ns = "consumer_lookup_p99_ns"
	RestartMs           = "restart_ms" // the manager closed, created again -> every partition ready
	DiskBytes           = "disk_bytes" // the files under the manager's folder once it is closed
	AddP50Ns            = "add_p50_ns"
	AddP99Ns            = "add_p99_ns"
	FinishP50Ns         = "finish_p50_ns"
	FinishP99Ns         = "finish_p99_ns"

	// ChildPeakRSSBytes is the part of PeakRSSBytes held by the side's child processes (the
	// plugin's strata serve); only the Java side reports it.
	ChildPeakRSSBytes = "child_peak_rss_bytes"

	// RestartFetched is Strata's own: records its restart fetched (Kafka re-reads the topic).
	RestartFetched = "restart_fetched"

	// ColdLoadCPUMs is Strata's own: the CPU time (user and system, every thread) the process
	// spent during the cold load. Unlike the cold load's wall time it hardly depends on what
	// else the machine runs, so it is what compares two builds on a shared machine.
	ColdLoadCPUMs = "cold_load_cpu_ms"
)

// Information a side reports besides figures.
const (
	InfoLookupChecksum   = "lookup.checksum"          // sum of the segment start offsets the lookups found
	InfoConsumerChecksum = "consumer.lookup.checksum" // the same for the consumer lookups
)

// Result is what one run of one side measured: its stdout, one JSON line.
type Result struct {
	Metrics map[string]float64 `json:"metrics"`
	Info    map[string]string  `json:"info"`
}

// NewResult returns an empty result.
func NewResult() Result {
	return Result{Metrics: map[string]float64{}, Info: map[string]string{}}
}

// Duration records d under name in the unit the name ends with (_ms or _ns).
func (r Result) Duration(name string, d time.Duration) {
	switch {
	case strings.HasSuffix(name, "_ms"):
		r.Metrics[name] = float64(d) / float64(time.Millisecond)
	case strings.HasSuffix(name, "_ns"):
		r.Metrics[name] = float64(d)
	default:
		panic("measure: " + name + " is not a duration")
	}
}

// ParseResult reads the result a side printed: the last non-empty line of out, so that a
// stray line before it does not hide it.
func ParseResult(out []byte) (Result, error) {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	last := lines[len(lines)-1]
	var r Result
	if err := json.Unmarshal(last, &r); err != nil {
		return Result{}, fmt.Errorf("measure: result %q: %w", last, err)
	}
	if r.Metrics == nil {
		return Result{}, fmt.Errorf("measure: result %q has no metrics", last)
	}
	for k, v := range r.Metrics {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return Result{}, fmt.Errorf("measure: result metric %s is %v", k, v)
		}
	}
	if r.Info == nil {
		r.Info = map[string]string{}
	}
	return r, nil
}

// DirBytes returns the bytes of every regular file under dir.
func DirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measure: size of %s: %w", dir, err)
	}
	return n, nil
}

// Percentile returns the p-th percentile (0 < p <= 1) of samples by nearest rank: the smallest
// sample at or above a fraction p of them. REQUIRES: len(samples) > 0.
func Percentile(samples []time.Duration, p float64) time.Duration {
	s := slices.Clone(samples)
	slices.Sort(s)
	rank := int(math.Ceil(p * float64(len(s))))
	return s[max(0, min(len(s), rank)-1)]
}

// PeakRSS returns this process's peak resident set size so far (VmHWM of /proc/self/status).
// CPUTime returns the CPU time, user and system, the process has spent so far.
func CPUTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("measure: getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

func PeakRSS() (int64, error) { return statusBytes("/proc/self/status", "VmHWM:") }

func statusBytes(path, field string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("measure: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), field)
		if !ok {
			continue
		}
		v := strings.Fields(rest)
		if len(v) != 2 || v[1] != "kB" {
			return 0, fmt.Errorf("measure: %s: unexpected %s line %q", path, field, sc.Text())
		}
		kb, err := strconv.ParseInt(v[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("measure: %s: %s %w", path, field, err)
		}
		return kb * 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("measure: reading %s: %w", path, err)
	}
	return 0, fmt.Errorf("measure: %s has no %s line", path, field)
}
