package rlmm

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
)

// WithMetrics registers the manager's metrics on reg (nothing is registered anywhere without
// it): per metadata partition its progress, readiness, halts, dropped and skipped records;
// publish latency by event; apply batch size and latency; Kafka's KIP-963 remote log metadata
// count and size per leader partition; the store's Pebble metrics (cache.NewCollector); and
// franz-go's client metrics (kprom, under strata_rlmm_kafka_). The README lists every name.
//
// Counters and histograms are shared by every manager registered on reg (registering them
// again reuses them); what describes one manager's state is registered by New and
// unregistered by Close, so only one open manager may report on a registry at a time: New
// fails with ErrConfig for a second. Wrap reg with prometheus.WrapRegistererWith to tell
// several apart.
func WithMetrics(reg prometheus.Registerer) Option {
	return optionFunc(func(c *config) { c.metrics = reg })
}

// Label values of the skipped-records counter.
const (
	skipUndecodable = iota // skipped by the consumer under WithSkipBadRecords
	skipOperator           // skipped by Manager.Skip
	numSkipReasons
)

var skipReasonNames = [numSkipReasons]string{"undecodable", "operator"}

// dropReasons are the reasons the store drops a record, each with its counter made up front.
var dropReasons = []cache.DropReason{cache.InvalidTransition, cache.UnknownSegment, cache.UnsupportedRecord,
	cache.InvalidRecord, cache.PartitionMismatch}

// Events of the publish histogram, by record type.
const (
	eventAddSegment = iota
	eventUpdateSegment
	eventPartitionDelete
	numEvents
)

var eventNames = [numEvents]string{"add_segment", "update_segment", "partition_delete"}

// metrics is a manager's instrumentation. A nil *metrics (no WithMetrics) does nothing, so the
// hooks in the consumer loop and in publish cost one nil check then.
type metrics struct {
	reg   prometheus.Registerer
	state *stateCollector
	store prometheus.Collector
	kprom *kprom.Metrics

	fetched, rebuilds, dropped, skipped *prometheus.CounterVec
	publishLatency                      [numEvents]prometheus.Observer
	publishErrors                       [numEvents]prometheus.Counter
	applyBatch, applyLatency            prometheus.Observer

	mu  sync.Mutex                    // held to create an entry of mps
	mps []atomic.Pointer[partMetrics] // by metadata partition, made on first use
}

// partMetrics holds one metadata partition's counters, resolved once so that the consumer loop
// increments them without a label lookup or an allocation.
type partMetrics struct {
	label    string
	hwm      atomic.Int64 // high watermark of the latest fetch of the partition; 0 before any
	fetched  prometheus.Counter
	rebuilds prometheus.Counter
	dropped  [len(dropReasonNames)]prometheus.Counter // by cache.DropReason
	skipped  [numSkipReasons]prometheus.Counter
}

// dropReasonNames holds, by cache.DropReason, the label value of each reason.
var dropReasonNames = func() [6]string {
	var out [6]string
	for _, r := range dropReasons {
		out[r] = snake(r.String())
	}
	return out
}()

// snake turns CamelCase into snake_case, for label values from Go names.
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// register registers c on reg, or returns the collector already registered under the same
// description: counters shared by every manager on one registry.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

// newMetrics registers the manager's metrics on reg, or returns nil when reg is nil. The
// collectors of this manager's state are registered here too, before kprom (which panics on a
// duplicate) is given to a client, so that a second manager on reg fails with an error; they
// report nothing until bind.
func newMetrics(reg prometheus.Registerer, numPartitions int32) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	const ns, sub = "strata", "rlmm"
	counterVec := func(name, help string, labels ...string) (*prometheus.CounterVec, error) {
		return register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, labels))
	}
	met := &metrics{reg: reg, mps: make([]atomic.Pointer[partMetrics], numPartitions)}
	var errs []error
	var err error
	met.fetched, err = counterVec("fetched_records_total", "Records fetched from the metadata partition, duplicates included.", "metadata_partition")
	errs = append(errs, err)
	met.rebuilds, err = counterVec("rebuilds_total", "Times the metadata partition was rebuilt from the log start because records expired before they were applied.", "metadata_partition")
	errs = append(errs, err)
	met.dropped, err = counterVec("dropped_records_total", "Records the store did not apply (they still advance the offset), by reason.", "metadata_partition", "reason")
	errs = append(errs, err)
	met.skipped, err = counterVec("skipped_records_total", "Records skipped without being applied: undecodable (WithSkipBadRecords) or by an operator (Skip).", "metadata_partition", "reason")
	errs = append(errs, err)
	publish, err := register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: ns, Subsystem: sub, Name: "publish_duration_seconds",
		Help:    "Time from a write's call until its record is applied locally (produce with acks=all, then the consumer's apply), for writes that succeed, by event.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	}, []string{"event"}))
	errs = append(errs, err)
	publishErrors, err := counterVec("publish_errors_total", "Writes that failed (not applied, timed out, halted, closed), by event.", "event")
	errs = append(errs, err)
	applyBatch, err := register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: ns, Subsystem: sub, Name: "apply_batch_records",
		Help:    "Records in each batch the consumer applies to the store in one write.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 15),
	}))
	errs = append(errs, err)
	applyLatency, err := register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: ns, Subsystem: sub, Name: "apply_duration_seconds",
		Help:    "Time the store takes to apply one batch, its synced commit included.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	}))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: registering metrics: %w", ErrConfig, err)
	}
	for e := range numEvents {
		met.publishLatency[e] = publish.WithLabelValues(eventNames[e])
		met.publishErrors[e] = publishErrors.WithLabelValues(eventNames[e])
	}
	met.applyBatch, met.applyLatency = applyBatch, applyLatency

	met.state = newStateCollector(met)
	if err := reg.Register(met.state); err != nil {
		return nil, fmt.Errorf("%w: registering metrics (is another manager open on this registry?): %w", ErrConfig, err)
	}
	met.kprom = kprom.NewMetrics(ns, kprom.Registerer(reg), kprom.Subsystem(sub+"_kafka"))
	return met, nil
}

