package rlmm

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/health"
	"github.com/stratalog/strata/internal/promtest"
	"github.com/stratalog/strata/proto"
)

var (
	probe  = promtest.Get
	scrape = promtest.Scrape
	expect = promtest.Expect
)

func newMetricsManager(t *testing.T, opts ...Option) (*Manager, *prometheus.Registry, http.Handler, *kfake.Cluster) {
	t.Helper()
	c := newCluster(t)
	reg := prometheus.NewRegistry()
	m := newManager(t, c, t.TempDir(), append([]Option{WithMetrics(reg)}, opts...)...)
	h := health.Handler(health.WithGatherer(reg), health.WithReadiness("rlmm", m.CheckReady), health.WithLiveness("rlmm", m.CheckLive))
	return m, reg, h, c
}

// After N adds and M finishes the counts match, and lag is zero once ready.
func TestMetricsCountWrites(t *testing.T) {
	m, _, h, c := newMetricsManager(t)
	ctx := ctxT(t)
	// Records already in metadata partition 2 before assignment: the manager loads them.
	raw := rawClient(t, c)
	old := segment(tp1, 0, 9)
	produceRaw(t, raw, 2, encode(t, old), encode(t, finish(old, proto.CopySegmentFinished)))
	assignReady(t, m, []proto.TopicIDPartition{tp0, tp1}, []proto.TopicIDPartition{tp3})
	expect(t, scrape(t, h), map[string]float64{
		`strata_rlmm_applied_offset{metadata_partition="2"}`: 2,
		`strata_rlmm_end_offset{metadata_partition="2"}`:     2,
		`strata_rlmm_lag_records{metadata_partition="2"}`:    0,
		`strata_rlmm_ready{metadata_partition="2"}`:          1,
		`strata_rlmm_ready{metadata_partition="4"}`:          1,
		`strata_rlmm_halted{metadata_partition="2"}`:         0,
		`strata_rlmm_partitions{state="ready"}`:              3,
		`strata_rlmm_partitions{state="loading"}`:            0,
	})

	const adds, finishes = 5, 3
	var segs []*proto.SegmentMetadata
	for i := range adds {
		s := segment(tp0, int64(i)*10, int64(i)*10+9)
		if err := m.AddSegment(ctx, s); err != nil {
			t.Fatal(err)
		}
		segs = append(segs, s)
	}
	for _, s := range segs[:finishes] {
		if err := m.UpdateSegment(ctx, finish(s, proto.CopySegmentFinished)); err != nil {
			t.Fatal(err)
		}
	}
	// An update of a segment nobody added is dropped; a publish after it shows it was applied.
	produceRaw(t, raw, 2, encode(t, finish(segment(tp0, 100, 109), proto.CopySegmentFinished)))
	if err := m.UpdateSegment(ctx, finish(segs[4], proto.CopySegmentFinished)); err != nil {
		t.Fatal(err)
	}
	// A write to an unassigned partition fails and is counted.
	other := proto.TopicIDPartition{TopicID: topicID, Topic: "foo", Partition: 4}
	for mp := proto.MetadataPartition(other, 5); mp == 2 || mp == 4; mp = proto.MetadataPartition(other, 5) {
		other.Partition++
	}
	if err := m.AddSegment(ctx, segment(other, 0, 9)); err == nil {
		t.Fatal("write to an unassigned metadata partition succeeded")
	}

	got := scrape(t, h)
	const records = 2 + adds + finishes + 1 + 1
	expect(t, got, map[string]float64{
		`strata_rlmm_publish_duration_seconds_count{event="add_segment"}`:                       adds,
		`strata_rlmm_publish_duration_seconds_count{event="update_segment"}`:                    finishes + 1,
		`strata_rlmm_publish_duration_seconds_count{event="partition_delete"}`:                  0,
		`strata_rlmm_publish_errors_total{event="add_segment"}`:                                 1,
		`strata_rlmm_applied_offset{metadata_partition="2"}`:                                    records,
		`strata_rlmm_end_offset{metadata_partition="2"}`:                                        records,
		`strata_rlmm_lag_records{metadata_partition="2"}`:                                       0,
		`strata_rlmm_apply_batch_records_sum`:                                                   records,
		`strata_rlmm_dropped_records_total{metadata_partition="2",reason="unknown_segment"}`:    1,
		`strata_rlmm_dropped_records_total{metadata_partition="2",reason="invalid_transition"}`: 0,
		`strata_rlmm_skipped_records_total{metadata_partition="2",reason="undecodable"}`:        0,
		// KIP-963's gauges, for the partitions this broker leads: tp0 has 5 segments of 100
		// bytes, tp1 the one loaded at assignment; tp3 is followed.
		`strata_remote_log_metadata_count{partition="0",topic="foo"}`: adds,
		`strata_remote_log_size_bytes{partition="0",topic="foo"}`:     adds * 100,
		`strata_remote_log_metadata_count{partition="1",topic="foo"}`: 1,
		`strata_remote_log_size_bytes{partition="1",topic="foo"}`:     100,
		`strata_remote_log_metadata_count{partition="3",topic="foo"}`: promtest.Absent,
	})
	if got[`strata_rlmm_fetched_records_total{metadata_partition="2"}`] < records {
		t.Errorf("fetched %v records of metadata partition 2, want at least %d", got[`strata_rlmm_fetched_records_total{metadata_partition="2"}`], records)
	}
	if got[`strata_rlmm_apply_duration_seconds_count`] < 1 || got[`strata_cache_disk_usage_bytes`] <= 0 {
		t.Errorf("apply count %v, disk usage %v", got[`strata_rlmm_apply_duration_seconds_count`], got[`strata_cache_disk_usage_bytes`])
	}
	if _, ok := got[`strata_cache_block_cache_hits_total`]; !ok {
		t.Error("no block-cache metric")
	}
	kafka := 0
	for k := range got {
		if strings.HasPrefix(k, "strata_rlmm_kafka_") {
			kafka++
		}
	}
	if kafka == 0 {
		t.Error("no franz-go client metric (strata_rlmm_kafka_*)")
	}
	if code, body := probe(t, h, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d %s", code, body)
	}

	// Deleting a partition's segments brings KIP-963's gauges down.
	for _, s := range segs {
		for _, st := range []proto.SegmentState{proto.DeleteSegmentStarted, proto.DeleteSegmentFinished} {
			if err := m.UpdateSegment(ctx, finish(s, st)); err != nil {
				t.Fatal(err)
			}
		}
	}
	expect(t, scrape(t, h), map[string]float64{
		`strata_remote_log_metadata_count{partition="0",topic="foo"}`: 0,
		`strata_remote_log_size_bytes{partition="0",topic="foo"}`:     0,
	})
}

