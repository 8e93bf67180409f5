package serve

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	rlmmv1 "github.com/stratalog/strata/api/rlmm/v1"
	"github.com/stratalog/strata/proto"
)

// readiness reads stream messages until want holds for every partition of want, and returns
// what the stream said of each partition.
func readiness(t *testing.T, stream rlmmv1.RemoteLogMetadataService_WatchReadinessClient, seen map[proto.TopicIDPartition]bool, want map[proto.TopicIDPartition]bool) {
	t.Helper()
	for {
		done := true
		for tp, ready := range want {
			if got, ok := seen[tp]; !ok || got != ready {
				done = false
			}
		}
		if done {
			return
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("WatchReadiness: %v (seen %v, want %v)", err, seen, want)
		}
		if len(resp.Partitions) == 0 {
			t.Fatalf("WatchReadiness sent an empty change")
		}
		for _, p := range resp.Partitions {
			tp, err := topicIDPartition(p.TopicIdPartition)
			if err != nil {
				t.Fatal(err)
			}
			seen[tp] = p.Ready
		}
	}
}

// TestWatchReadiness: the stream starts with every assigned partition (none here), then sends
// each change: a partition assigned and ready, one stopped (not ready), and ends with Unavailable
// as soon as the server stops, without holding the stop for the grace period.
func TestWatchReadiness(t *testing.T) {
	c := newCluster(t)
	h := serveManager(t, newManager(t, c), WithGracePeriod(time.Minute))
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	stream, err := h.client.WatchReadiness(ctx, &rlmmv1.WatchReadinessRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Partitions) != 0 {
		t.Fatalf("first message %v, want no partition: none is assigned", first)
	}

	seen := map[proto.TopicIDPartition]bool{}
	h.assign(t, tp0, tp1)
	readiness(t, stream, seen, map[proto.TopicIDPartition]bool{tp0: true, tp1: true})

	if _, err := h.client.OnStopPartitions(ctx, &rlmmv1.OnStopPartitionsRequest{Partitions: []*rlmmv1.TopicIdPartition{pb(tp1)}}); err != nil {
		t.Fatal(err)
	}
	readiness(t, stream, seen, map[proto.TopicIDPartition]bool{tp0: true, tp1: false})

	// A second stream starts with what is assigned now.
	again, err := h.client.WatchReadiness(ctx, &rlmmv1.WatchReadinessRequest{})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := again.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Partitions) != 1 || !snap.Partitions[0].Ready || snap.Partitions[0].TopicIdPartition.Partition != 0 {
		t.Fatalf("a new stream's first message %v, want only %s, ready", snap, tp0)
	}

	start := time.Now()
	if err := h.stop(); err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Fatalf("stop took %s: the watch held it for the grace period", took)
	}
	for _, s := range []rlmmv1.RemoteLogMetadataService_WatchReadinessClient{stream, again} {
		if _, err := s.Recv(); status.Code(err) != codes.Unavailable {
			t.Errorf("after the stop, Recv = %v, want Unavailable", err)
		}
	}
}

// TestWatchGenerations: the stream starts with every stripe's generation; a write's reply
// carries its partition's stripe and a generation the stream then reaches; a lookup's reply
// carries the offsets its answer holds for and the generation it was read at, which the next
// write passes; the stream ends with Unavailable when the server stops.
func TestWatchGenerations(t *testing.T) {
	c := newCluster(t)
	h := serveManager(t, newManager(t, c), WithGracePeriod(time.Minute))
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	h.assign(t, tp0)
	stream, err := h.client.WatchGenerations(ctx, &rlmmv1.WatchGenerationsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	gens := map[uint32]uint64{}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range first.Generations {
		gens[g.Stripe] = g.Generation
	}
	if len(gens) != 256 {
		t.Fatalf("first message has %d stripes, want 256", len(gens))
	}
	// until reads the stream until stripe reaches at least gen.
	until := func(stripe uint32, gen uint64) {
		t.Helper()
		for gens[stripe] < gen {
			resp, err := stream.Recv()
			if err != nil {
				t.Fatalf("WatchGenerations: %v waiting for stripe %d at %d", err, stripe, gen)
			}
			for _, g := range resp.Generations {
				if g.Generation <= gens[g.Stripe] {
					t.Fatalf("stripe %d sent at %d, already at %d", g.Stripe, g.Generation, gens[g.Stripe])
				}
				gens[g.Stripe] = g.Generation
			}
		}
	}

	s0 := segment(tp0, 0, 99, proto.EpochEntry{Epoch: 0, StartOffset: 0})
	added, err := h.client.AddRemoteLogSegmentMetadata(ctx, &rlmmv1.AddRemoteLogSegmentMetadataRequest{Record: encode(t, s0)})
	if err != nil {
		t.Fatal(err)
	}
	stripe := added.GetGeneration().GetStripe()
	if g := added.GetGeneration().GetGeneration(); g <= gens[stripe] {
		t.Fatalf("add's generation %d, stream's before it %d", g, gens[stripe])
	}
	until(stripe, added.Generation.Generation)
	fin, err := h.client.UpdateRemoteLogSegmentMetadata(ctx, &rlmmv1.UpdateRemoteLogSegmentMetadataRequest{Record: encode(t, update(s0, proto.CopySegmentFinished))})
	if err != nil {
		t.Fatal(err)
	}
	if fin.GetGeneration().GetStripe() != stripe || fin.Generation.Generation <= added.Generation.Generation {
		t.Fatalf("update's generation %v after add's %v", fin.Generation, added.Generation)
	}
	until(stripe, fin.Generation.Generation)

	got, err := h.client.RemoteLogSegmentMetadata(ctx, &rlmmv1.RemoteLogSegmentMetadataRequest{TopicIdPartition: pb(tp0), EpochForOffset: 0, Offset: 40})
	if err != nil || got.Record == nil {
		t.Fatalf("lookup = %v, %v", got, err)
	}
	if got.ValidFrom != 0 || got.ValidTo != 99 || got.GetGeneration().GetStripe() != stripe || got.Generation.Generation < fin.Generation.Generation {
		t.Fatalf("lookup holds for [%d, %d] at %v; want [0, 99] at %v or newer", got.ValidFrom, got.ValidTo, got.Generation, fin.Generation)
	}
	miss, err := h.client.RemoteLogSegmentMetadata(ctx, &rlmmv1.RemoteLogSegmentMetadataRequest{TopicIdPartition: pb(tp0), EpochForOffset: 0, Offset: 100})
	if err != nil || miss.Record != nil || miss.Generation != nil {
		t.Fatalf("lookup past the segment = %v, %v; want no record and no generation", miss, err)
	}
	del, err := h.client.UpdateRemoteLogSegmentMetadata(ctx, &rlmmv1.UpdateRemoteLogSegmentMetadataRequest{Record: encode(t, update(s0, proto.DeleteSegmentStarted))})
	if err != nil {
		t.Fatal(err)
	}
	if del.Generation.Generation <= got.Generation.Generation {
		t.Fatalf("a write after the lookup left generation %d, the lookup's is %d: a client would keep the deleted segment", del.Generation.Generation, got.Generation.Generation)
	}
	until(stripe, del.Generation.Generation)

	if err := h.stop(); err != nil {
		t.Fatalf("Serve = %v", err)
	}
	for {
		if _, err := stream.Recv(); err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Errorf("after the stop, Recv = %v, want Unavailable", err)
			}
			break
		}
	}
}
