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