// A poison record shows as halted with its offset, on /metrics and /readyz, until skipped.
func TestMetricsHaltedPartition(t *testing.T) {
	m, _, h, c := newMetricsManager(t)
	ctx := ctxT(t)
	assignReady(t, m, []proto.TopicIDPartition{tp0}, []proto.TopicIDPartition{tp3})
	raw := rawClient(t, c)
	good := segment(tp0, 0, 10)
	produceRaw(t, raw, 2, encode(t, good), []byte{0x01, 0x09, 0x00}, encode(t, finish(good, proto.CopySegmentFinished)))
	var halt *HaltError
	deadline := time.Now().Add(20 * time.Second)
	for !errors.As(m.Ready(tp0), &halt) {
		if time.Now().After(deadline) {
			t.Fatal("tp0 never halted")
		}
		m.WaitReady(ctxWithin(t, 200*time.Millisecond), tp0)
	}
	expect(t, scrape(t, h), map[string]float64{
		`strata_rlmm_halted{metadata_partition="2"}`:         1,
		`strata_rlmm_halted_offset{metadata_partition="2"}`:  1,
		`strata_rlmm_ready{metadata_partition="2"}`:          0,
		`strata_rlmm_applied_offset{metadata_partition="2"}`: 1,
		`strata_rlmm_halted{metadata_partition="4"}`:         0,
		`strata_rlmm_ready{metadata_partition="4"}`:          1,
		`strata_rlmm_partitions{state="halted"}`:             1,
		`strata_rlmm_partitions{state="ready"}`:              1,
	})
	code, body := probe(t, h, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "rlmm: rlmm: metadata partition 2 halted at offset 1") {
		t.Fatalf("/readyz of a halted manager = %d %q", code, body)
	}
	if code, _ := probe(t, h, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz of a halted manager = %d; a halt is not a reason to restart", code)
	}
	if err := m.Skip(2, 1, "garbage written by a test"); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitReady(ctx, tp0); err != nil {
		t.Fatal(err)
	}
	// The finish after the poison record is applied: a write after it waits for it.
	if err := m.UpdateSegment(ctx, finish(good, proto.DeleteSegmentStarted)); err != nil {
		t.Fatal(err)
	}
	expect(t, scrape(t, h), map[string]float64{
		`strata_rlmm_halted{metadata_partition="2"}`:                                  0,
		`strata_rlmm_halted_offset{metadata_partition="2"}`:                           promtest.Absent,
		`strata_rlmm_ready{metadata_partition="2"}`:                                   1,
		`strata_rlmm_lag_records{metadata_partition="2"}`:                             0,
		`strata_rlmm_skipped_records_total{metadata_partition="2",reason="operator"}`: 1,
	})
	if code, body := probe(t, h, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after the skip = %d %q", code, body)
	}
}

