package tier

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratalog/strata/proto"
)

// WithMetrics registers the Tierer's metrics on reg: Kafka's KIP-963 tiered-storage metrics for
// the work it does (copy, delete and fetch requests, errors and bytes by topic; copy and delete
// lag by topic and partition), under Prometheus names (the README maps each to Kafka's). Every
// Tierer given the same reg reports into the same series, so a broker's Tierer and a remover's
// add up. Nothing is registered without it.
func WithMetrics(reg prometheus.Registerer) Option {
	return optionFunc(func(t *Tierer) {
		if reg == nil {
			t.met = nil
			return
		}
		var err error
		if t.met, err = newMetrics(reg); err != nil {
			t.optErrs = append(t.optErrs, fmt.Errorf("%w: WithMetrics: %w", ErrConfig, err))
		}
	})
}

type metrics struct {
	copyRequests, copyErrors, copyBytes    *prometheus.CounterVec
	deleteRequests, deleteErrors           *prometheus.CounterVec
	fetchRequests, fetchErrors, fetchBytes *prometheus.CounterVec
	copyLagSegments, copyLagBytes          *prometheus.GaugeVec
	deleteLagSegments, deleteLagBytes      *prometheus.GaugeVec
}

// register registers c on reg, or returns the collector already registered under the same
// description, so that Tierers share their series.
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

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	var errs []error
	counter := func(name, help string) *prometheus.CounterVec {
		c, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Name: name, Help: help}, []string{"topic"}))
		errs = append(errs, err)
		return c
	}
	gauge := func(name, help string) *prometheus.GaugeVec {
		g, err := register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "strata", Name: name, Help: help}, []string{"topic", "partition"}))
		errs = append(errs, err)
		return g
	}
	m := &metrics{
		copyRequests: counter("remote_copy_requests_total", "Kafka's RemoteCopyRequestsPerSec: segment uploads started (after COPY_SEGMENT_STARTED is published)."),
		copyErrors:   counter("remote_copy_errors_total", "Kafka's RemoteCopyErrorsPerSec: Copy calls that failed at any step."),
		copyBytes:    counter("remote_copy_bytes_total", "Kafka's RemoteCopyBytesPerSec: segment bytes copied, counted when COPY_SEGMENT_FINISHED is published."),
		deleteRequests: counter("remote_delete_requests_total",
			"Kafka's RemoteDeleteRequestsPerSec: segments whose deletion from remote storage was attempted."),
		deleteErrors:  counter("remote_delete_errors_total", "Kafka's RemoteDeleteErrorsPerSec: segment deletions that failed at any step."),
		fetchRequests: counter("remote_fetch_requests_total", "Kafka's RemoteFetchRequestsPerSec: Fetch calls."),
		fetchErrors:   counter("remote_fetch_errors_total", "Kafka's RemoteFetchErrorsPerSec: Fetch calls that failed, and fetched streams whose read failed."),
		fetchBytes:    counter("remote_fetch_bytes_total", "Kafka's RemoteFetchBytesPerSec: bytes read from fetched streams."),
		copyLagSegments: gauge("remote_copy_lag_segments",
			"Kafka's RemoteCopyLagSegments: local segments eligible for copy and not yet copied, as the broker last reported them (Tierer.ReportCopyLag)."),
		copyLagBytes: gauge("remote_copy_lag_bytes", "Kafka's RemoteCopyLagBytes: bytes of those segments, as the broker last reported them."),
		deleteLagSegments: gauge("remote_delete_lag_segments",
			"Kafka's RemoteDeleteLagSegments: segments of the partition's latest Delete not yet DELETE_SEGMENT_FINISHED."),
		deleteLagBytes: gauge("remote_delete_lag_bytes", "Kafka's RemoteDeleteLagBytes: bytes of those segments."),
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("tier: registering metrics: %w", err)
	}
	return m, nil
}

func partitionLabel(tp proto.TopicIDPartition) string { return strconv.Itoa(int(tp.Partition)) }

// ReportCopyLag records Kafka's copy lag of tp: the local segments eligible for copy (closed
// and below the last stable offset) not yet copied, and their bytes. Only the broker knows
// its local log, so its tiering policy reports it, as Kafka's RemoteLogManager does after each
// copy. Without WithMetrics it does nothing.
func (t *Tierer) ReportCopyLag(tp proto.TopicIDPartition, segments int, bytes int64) {
	if t.met == nil {
		return
	}
	t.met.copyLagSegments.WithLabelValues(tp.Topic, partitionLabel(tp)).Set(float64(segments))
	t.met.copyLagBytes.WithLabelValues(tp.Topic, partitionLabel(tp)).Set(float64(bytes))
}

