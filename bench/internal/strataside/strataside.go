// Package strataside is Strata's side of the benchmark: the steps the Java program in
// bench/kafka-rlmm runs through Kafka's TopicBasedRemoteLogMetadataManager, run through
// Strata's rlmm.Manager, measured the same way.
package strataside

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/stratalog/strata/bench/internal/measure"
	"github.com/stratalog/strata/bench/internal/workload"
	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rlmm"
)

// Options configure the managers a run creates, besides what the workload sets: tests pass
// kfake's address and a logger.
type Options struct {
	Manager []rlmm.Option
}

func start(ctx context.Context, s *workload.Spec, dir string, o Options, leaders []proto.TopicIDPartition, extra ...rlmm.Option) (*rlmm.Manager, error) {
	opts := []rlmm.Option{
		rlmm.WithBootstrapServers(s.Brokers),
		rlmm.WithCacheDir(dir),
		rlmm.WithMetadataPartitions(s.MetadataPartitions),
		// The harness's broker has one node; the topic exists already, these only keep the
		// manager's create-if-missing path consistent with it (as on Kafka's side).
		rlmm.WithReplicationFactor(1),
		rlmm.WithMinISR(1),
		rlmm.WithLogger(zap.NewNop()),
	}
	opts = append(opts, extra...)
	m, err := rlmm.New(ctx, append(opts, o.Manager...)...)
	if err != nil {
		return nil, fmt.Errorf("strataside: starting the manager: %w", err)
	}
	if err := m.AssignPartitions(ctx, leaders, nil); err != nil {
		m.Close()
		return nil, fmt.Errorf("strataside: assigning %d partitions: %w", len(leaders), err)
	}
	if err := m.WaitReady(ctx, leaders...); err != nil {
		m.Close()
		return nil, fmt.Errorf("strataside: waiting for %d partitions to be ready: %w", len(leaders), err)
	}
	return m, nil
}

// Load runs workloads 2 to 5 on a store in dir, which must be empty: the cold load (manager
// created -> every user partition ready), the process's peak memory and the heap in use after a
// full collection, the lookups, and the restart (the manager closed, created again on the same
// store -> every user partition ready).
func Load(ctx context.Context, s *workload.Spec, dir string, o Options) (measure.Result, error) {
	r := measure.NewResult()
	// What the resident set is made of when it peaks: Go's memory from runtime/metrics, the
	// store's from its Pebble metrics, read through the manager's metrics registry.
	reg := storeMetrics{prometheus.NewRegistry()}
	sampler := measure.StartMemorySampler(sampleInterval, func() (int64, int64) { return storeMemory(reg.Registry) })
	cpu0, err := measure.CPUTime()
	if err != nil {
		sampler.Stop()
		return r, err
	}
	t0 := time.Now()
	m, err := start(ctx, s, dir, o, s.Partitions, rlmm.WithMetrics(reg))
	if err != nil {
		sampler.Stop()
		return r, err
	}
	r.Duration(measure.ColdLoadMs, time.Since(t0))
	cpu1, err := measure.CPUTime()
	if err != nil {
		sampler.Stop()
		m.Close()
		return r, err
	}
	r.Duration(measure.ColdLoadCPUMs, cpu1-cpu0)
	// Read before anything else runs: the peak so far is the cold load's (and the start's).
	rss, err := measure.PeakRSS()
	mem, serr := sampler.Stop()
	if err = errors.Join(err, serr); err != nil {
		m.Close()
		return r, err
	}
	r.Metrics[measure.PeakRSSBytes] = float64(rss)
	mem.Record(r)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.Metrics[measure.HeapAfterGCBytes] = float64(ms.HeapAlloc)

	if err := lookups(s, m, r); err != nil {
		m.Close()
		return r, err
	}
	if err := m.Close(); err != nil {
		return r, fmt.Errorf("strataside: closing the manager: %w", err)
	}
	disk, err := measure.DirBytes(dir)
	if err != nil {
		return r, err
	}
	r.Metrics[measure.DiskBytes] = float64(disk)

	t1 := time.Now()
	m, err = start(ctx, s, dir, o, s.Partitions)
	if err != nil {
		return r, fmt.Errorf("strataside: restart: %w", err)
	}
	r.Duration(measure.RestartMs, time.Since(t1))
	var fetched int64
	for _, st := range m.Stats() {
		fetched += st.Fetched
	}
	r.Metrics[measure.RestartFetched] = float64(fetched)
	if err := m.Close(); err != nil {
		return r, fmt.Errorf("strataside: closing the restarted manager: %w", err)
	}
	return r, nil
}

// sampleInterval is how often the cold load's memory is sampled.
const sampleInterval = 25 * time.Millisecond

// storeMetrics is a metrics registry of the store's metrics (cache.NewCollector) alone: the
// manager's other collectors are accepted and left out, so that sampling reads only what it
// reports.
type storeMetrics struct{ *prometheus.Registry }

