package serve

import (
	"context"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	rlmmv1 "github.com/stratalog/strata/api/rlmm/v1"
)

// TestStopCancelsCallsAfterGrace: a write that waits (its record cannot be applied) holds the
// graceful stop only for the grace period; then it is cancelled, Serve returns nil, the socket
// is gone, and (TestMain's goleak) no goroutine is left.
func TestStopCancelsCallsAfterGrace(t *testing.T) {
	c := newCluster(t)
	h := serveManager(t, newManager(t, c), WithGracePeriod(300*time.Millisecond))
	h.assign(t, tp0)
	defer failFetches(c)()

	errc := make(chan error, 1)
	go func() {
		_, err := h.client.AddRemoteLogSegmentMetadata(context.Background(), &rlmmv1.AddRemoteLogSegmentMetadataRequest{Record: encode(t, segment(tp0, 0, 9))})
		errc <- err
	}()
	// Wait until the write is in flight: its record is in the topic, not applied.
	adm := kadm.NewClient(rawClient(t, c))
	waitFor(t, func() bool { return produced(t, adm) })
	start := time.Now()
	if err := h.stop(); err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("stop took %s with a 300ms grace period", took)
	}
	err := <-errc
	if c := status.Code(err); c != codes.Canceled && c != codes.Unavailable {
		t.Fatalf("the write in flight ended with %v, want cancelled", err)
	}
}

// produced reports whether metadata partition 2 holds a record.
func produced(t testing.TB, adm *kadm.Client) bool {
	ends, err := adm.ListEndOffsets(ctxT(t), metadataTopic)
	if err != nil {
		return false
	}
	o, ok := ends.Lookup(metadataTopic, 2)
	return ok && o.Err == nil && o.Offset == 1
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStopWithNothingInFlight: Serve returns nil at once, the socket file is removed and new
// calls are refused.
func TestStopWithNothingInFlight(t *testing.T) {
	c := newCluster(t)
	m := newManager(t, c)
	path := socketPath(t)
	lis, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := New(m)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket after stop: %v", err)
	}
	// A Server serves once.
	lis2, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(context.Background(), lis2); err == nil {
		t.Fatal("second Serve succeeded")
	}
}

// TestServeEndsWhenListenerFails: Serve returns the error of a listener that breaks.
func TestServeEndsWhenListenerFails(t *testing.T) {
	c := newCluster(t)
	m := newManager(t, c)
	lis, err := net.Listen("unix", socketPath(t))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- New(m).Serve(context.Background(), lis) }()
	time.Sleep(50 * time.Millisecond)
	lis.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Serve = nil after its listener closed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
}

// TestCallWithoutDeadlineIsBounded: an assignment whose offsets Kafka never lists (every
// ListOffsets fails with a retriable error) returns at the call timeout when the client set no
// deadline, instead of waiting forever.
func TestCallWithoutDeadlineIsBounded(t *testing.T) {
	c := newCluster(t)
	h := serveManager(t, newManager(t, c), WithCallTimeout(500*time.Millisecond))
	var stopped atomic.Bool
	t.Cleanup(func() { stopped.Store(true) })
	c.ControlKey(int16(kmsg.ListOffsets), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if stopped.Load() {
			c.DropControl()
			return nil, nil, false
		}
		c.KeepControl()
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, rt := range req.(*kmsg.ListOffsetsRequest).Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, 6 // NOT_LEADER_OR_FOLLOWER, retriable
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	start := time.Now()
	_, err := h.client.OnPartitionLeadershipChanges(context.Background(), &rlmmv1.OnPartitionLeadershipChangesRequest{LeaderPartitions: []*rlmmv1.TopicIdPartition{pb(tp0)}})
	if code := status.Code(err); code != codes.DeadlineExceeded {
		t.Fatalf("assignment Kafka never answers: %v, want DEADLINE_EXCEEDED", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("returned after %s with a 500ms call timeout", took)
	}
}

// TestStopEndsAssignmentAtOnce: an assignment waiting on a cluster that does not answer its
// offsets (a broker shutting down) does not hold the stop for the grace period: it ends as
// soon as the stop begins.
func TestStopEndsAssignmentAtOnce(t *testing.T) {
	c := newCluster(t)
	h := serveManager(t, newManager(t, c), WithGracePeriod(time.Minute))
	var asked atomic.Int32
	c.ControlKey(int16(kmsg.ListOffsets), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		asked.Add(1)
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, rt := range req.(*kmsg.ListOffsetsRequest).Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, 6 // NOT_LEADER_OR_FOLLOWER: retriable
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_, err := h.client.OnPartitionLeadershipChanges(ctx, &rlmmv1.OnPartitionLeadershipChangesRequest{
			LeaderPartitions: []*rlmmv1.TopicIdPartition{pb(tp0)}})
		errc <- err
	}()
	waitFor(t, func() bool { return asked.Load() >= 2 })
	start := time.Now()
	if err := h.stop(); err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Fatalf("stop took %s: it waited for the assignment in flight", took)
	}
	err := <-errc
	if c := status.Code(err); c == codes.OK || c == codes.DeadlineExceeded {
		t.Fatalf("the assignment in flight ended with %v, want ended by the stop", err)
	}
}