// registerStore adds the store's metrics, once it is open.
func (met *metrics) registerStore(store *cache.Store) error {
	if met == nil {
		return nil
	}
	c := cache.NewCollector(store)
	if err := met.reg.Register(c); err != nil {
		return fmt.Errorf("%w: registering the store's metrics: %w", ErrConfig, err)
	}
	met.store = c
	return nil
}

// bind makes the state collector report m.
func (met *metrics) bind(m *Manager) {
	if met != nil {
		met.state.m.Store(m)
	}
}

// clientOpts returns the franz-go options that report the client's metrics.
func (met *metrics) clientOpts() []kgo.Opt {
	if met == nil {
		return nil
	}
	return []kgo.Opt{kgo.WithHooks(met.kprom)}
}

// unregister removes what describes this manager; kprom removes its own when the client closes.
func (met *metrics) unregister() {
	if met == nil {
		return
	}
	met.reg.Unregister(met.state)
	if met.store != nil {
		met.reg.Unregister(met.store)
	}
}

// part returns mp's counters, making them on first use.
func (met *metrics) part(mp int32) *partMetrics {
	if met == nil || mp < 0 || int(mp) >= len(met.mps) {
		return nil
	}
	if p := met.mps[mp].Load(); p != nil {
		return p
	}
	met.mu.Lock()
	defer met.mu.Unlock()
	if p := met.mps[mp].Load(); p != nil {
		return p
	}
	label := strconv.Itoa(int(mp))
	p := &partMetrics{label: label, fetched: met.fetched.WithLabelValues(label), rebuilds: met.rebuilds.WithLabelValues(label)}
	for _, r := range dropReasons {
		p.dropped[r] = met.dropped.WithLabelValues(label, dropReasonNames[r])
	}
	for i := range numSkipReasons {
		p.skipped[i] = met.skipped.WithLabelValues(label, skipReasonNames[i])
	}
	met.mps[mp].Store(p)
	return p
}

// fetch records one metadata partition's part of a fetch: its records and high watermark.
func (met *metrics) fetch(mp int32, records int, hwm int64) {
	if met == nil {
		return
	}
	if p := met.part(mp); p != nil {
		p.fetched.Add(float64(records))
		if hwm > p.hwm.Load() {
			p.hwm.Store(hwm)
		}
	}
}

func (met *metrics) rebuilt(mp int32) {
	if met == nil {
		return
	}
	if p := met.part(mp); p != nil {
		p.rebuilds.Inc()
	}
}

func (met *metrics) drop(mp int32, r cache.DropReason) {
	if met == nil {
		return
	}
	p := met.part(mp)
	if p == nil {
		return
	}
	if int(r) < len(p.dropped) && p.dropped[r] != nil {
		p.dropped[r].Inc()
		return
	}
	// A reason added to cache since: counted under its own name.
	met.dropped.WithLabelValues(p.label, snake(r.String())).Inc()
}

func (met *metrics) skip(mp int32, reason int) {
	if met == nil {
		return
	}
	if p := met.part(mp); p != nil {
		p.skipped[reason].Inc()
	}
}

// applied records one store write of n records that took d.
func (met *metrics) applied(n int, d time.Duration) {
	if met == nil {
		return
	}
	met.applyBatch.Observe(float64(n))
	met.applyLatency.Observe(d.Seconds())
}