func (r storeMetrics) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	store := false
	for d := range ch {
		store = store || strings.Contains(d.String(), `fqName: "strata_cache_`)
	}
	if !store {
		return nil
	}
	return r.Registry.Register(c)
}

func (r storeMetrics) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// storeMemory reads the store's memtables and block cache from the manager's metrics.
func storeMemory(reg *prometheus.Registry) (memtables, blockCache int64) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, 0
	}
	for _, mf := range mfs {
		if len(mf.GetMetric()) != 1 {
			continue
		}
		v := int64(mf.GetMetric()[0].GetGauge().GetValue())
		switch mf.GetName() {
		case "strata_cache_memtable_bytes":
			memtables = v
		case "strata_cache_block_cache_bytes":
			blockCache = v
		}
	}
	return memtables, blockCache
}

// lookups runs workload 4: segment-for-offset lookups of the keys both sides draw alike, first
// at random, then as consumers reading through segments make them.
func lookups(s *workload.Spec, m *rlmm.Manager, r measure.Result) error {
	keys := workload.NewLookupKeys(s.LookupSeed)
	if err := timeLookups(s, m, r, func() workload.Key { return s.NextKey(keys) },
		measure.LookupP50Ns, measure.LookupP99Ns, measure.InfoLookupChecksum); err != nil {
		return err
	}
	consumers := s.NewConsumerKeys(s.LookupSeed)
	return timeLookups(s, m, r, consumers.Next,
		measure.ConsumerLookupP50Ns, measure.ConsumerLookupP99Ns, measure.InfoConsumerChecksum)
}

func timeLookups(s *workload.Spec, m *rlmm.Manager, r measure.Result, next func() workload.Key, p50, p99, checksumInfo string) error {
	latencies := make([]time.Duration, s.Lookups)
	var checksum int64
	for i := range s.LookupWarmup + s.Lookups {
		key := next()
		tp := s.Partitions[key.Partition]
		t := time.Now()
		md, ok, err := m.SegmentFor(tp, 0, key.Offset)
		took := time.Since(t)
		want := s.SegmentStart(key.Offset)
		if err != nil {
			return fmt.Errorf("strataside: lookup %d of %s offset %d: %w", i, tp, key.Offset, err)
		}
		if !ok || md.StartOffset != want {
			got := "none"
			if ok {
				got = strconv.FormatInt(md.StartOffset, 10)
			}
			return fmt.Errorf("strataside: lookup %d of %s offset %d: want the segment starting at %d, got %s", i, tp, key.Offset, want, got)
		}
		if i >= s.LookupWarmup {
			latencies[i-s.LookupWarmup] = took
			checksum += want
		}
	}
	r.Duration(p50, measure.Percentile(latencies, 0.50))
	r.Duration(p99, measure.Percentile(latencies, 0.99))
	r.Info[checksumInfo] = strconv.FormatInt(checksum, 10)
	return nil
}

// Publish runs workload 1 on a fresh store in dir: a manager assigned only tp (a user partition
// with no events yet) adds segments and finishes them one call at a time, each call returning
// once the manager has applied its record.
func Publish(ctx context.Context, s *workload.Spec, dir string, tp proto.TopicIDPartition, o Options) (measure.Result, error) {
	r := measure.NewResult()
	m, err := start(ctx, s, dir, o, []proto.TopicIDPartition{tp})
	if err != nil {
		return r, err
	}
	defer m.Close()
	adds := make([]time.Duration, s.PublishSegments)
	finishes := make([]time.Duration, s.PublishSegments)
	for i := range s.PublishWarmup + s.PublishSegments {
		md := s.NewSegment(tp, i, time.Now().UnixMilli())
		t0 := time.Now()
		if err := m.AddSegment(ctx, md); err != nil {
			return r, fmt.Errorf("strataside: adding segment %d of %s: %w", i, tp, err)
		}
		t1 := time.Now()
		if err := m.UpdateSegment(ctx, workload.Finished(md, time.Now().UnixMilli())); err != nil {
			return r, fmt.Errorf("strataside: finishing segment %d of %s: %w", i, tp, err)
		}
		t2 := time.Now()
		if i >= s.PublishWarmup {
			adds[i-s.PublishWarmup] = t1.Sub(t0)
			finishes[i-s.PublishWarmup] = t2.Sub(t1)
		}
	}
	if err := m.Close(); err != nil {
		return r, fmt.Errorf("strataside: closing the manager: %w", err)
	}
	r.Duration(measure.AddP50Ns, measure.Percentile(adds, 0.50))
	r.Duration(measure.AddP99Ns, measure.Percentile(adds, 0.99))
	r.Duration(measure.FinishP50Ns, measure.Percentile(finishes, 0.50))
	r.Duration(measure.FinishP99Ns, measure.Percentile(finishes, 0.99))
	return r, nil
}
