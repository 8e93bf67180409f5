package strataside

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/stratalog/strata/bench/internal/measure"
	"github.com/stratalog/strata/bench/internal/workload"
	"github.com/stratalog/strata/proto"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// filled starts an in-process cluster whose metadata topic holds a small workload's events.
func filled(t *testing.T) (*workload.Spec, Options) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(5, proto.TopicName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	s, err := workload.New(workload.Params{
		Brokers: c.ListenAddrs()[0], MetadataPartitions: 5, Events: 4_000,
		Lookups: 200, LookupWarmup: 20, LookupSeed: 9, PublishSegments: 6, PublishWarmup: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := s.Fill(ctxT(t), cl, proto.TopicName); err != nil {
		t.Fatal(err)
	}
	return s, Options{}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestLoad(t *testing.T) {
	s, o := filled(t)
	r, err := Load(ctxT(t), s, t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{measure.ColdLoadMs, measure.PeakRSSBytes, measure.HeapAfterGCBytes,
		measure.LookupP50Ns, measure.LookupP99Ns, measure.RestartMs, measure.RestartFetched} {
		if _, ok := r.Metrics[k]; !ok {
			t.Errorf("no %s in %v", k, r.Metrics)
		}
	}
	// Every lookup found its segment, and they are the keys the workload draws.
	if got, want := r.Info[measure.InfoLookupChecksum], fmt.Sprint(s.LookupChecksum()); got != want {
		t.Errorf("lookup checksum %s, want %s", got, want)
	}
	// Nothing was written between the close and the restart: the restart fetched nothing.
	if got := r.Metrics[measure.RestartFetched]; got != 0 {
		t.Errorf("the restart fetched %v records, want 0", got)
	}
}

func TestPublish(t *testing.T) {
	s, o := filled(t)
	tp := proto.TopicIDPartition{TopicID: proto.NewUUID(), Topic: "bench-publish", Partition: 0}
	r, err := Publish(ctxT(t), s, t.TempDir(), tp, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{measure.AddP50Ns, measure.AddP99Ns, measure.FinishP50Ns, measure.FinishP99Ns} {
		if v, ok := r.Metrics[k]; !ok || v <= 0 {
			t.Errorf("%s = %v (present %v)", k, v, ok)
		}
	}

	// What was published is in the topic: a second manager finds every segment finished.
	m, err := start(ctxT(t), s, t.TempDir(), o, []proto.TopicIDPartition{tp})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	segs, err := m.Segments(tp)
	if err != nil {
		t.Fatal(err)
	}
	if want := s.PublishWarmup + s.PublishSegments; len(segs) != want {
		t.Fatalf("%d segments published, want %d", len(segs), want)
	}
	for _, md := range segs {
		if md.State != proto.CopySegmentFinished {
			t.Errorf("segment at %d is %s", md.StartOffset, md.State)
		}
	}
}

func TestLoadFailsOnAMissingSegment(t *testing.T) {
	s, o := filled(t)
	// A workload that claims more segments than the topic holds: lookups above what was written
	// find nothing, and the run must fail rather than report figures.
	more := *s
	more.SegmentsPerPartition *= 100
	more.LookupWarmup = 0
	if _, err := Load(ctxT(t), &more, t.TempDir(), o); err == nil {
		t.Fatal("Load succeeded with lookups of segments that do not exist")
	}
}
