package serve

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	rlmmv1 "github.com/stratalog/strata/api/rlmm/v1"
	"github.com/stratalog/strata/proto"
)

// serveStarting serves a NewStarting server on a fresh socket and returns it, a client of it,
// and what stops it (returning what Serve returned).
func serveStarting(t *testing.T, opts ...Option) (*Server, rlmmv1.RemoteLogMetadataServiceClient, func() error) {
	t.Helper()
	s := NewStarting(opts...)
	client, stop := serveOn(t, s, socketPath(t))
	return s, client, stop
}

// TestCallsWaitForTheManager: a server made with NewStarting accepts connections and calls at
// once but answers none before Started: a call whose deadline passes first ends with
// DeadlineExceeded, and the calls waiting, a unary call and a readiness stream opened before
// the manager, are answered once it is handed over, the stream with the assignment made while it
// waited.
func TestCallsWaitForTheManager(t *testing.T) {
	c := newCluster(t)
	m := newManager(t, c)
	s, client, _ := serveStarting(t)

	short, cancel := context.WithTimeout(ctxT(t), 200*time.Millisecond)
	defer cancel()
	if _, err := client.Health(short, &rlmmv1.HealthRequest{}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Health before the manager = %v, want DeadlineExceeded (held, not answered)", err)
	}

	ctx := ctxT(t)
	stream, err := client.WatchReadiness(ctx, &rlmmv1.WatchReadinessRequest{})
	if err != nil {
		t.Fatal(err)
	}
	assigned := make(chan error, 1)
	go func() {
		_, err := client.OnPartitionLeadershipChanges(ctx, &rlmmv1.OnPartitionLeadershipChangesRequest{LeaderPartitions: []*rlmmv1.TopicIdPartition{pb(tp0)}})
		assigned <- err
	}()
	select {
	case err := <-assigned:
		t.Fatalf("the assignment returned (%v) before the server had its manager", err)
	case <-time.After(200 * time.Millisecond):
	}

	s.Started(m)
	if err := <-assigned; err != nil {
		t.Fatalf("the assignment that waited: %v", err)
	}
	// The stream's first picture is from before the assignment or after it, as the two calls
	// ran once the manager came; then the change, if it was not in the picture.
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[proto.TopicIDPartition]bool{}
	for _, p := range first.Partitions {
		tp, err := topicIDPartition(p.TopicIdPartition)
		if err != nil {
			t.Fatal(err)
		}
		seen[tp] = p.Ready
	}
	readiness(t, stream, seen, map[proto.TopicIDPartition]bool{tp0: true})
	if err := m.Ready(tp0); err != nil {
		t.Fatalf("the manager has not taken the assignment that waited: %v", err)
	}
	h, err := client.Health(ctx, &rlmmv1.HealthRequest{})
	if err != nil || !h.Serving {
		t.Fatalf("Health after the manager = %v, %v", h, err)
	}
}

// TestStartFailed: calls waiting for a manager that will not come fail with Unavailable naming
// why, as does every later call, streams included.
func TestStartFailed(t *testing.T) {
	s, client, stop := serveStarting(t)
	ctx := ctxT(t)
	waiting := make(chan error, 1)
	go func() {
		_, err := client.IsReady(ctx, &rlmmv1.IsReadyRequest{TopicIdPartition: pb(tp0)})
		waiting <- err
	}()
	time.Sleep(100 * time.Millisecond)
	s.StartFailed(errors.New("the store is locked by another process"))
	s.Started(nil) // too late: the first word counts
	check := func(what string, err error) {
		t.Helper()
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "the store is locked by another process") {
			t.Fatalf("%s = %v, want Unavailable naming the start's failure", what, err)
		}
	}
	check("the call that waited", <-waiting)
	_, err := client.Health(ctx, &rlmmv1.HealthRequest{})
	check("a later call", err)
	stream, err := client.WatchReadiness(ctx, &rlmmv1.WatchReadinessRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	check("a later stream", err)
	if err := stop(); err != nil {
		t.Fatalf("Serve = %v", err)
	}
}

// TestStopWhileStarting: a stop ends the calls waiting for the manager with Unavailable at once,
// not after the grace period.
func TestStopWhileStarting(t *testing.T) {
	_, client, stop := serveStarting(t, WithGracePeriod(time.Minute))
	ctx := ctxT(t)
	waiting := make(chan error, 2)
	go func() {
		_, err := client.Health(ctx, &rlmmv1.HealthRequest{})
		waiting <- err
	}()
	go func() {
		stream, err := client.WatchGenerations(ctx, &rlmmv1.WatchGenerationsRequest{})
		if err == nil {
			_, err = stream.Recv()
		}
		waiting <- err
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("stop took %s: the waiting calls held it", took)
	}
	for range 2 {
		if err := <-waiting; status.Code(err) != codes.Unavailable {
			t.Fatalf("a call waiting at the stop = %v, want Unavailable", err)
		}
	}
}
