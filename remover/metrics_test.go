package remover

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/stratalog/strata/internal/promtest"
	"github.com/stratalog/strata/internal/testwait"
	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rsm"
)

// gateStore holds every Delete until release is closed, then fails them while failing is set.
type gateStore struct {
	rsm.Manager
	release chan struct{}
	failing atomic.Bool
}

func (s *gateStore) Delete(ctx context.Context, seg *proto.SegmentMetadata) error {
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	if s.failing.Load() {
		return errCrash
	}
	return s.Manager.Delete(ctx, seg)
}

// The remover's gauges move as it works: pending and in progress while deletions wait on
// storage, done once they finish, failures and retrying while storage refuses.
func TestMetricsFollowTheWork(t *testing.T) {
	c := newCluster(t)
	node := newNode(t, c)
	store := newStorage(t)
	a, b := newTP(0), newTP(1)
	seed(t, node, store, a, 2)
	seed(t, node, store, b, 3)
	mark(t, node, a, 1)
	mark(t, node, b, 1)

	reg := prometheus.NewRegistry()
	gs := &gateStore{Manager: store, release: make(chan struct{})}
	r := mustNew(t, node, gs, WithConcurrency(1), WithBackoff(20*time.Millisecond, 40*time.Millisecond), WithLogger(zap.NewNop()), WithMetrics(reg))
	defer r.Close()
	if err := r.SetOwned(ctxT(t), []int32{0, 1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	scrape := func() map[string]float64 { return promtest.ScrapeRegistry(t, reg) }
	waitFor := func(want map[string]float64) {
		t.Helper()
		var got map[string]float64
		testwait.For(t, 30*time.Second, func() bool {
			got = scrape()
			for k, v := range want {
				if got[k] != v {
					return false
				}
			}
			return true
		}, func() string { return fmt.Sprintf("want %v, got %v", want, got) })
	}
	// One worker: one partition in progress, blocked on storage, the other pending.
	waitFor(map[string]float64{
		`strata_remover_partitions{state="in_progress"}`: 1,
		`strata_remover_partitions{state="pending"}`:     1,
		`strata_remover_owned_metadata_partitions`:       4,
	})
	promtest.Expect(t, scrape(), map[string]float64{
		`strata_remover_partitions_deleted_total`:     0,
		`strata_remover_failures_total`:               0,
		`strata_remover_partitions{state="retrying"}`: 0,
	})
	close(gs.release)
	waitGone(t, node, a)
	waitGone(t, node, b)
	waitFor(map[string]float64{
		`strata_remover_partitions_deleted_total`:        2,
		`strata_remover_partitions{state="in_progress"}`: 0,
		`strata_remover_partitions{state="pending"}`:     0,
	})
	// Through tier, Kafka's delete metrics: one request per segment, and no lag left.
	promtest.Expect(t, scrape(), map[string]float64{
		`strata_remote_delete_requests_total{topic="t0"}`:             2,
		`strata_remote_delete_requests_total{topic="t1"}`:             3,
		`strata_remote_delete_lag_segments{partition="1",topic="t1"}`: 0,
		`strata_remote_delete_errors_total{topic="t1"}`:               promtest.Absent,
	})

	// Storage refuses: failures count up and the partition waits to retry.
	gs.failing.Store(true)
	x := newTP(2)
	seed(t, node, store, x, 1)
	mark(t, node, x, 1)
	testwait.For(t, 30*time.Second, func() bool { return scrape()[`strata_remover_failures_total`] >= 2 },
		func() string { return fmt.Sprint(scrape()) })
	promtest.Expect(t, scrape(), map[string]float64{
		`strata_remover_partitions{state="retrying"}`:                 1,
		`strata_remote_delete_lag_segments{partition="2",topic="t2"}`: 1,
	})
	if scrape()[`strata_remote_delete_errors_total{topic="t2"}`] < 2 {
		t.Errorf("delete errors of t2 = %v, want at least 2", scrape()[`strata_remote_delete_errors_total{topic="t2"}`])
	}
	gs.failing.Store(false)
	waitGone(t, node, x)
	waitFor(map[string]float64{
		`strata_remover_partitions_deleted_total`:     3,
		`strata_remover_partitions{state="retrying"}`: 0,
	})
	r.Close()
	if _, ok := scrape()[`strata_remover_partitions_deleted_total`]; ok {
		t.Error("a closed remover is still reported")
	}
}

// A group client's franz-go metrics go to the remover's registry, for one group client at a
// time, and leave with it.
func TestMetricsGroupClient(t *testing.T) {
	c := newCluster(t)
	reg := prometheus.NewRegistry()
	r := mustNew(t, newNode(t, c), newStorage(t), WithLogger(zap.NewNop()), WithMetrics(reg))
	defer r.Close()
	kafkaSeries := func() int {
		n := 0
		for k := range promtest.ScrapeRegistry(t, reg) {
			if strings.HasPrefix(k, "strata_remover_kafka_") {
				n++
			}
		}
		return n
	}
	g, err := JoinGroup(r, "metrics", kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 30*time.Second, func() bool { return len(r.Owned()) == numMeta }, func() string { return fmt.Sprint(r.Owned()) })
	if kafkaSeries() == 0 {
		t.Fatal("no strata_remover_kafka_ series while the group client runs")
	}
	// A second group client of the same remover joins without metrics rather than panicking.
	g2, err := JoinGroup(r, "metrics-2", kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	g2.Close()
	g.Close()
	if n := kafkaSeries(); n != 0 {
		t.Fatalf("%d strata_remover_kafka_ series after the group client closed", n)
	}
	g, err = JoinGroup(r, "metrics", kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	testwait.For(t, 30*time.Second, func() bool { return kafkaSeries() > 0 }, func() string { return "no series after joining again" })
}