// ForgetPartition removes tp's copy and delete lag series, for a partition this broker no
// longer leads (Kafka resets them then).
func (t *Tierer) ForgetPartition(tp proto.TopicIDPartition) {
	if t.met == nil {
		return
	}
	for _, g := range []*prometheus.GaugeVec{t.met.copyLagSegments, t.met.copyLagBytes, t.met.deleteLagSegments, t.met.deleteLagBytes} {
		g.DeleteLabelValues(tp.Topic, partitionLabel(tp))
	}
}

func (m *metrics) copyStarted(tp proto.TopicIDPartition) {
	if m != nil {
		m.copyRequests.WithLabelValues(tp.Topic).Inc()
	}
}

func (m *metrics) copyFinished(tp proto.TopicIDPartition, bytes int32) {
	if m != nil {
		m.copyBytes.WithLabelValues(tp.Topic).Add(float64(bytes))
	}
}

func (m *metrics) copyFailed(tp proto.TopicIDPartition) {
	if m != nil {
		m.copyErrors.WithLabelValues(tp.Topic).Inc()
	}
}

func (m *metrics) deleteStarted(tp proto.TopicIDPartition, n int) {
	if m != nil {
		m.deleteRequests.WithLabelValues(tp.Topic).Add(float64(n))
	}
}

func (m *metrics) deleteFailed(tp proto.TopicIDPartition) {
	if m != nil {
		m.deleteErrors.WithLabelValues(tp.Topic).Inc()
	}
}

// deleteLag sets, for each partition of segs, the delete lag to its segments in segs: the
// work of this Delete, as Kafka sets it at the start of each cleanup.
func (m *metrics) deleteLag(segs []proto.SegmentMetadata) {
	if m == nil {
		return
	}
	type lag struct{ n, bytes int64 }
	by := map[proto.TopicIDPartition]lag{}
	for i := range segs {
		l := by[segs[i].SegmentID.TopicIDPartition]
		l.n++
		l.bytes += int64(segs[i].SegmentSizeInBytes)
		by[segs[i].SegmentID.TopicIDPartition] = l
	}
	for tp, l := range by {
		m.deleteLagSegments.WithLabelValues(tp.Topic, partitionLabel(tp)).Set(float64(l.n))
		m.deleteLagBytes.WithLabelValues(tp.Topic, partitionLabel(tp)).Set(float64(l.bytes))
	}
}

// deleted takes a segment whose DELETE_SEGMENT_FINISHED is published off its partition's lag.
func (m *metrics) deleted(seg *proto.SegmentMetadata) {
	if m == nil {
		return
	}
	tp := seg.SegmentID.TopicIDPartition
	m.deleteLagSegments.WithLabelValues(tp.Topic, partitionLabel(tp)).Dec()
	m.deleteLagBytes.WithLabelValues(tp.Topic, partitionLabel(tp)).Sub(float64(seg.SegmentSizeInBytes))
}

// fetchDone counts a Fetch call and its failure.
func (m *metrics) fetchDone(tp proto.TopicIDPartition, err error) {
	if m == nil {
		return
	}
	m.fetchRequests.WithLabelValues(tp.Topic).Inc()
	if err != nil {
		m.fetchErrors.WithLabelValues(tp.Topic).Inc()
	}
}

// counting wraps a fetched stream to count its bytes, and its failure as a fetch error.
func (m *metrics) counting(tp proto.TopicIDPartition, rc io.ReadCloser) io.ReadCloser {
	if m == nil {
		return rc
	}
	return &countingReader{rc: rc, bytes: m.fetchBytes.WithLabelValues(tp.Topic), errs: m.fetchErrors.WithLabelValues(tp.Topic)}
}

type countingReader struct {
	rc     io.ReadCloser
	bytes  prometheus.Counter
	errs   prometheus.Counter
	failed bool
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.bytes.Add(float64(n))
	if err != nil && err != io.EOF && !r.failed {
		r.failed = true
		r.errs.Inc()
	}
	return n, err
}

func (r *countingReader) Close() error { return r.rc.Close() }