func TestMetricsSkippedUndecodable(t *testing.T) {
	m, _, h, c := newMetricsManager(t, WithSkipBadRecords(true))
	assignReady(t, m, []proto.TopicIDPartition{tp0}, nil)
	produceRaw(t, rawClient(t, c), 2, []byte("not a record"), nil)
	if err := m.AddSegment(ctxT(t), segment(tp0, 0, 10)); err != nil {
		t.Fatal(err)
	}
	expect(t, scrape(t, h), map[string]float64{
		`strata_rlmm_skipped_records_total{metadata_partition="2",reason="undecodable"}`: 2,
		`strata_rlmm_applied_offset{metadata_partition="2"}`:                             3,
	})
}

// One open manager per registry: a second fails with ErrConfig rather than mixing its state
// with the first's; after Close the registry takes a new one, and the closed one's state is gone.
func TestMetricsOneManagerPerRegistry(t *testing.T) {
	c := newCluster(t)
	reg := prometheus.NewRegistry()
	m := newManager(t, c, t.TempDir(), WithMetrics(reg))
	assignReady(t, m, []proto.TopicIDPartition{tp0}, nil)
	if _, err := New(ctxT(t), WithBootstrapServers(c.ListenAddrs()...), WithCacheDir(t.TempDir()), WithMetadataPartitions(5),
		WithReplicationFactor(1), WithMinISR(1), WithMetrics(reg)); !errors.Is(err, ErrConfig) {
		t.Fatalf("second manager on one registry: %v", err)
	}
	h := health.Handler(health.WithGatherer(reg))
	if _, ok := scrape(t, h)[`strata_rlmm_ready{metadata_partition="2"}`]; !ok {
		t.Fatal("the first manager's state is gone after the second failed")
	}
	m.Close()
	if _, ok := scrape(t, h)[`strata_rlmm_ready{metadata_partition="2"}`]; ok {
		t.Fatal("a closed manager's state is still reported")
	}
	m2 := newManager(t, c, t.TempDir(), WithMetrics(reg))
	assignReady(t, m2, []proto.TopicIDPartition{tp0}, nil)
	if v := scrape(t, h)[`strata_rlmm_ready{metadata_partition="2"}`]; v != 1 {
		t.Fatalf("ready of the second manager = %v", v)
	}
}

// BenchmarkMetricsHooks is what the instrumentation adds: to the consumer loop per fetched
// partition (fetch), per dropped record (drop) and per store write (apply), and to each publish.
// None allocates.
func BenchmarkMetricsHooks(b *testing.B) {
	met, err := newMetrics(prometheus.NewRegistry(), 50)
	if err != nil {
		b.Fatal(err)
	}
	rec := &proto.SegmentMetadataUpdate{}
	var perr error
	for _, bc := range []struct {
		name string
		fn   func(i int)
	}{
		{"fetch", func(i int) { met.fetch(int32(i%50), 100, int64(i)) }},
		{"drop", func(i int) { met.drop(int32(i%50), cache.UnknownSegment) }},
		{"apply", func(int) { met.applied(100, time.Millisecond) }},
		{"publish", func(int) { met.published(rec, time.Now(), &perr) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := range b.N {
				bc.fn(i)
			}
		})
	}
}
