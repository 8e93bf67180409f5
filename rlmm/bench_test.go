package rlmm

import (
	"context"
	"flag"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/stratalog/strata/proto"
)

var benchEvents = flag.Int("rlmm.events", 1_000_000, "events in the topic for BenchmarkRestart")

func quietManager(b *testing.B, c *kfake.Cluster, dir string, opts ...Option) *Manager {
	b.Helper()
	m, err := New(context.Background(), append([]Option{
		WithBootstrapServers(c.ListenAddrs()...), WithCacheDir(dir), WithMetadataPartitions(5),
		WithReplicationFactor(1), WithMinISR(1), WithLogger(zap.NewNop()),
	}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

// BenchmarkPublishLatency measures publish-to-visible latency against kfake: each add and each
// finish returns only once the manager's own store has applied it. linger=0 is the manager's
// own setting; linger=10ms is franz-go's default, which the manager overrides: it shows what a
// linger costs every write.
func BenchmarkPublishLatency(b *testing.B) {
	for _, c := range []struct {
		name string
		opts []Option
	}{
		{"linger=0", nil},
		{"linger=10ms", []Option{WithClientOptions(kgo.ProducerLinger(10 * time.Millisecond))}},
	} {
		b.Run(c.name, func(b *testing.B) { benchPublishLatency(b, c.opts...) })
	}
}

func benchPublishLatency(b *testing.B, opts ...Option) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	m := quietManager(b, c, b.TempDir(), opts...)
	defer m.Close()
	ctx := context.Background()
	if err := m.AssignPartitions(ctx, []proto.TopicIDPartition{tp0}, nil); err != nil {
		b.Fatal(err)
	}
	if err := m.WaitReady(ctx, tp0); err != nil {
		b.Fatal(err)
	}
	var adds, finishes []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		s := segment(tp0, int64(i)*100, int64(i)*100+99)
		t0 := time.Now()
		if err := m.AddSegment(ctx, s); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := m.UpdateSegment(ctx, finish(s, proto.CopySegmentFinished)); err != nil {
			b.Fatal(err)
		}
		adds, finishes = append(adds, t1.Sub(t0)), append(finishes, time.Since(t1))
	}
	b.ReportMetric(float64(percentile(adds, 0.5).Microseconds()), "add-p50-µs")
	b.ReportMetric(float64(percentile(adds, 0.99).Microseconds()), "add-p99-µs")
	b.ReportMetric(float64(percentile(finishes, 0.5).Microseconds()), "finish-p50-µs")
	b.ReportMetric(float64(percentile(finishes, 0.99).Microseconds()), "finish-p99-µs")
}

// fillTopic writes n events (n/2 segments, each COPY_SEGMENT_STARTED then
// COPY_SEGMENT_FINISHED) over 1,000 user partitions, in Kafka's byte format, and returns the user
// partitions.
func fillTopic(b *testing.B, c *kfake.Cluster, n int) []proto.TopicIDPartition {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	tps := make([]proto.TopicIDPartition, 1000)
	for i := range tps {
		tps[i] = proto.TopicIDPartition{TopicID: proto.NewUUID(), Topic: "bench", Partition: int32(i % 10)}
	}
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			firstErr = err
			mu.Unlock()
		}
		wg.Done()
	}
	for i := 0; i < n/2; i++ {
		tp := tps[i%len(tps)]
		off := int64(i/len(tps)) * 1000
		s := segment(tp, off, off+999)
		mp := proto.MetadataPartition(tp, 5)
		wg.Add(2)
		add, _ := proto.Encode(s)
		fin, _ := proto.Encode(finish(s, proto.CopySegmentFinished))
		cl.Produce(context.Background(), &kgo.Record{Topic: proto.TopicName, Partition: mp, Value: add}, promise)
		cl.Produce(context.Background(), &kgo.Record{Topic: proto.TopicName, Partition: mp, Value: fin}, promise)
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	return tps
}

func timeToReady(b *testing.B, m *Manager, tps []proto.TopicIDPartition) {
	b.Helper()
	ctx := context.Background()
	if err := m.AssignPartitions(ctx, tps, nil); err != nil {
		b.Fatal(err)
	}
	if err := m.WaitReady(ctx, tps...); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRestart compares, in one run over the same topic of -rlmm.events events, a cold load
// into an empty store (what Kafka does at every restart: replay from the start) with a restart
// that resumes from the stored offsets. Run with -benchtime 1x.
func BenchmarkRestart(b *testing.B) {
	for b.Loop() {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(5, proto.TopicName))
		if err != nil {
			b.Fatal(err)
		}
		tps := fillTopic(b, c, *benchEvents)
		dir := b.TempDir()

		// Both times run from creating the manager (opening its store included) to every
		// partition ready: what a broker's restart waits for.
		t0 := time.Now()
		m := quietManager(b, c, dir)
		timeToReady(b, m, tps)
		cold := time.Since(t0)
		m.Close()
		runtime.GC()

		t1 := time.Now()
		m2 := quietManager(b, c, dir)
		opened := time.Since(t1)
		timeToReady(b, m2, tps)
		resume := time.Since(t1)
		b.ReportMetric(float64(opened.Microseconds())/1000, "resume-open-ms")
		fetched := int64(0)
		for _, s := range m2.Stats() {
			fetched += s.Fetched
		}
		m2.Close()
		c.Close()

		b.ReportMetric(float64(cold.Milliseconds()), "replay-ms")
		b.ReportMetric(float64(*benchEvents)/cold.Seconds(), "cold-events/s")
		b.ReportMetric(float64(resume.Microseconds())/1000, "resume-ms")
		b.ReportMetric(cold.Seconds()/resume.Seconds(), "ratio")
		b.ReportMetric(float64(fetched), "resume-fetched")
		if os.Getenv("STRATA_BENCH_VERBOSE") != "" {
			b.Logf("events %d: replay %s, resume %s", *benchEvents, cold, resume)
		}
	}
}