// published records the outcome of a write of r that started at start; err is read when the
// write returns.
func (met *metrics) published(r proto.Record, start time.Time, err *error) {
	if met == nil {
		return
	}
	e := eventAddSegment
	switch r.(type) {
	case *proto.SegmentMetadataUpdate:
		e = eventUpdateSegment
	case *proto.PartitionDeleteMetadata:
		e = eventPartitionDelete
	}
	if *err != nil {
		met.publishErrors[e].Inc()
		return
	}
	met.publishLatency[e].Observe(time.Since(start).Seconds())
}

// stateCollector reads a manager's state at scrape time: what a gauge would otherwise have to
// be kept current for on every applied record.
type stateCollector struct {
	met *metrics
	m   atomic.Pointer[Manager] // nil until bind

	applied, end, lag, ready, halted, haltedOffset *prometheus.Desc
	partitions                                     *prometheus.Desc
	metadataCount, logSize                         *prometheus.Desc
}

func newStateCollector(met *metrics) *stateCollector {
	mp := []string{"metadata_partition"}
	d := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &stateCollector{
		met:          met,
		applied:      d("strata_rlmm_applied_offset", "Next offset of the metadata partition to apply: every record below it is in the store.", mp),
		end:          d("strata_rlmm_end_offset", "End offset (high watermark) of the metadata partition, as last fetched or listed at assignment.", mp),
		lag:          d("strata_rlmm_lag_records", "End offset minus applied offset of the metadata partition.", mp),
		ready:        d("strata_rlmm_ready", "1 when the metadata partition is applied up to the end offset seen when it or its user partitions were assigned, and not halted.", mp),
		halted:       d("strata_rlmm_halted", "1 while the metadata partition is halted at a record it could not decode or apply.", mp),
		haltedOffset: d("strata_rlmm_halted_offset", "Offset of the record a halted metadata partition stopped at; present only while halted.", mp),
		partitions:   d("strata_rlmm_partitions", "Assigned user partitions by state: ready, loading or halted.", []string{"state"}),
		metadataCount: d("strata_remote_log_metadata_count",
			"Kafka's RemoteLogMetadataCount: segments of the partition not yet DELETE_SEGMENT_FINISHED, for ready partitions this broker leads.", []string{"topic", "partition"}),
		logSize: d("strata_remote_log_size_bytes",
			"Kafka's RemoteLogSizeBytes: bytes of the partition's segments not yet DELETE_SEGMENT_FINISHED, for ready partitions this broker leads.", []string{"topic", "partition"}),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.applied, c.end, c.lag, c.ready, c.halted, c.haltedOffset, c.partitions, c.metadataCount, c.logSize} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m.Load()
	if m == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	leaders := map[proto.TopicIDPartition]bool{}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	// What each metadata partition must reach to be ready: the greatest target of what maps to it.
	target := make(map[int32]int64, len(m.mps))
	for mp, st := range m.mps {
		if st.watched {
			target[mp] = st.target
		}
	}
	var nReady, nLoading, nHalted int
	for tp, up := range m.parts {
		target[up.mp] = max(target[up.mp], up.target)
		st := m.mps[up.mp]
		switch {
		case st.halt != nil:
			nHalted++
		case st.applied < up.target:
			nLoading++
		default:
			nReady++
			if up.leader {
				leaders[tp] = true
			}
		}
	}
	for mp, st := range m.mps {
		label := strconv.Itoa(int(mp))
		end := target[mp]
		if p := c.met.part(mp); p != nil {
			end = max(end, p.hwm.Load())
		}
		gauge(c.applied, float64(st.applied), label)
		gauge(c.end, float64(end), label)
		gauge(c.lag, float64(max(0, end-st.applied)), label)
		ready, halted := 0.0, 0.0
		if st.halt != nil {
			halted = 1
			gauge(c.haltedOffset, float64(st.halt.Offset), label)
		} else if st.applied >= target[mp] {
			ready = 1
		}
		gauge(c.ready, ready, label)
		gauge(c.halted, halted, label)
	}
	m.mu.Unlock()
	gauge(c.partitions, float64(nReady), "ready")
	gauge(c.partitions, float64(nLoading), "loading")
	gauge(c.partitions, float64(nHalted), "halted")
	if len(leaders) == 0 {
		return
	}
	// One row per partition in the store; the store answers after Close with ErrClosed, and
	// then there is nothing to report.
	infos, err := m.store.Partitions()
	if err != nil {
		return
	}
	for _, info := range infos {
		if !leaders[info.Partition] {
			continue
		}
		delete(leaders, info.Partition)
		p := strconv.Itoa(int(info.Partition.Partition))
		gauge(c.metadataCount, float64(info.Segments.Total()), info.Partition.Topic, p)
		gauge(c.logSize, float64(info.Bytes), info.Partition.Topic, p)
	}
	// A partition with nothing tiered has no row; Kafka reports it as 0 and 0.
	for tp := range leaders {
		p := strconv.Itoa(int(tp.Partition))
		gauge(c.metadataCount, 0, tp.Topic, p)
		gauge(c.logSize, 0, tp.Topic, p)
	}
}
