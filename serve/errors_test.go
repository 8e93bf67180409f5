package serve

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	rlmmv1 "github.com/stratalog/strata/api/rlmm/v1"
	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rlmm"
)

const (
	kindNotReady    = rlmmv1.ErrorKind_ERROR_KIND_NOT_READY
	kindHalted      = rlmmv1.ErrorKind_ERROR_KIND_HALTED
	kindNotAssigned = rlmmv1.ErrorKind_ERROR_KIND_NOT_ASSIGNED
	kindNotFound    = rlmmv1.ErrorKind_ERROR_KIND_NOT_FOUND
	kindTimeout     = rlmmv1.ErrorKind_ERROR_KIND_TIMEOUT
	kindInvalid     = rlmmv1.ErrorKind_ERROR_KIND_INVALID_ARGUMENT
	kindClosed      = rlmmv1.ErrorKind_ERROR_KIND_CLOSED
	kindKafka       = rlmmv1.ErrorKind_ERROR_KIND_KAFKA
	kindInternal    = rlmmv1.ErrorKind_ERROR_KIND_INTERNAL
	kindNotApplied  = rlmmv1.ErrorKind_ERROR_KIND_NOT_APPLIED
	kindIncomplete  = rlmmv1.ErrorKind_ERROR_KIND_INCOMPLETE
)

// detailOf returns the status code of err and its ErrorDetail (nil when it has none).
func detailOf(t testing.TB, err error) (codes.Code, *rlmmv1.ErrorDetail) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("not a status: %v", err)
	}
	var d *rlmmv1.ErrorDetail
	for _, x := range st.Details() {
		if dd, ok := x.(*rlmmv1.ErrorDetail); ok {
			if d != nil {
				t.Fatalf("two ErrorDetails in %v", st)
			}
			d = dd
		}
	}
	return st.Code(), d
}

func wantStatus(t testing.TB, what string, err error, code codes.Code, kind rlmmv1.ErrorKind) *rlmmv1.ErrorDetail {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want %s %s", what, code, kind)
	}
	c, d := detailOf(t, err)
	if c != code || d == nil || d.Kind != kind || d.Message == "" {
		t.Fatalf("%s: %v (detail %v), want %s %s", what, err, d, code, kind)
	}
	return d
}

// TestStatusOfEveryError maps every error the manager returns, wrapped as it wraps them, to
// the code and kind api/rlmm/v1/rlmm.proto documents.
func TestStatusOfEveryError(t *testing.T) {
	halt := &rlmm.HaltError{Partition: 3, Offset: 42, Cause: proto.ErrUnknownAPIKey}
	cases := []struct {
		err      error
		code     codes.Code
		kind     rlmmv1.ErrorKind
		mp       int32
		offset   int64
		fallback rlmmv1.ErrorKind
	}{
		{fmt.Errorf("%w: tp: applied up to 3 of 9", rlmm.ErrNotReady), codes.Unavailable, kindNotReady, -1, -1, kindInternal},
		{halt, codes.FailedPrecondition, kindHalted, 3, 42, kindInternal},
		{fmt.Errorf("wrapped: %w", halt), codes.FailedPrecondition, kindHalted, 3, 42, kindInternal},
		{fmt.Errorf("%w: maps to 4", rlmm.ErrNotAssigned), codes.FailedPrecondition, kindNotAssigned, -1, -1, kindKafka},
		{fmt.Errorf("%w: tp", rlmm.ErrNotFound), codes.NotFound, kindNotFound, -1, -1, kindInternal},
		{fmt.Errorf("%w: not applied within 2m", rlmm.ErrTimeout), codes.DeadlineExceeded, kindTimeout, -1, -1, kindKafka},
		{fmt.Errorf("%w: add not STARTED", rlmm.ErrInvalidArgument), codes.InvalidArgument, kindInvalid, -1, -1, kindKafka},
		{fmt.Errorf("%w: topic_id", errInvalid), codes.InvalidArgument, kindInvalid, -1, -1, kindInternal},
		{rlmm.ErrClosed, codes.Unavailable, kindClosed, -1, -1, kindKafka},
		{errors.New("rlmm: producing: NOT_ENOUGH_REPLICAS"), codes.Unavailable, kindKafka, -1, -1, kindKafka},
		{&rlmm.NotAppliedError{Partition: 2, Offset: 7, Published: true, Reason: cache.ErrUnknownSegment}, codes.FailedPrecondition, kindNotApplied, 2, 7, kindKafka},
		{fmt.Errorf("w: %w", &rlmm.NotAppliedError{Partition: 2, Offset: -1, Reason: cache.ErrInvalidTransition}), codes.FailedPrecondition, kindNotApplied, 2, -1, kindKafka},
		{&rlmm.IncompleteError{Published: true, Partition: 4, Offset: 9, Cause: rlmm.ErrTimeout}, codes.DeadlineExceeded, kindIncomplete, 4, 9, kindKafka},
		{&rlmm.IncompleteError{Partition: 4, Offset: -1, Cause: context.Canceled}, codes.DeadlineExceeded, kindIncomplete, 4, -1, kindKafka},
		{errors.New("cache: pebble: disk full"), codes.Internal, kindInternal, -1, -1, kindInternal},
	}
	for _, tc := range cases {
		st := Status(tc.err, tc.fallback)
		c, d := detailOf(t, st.Err())
		if c != tc.code || d == nil || d.Kind != tc.kind || d.MetadataPartition != tc.mp || d.Offset != tc.offset ||
			d.Message != tc.err.Error() || st.Message() != tc.err.Error() {
			t.Errorf("Status(%v) = %v %v, want %s %s mp %d offset %d", tc.err, c, d, tc.code, tc.kind, tc.mp, tc.offset)
		}
	}
	// A record not applied says whether it was published and why.
	for reason, want := range map[error]rlmmv1.NotAppliedReason{
		cache.ErrInvalidTransition:                rlmmv1.NotAppliedReason_NOT_APPLIED_REASON_INVALID_TRANSITION,
		cache.ErrUnknownSegment:                   rlmmv1.NotAppliedReason_NOT_APPLIED_REASON_UNKNOWN_SEGMENT,
		cache.ErrUnsupportedRecord:                rlmmv1.NotAppliedReason_NOT_APPLIED_REASON_UNSUPPORTED_RECORD,
		cache.ErrInvalidRecord:                    rlmmv1.NotAppliedReason_NOT_APPLIED_REASON_INVALID_RECORD,
		cache.ErrPartitionMismatch:                rlmmv1.NotAppliedReason_NOT_APPLIED_REASON_PARTITION_MISMATCH,
		errors.New("a reason of a later version"): rlmmv1.NotAppliedReason_NOT_APPLIED_REASON_UNSPECIFIED,
	} {
		for _, published := range []bool{false, true} {
			_, d := detailOf(t, Status(&rlmm.NotAppliedError{Partition: 1, Offset: 3, Published: published, Reason: reason}, kindKafka).Err())
			if d.NotAppliedReason != want || d.Published != published {
				t.Errorf("not applied for %v (published %t): detail %v, want reason %v", reason, published, d, want)
			}
		}
	}
	for _, published := range []bool{false, true} {
		_, d := detailOf(t, Status(&rlmm.IncompleteError{Published: published, Cause: rlmm.ErrTimeout}, kindKafka).Err())
		if d.Published != published {
			t.Errorf("incomplete (published %t): detail %v", published, d)
		}
	}
	// Context errors are gRPC's own, without detail.
	for err, code := range map[error]codes.Code{
		context.Canceled:                            codes.Canceled,
		context.DeadlineExceeded:                    codes.DeadlineExceeded,
		fmt.Errorf("waiting: %w", context.Canceled): codes.Canceled,
	} {
		if c, d := detailOf(t, Status(err, kindKafka).Err()); c != code || d != nil {
			t.Errorf("Status(%v) = %v %v, want %v without detail", err, c, d, code)
		}
	}
	// A status passes through unchanged.
	in := status.Error(codes.ResourceExhausted, "too big")
	if c, _ := detailOf(t, Status(in, kindKafka).Err()); c != codes.ResourceExhausted {
		t.Errorf("a status became %v", c)
	}
}

// TestInvalidRequests: what the service refuses before the manager sees it, and what the
// manager refuses, come back INVALID_ARGUMENT.
func TestInvalidRequests(t *testing.T) {
	h, _ := newHarness(t)
	ctx := ctxT(t)
	h.assign(t, tp0)
	started := segment(tp0, 0, 9)
	finished := segment(tp0, 0, 9)
	finished.State = proto.CopySegmentFinished
	_, err := h.client.AddRemoteLogSegmentMetadata(ctx, &rlmmv1.AddRemoteLogSegmentMetadataRequest{Record: []byte{0, 9, 9}})
	wantStatus(t, "add of bytes that do not decode", err, codes.InvalidArgument, kindInvalid)
	_, err = h.client.AddRemoteLogSegmentMetadata(ctx, &rlmmv1.AddRemoteLogSegmentMetadataRequest{Record: encode(t, update(started, proto.CopySegmentFinished))})
	wantStatus(t, "add of an update", err, codes.InvalidArgument, kindInvalid)
	_, err = h.client.AddRemoteLogSegmentMetadata(ctx, &rlmmv1.AddRemoteLogSegmentMetadataRequest{Record: encode(t, finished)})
	wantStatus(t, "add in COPY_SEGMENT_FINISHED", err, codes.InvalidArgument, kindInvalid)
	_, err = h.client.UpdateRemoteLogSegmentMetadata(ctx, &rlmmv1.UpdateRemoteLogSegmentMetadataRequest{Record: encode(t, started)})
	wantStatus(t, "update with an add", err, codes.InvalidArgument, kindInvalid)
	_, err = h.client.UpdateRemoteLogSegmentMetadata(ctx, &rlmmv1.UpdateRemoteLogSegmentMetadataRequest{Record: encode(t, update(started, proto.CopySegmentStarted))})
	wantStatus(t, "update to COPY_SEGMENT_STARTED", err, codes.InvalidArgument, kindInvalid)
	_, err = h.client.PutRemotePartitionDeleteMetadata(ctx, &rlmmv1.PutRemotePartitionDeleteMetadataRequest{})
	wantStatus(t, "partition delete without a record", err, codes.InvalidArgument, kindInvalid)

	_, err = h.client.RemoteLogSegmentMetadata(ctx, &rlmmv1.RemoteLogSegmentMetadataRequest{})
	wantStatus(t, "lookup without a partition", err, codes.InvalidArgument, kindInvalid)
	_, err = h.client.RemoteLogSize(ctx, &rlmmv1.RemoteLogSizeRequest{TopicIdPartition: &rlmmv1.TopicIdPartition{TopicId: []byte{1, 2}, Topic: "foo"}})
	wantStatus(t, "size with a 2-byte topic id", err, codes.InvalidArgument, kindInvalid)
	bad := pb(tp0)
	bad.Partition = -1
	_, err = h.client.IsReady(ctx, &rlmmv1.IsReadyRequest{TopicIdPartition: bad})
	wantStatus(t, "isReady of a negative partition", err, codes.InvalidArgument, kindInvalid)
	_, err = list(t, h.client, &rlmmv1.ListRemoteLogSegmentsRequest{})
	wantStatus(t, "list without a partition", err, codes.InvalidArgument, kindInvalid)
	_, err = h.client.OnPartitionLeadershipChanges(ctx, &rlmmv1.OnPartitionLeadershipChangesRequest{FollowerPartitions: []*rlmmv1.TopicIdPartition{pb(tp1), {}}})
	d := wantStatus(t, "assignment with an empty partition", err, codes.InvalidArgument, kindInvalid)
	if want := "follower_partitions[1]"; !strings.Contains(d.Message, want) {
		t.Errorf("message %q does not name %s", d.Message, want)
	}
	_, err = h.client.OnStopPartitions(ctx, &rlmmv1.OnStopPartitionsRequest{Partitions: []*rlmmv1.TopicIdPartition{nil}})
	wantStatus(t, "stop of an empty partition", err, codes.InvalidArgument, kindInvalid)
	_, err = h.client.NextSegmentWithTxnIndex(ctx, &rlmmv1.NextSegmentWithTxnIndexRequest{})
	wantStatus(t, "nextSegmentWithTxnIndex without a partition", err, codes.InvalidArgument, kindInvalid)
	_, err = h.client.HighestOffsetForEpoch(ctx, &rlmmv1.HighestOffsetForEpochRequest{})
	wantStatus(t, "highestOffsetForEpoch without a partition", err, codes.InvalidArgument, kindInvalid)
}

// TestNotAssignedAndNotFound: a write whose metadata partition is not consumed fails at once;
// reads of a partition not assigned say not found, on every read RPC.
func TestNotAssignedAndNotFound(t *testing.T) {
	h, _ := newHarness(t)
	ctx := ctxT(t)
	h.assign(t, tp0)
	_, err := h.client.AddRemoteLogSegmentMetadata(ctx, &rlmmv1.AddRemoteLogSegmentMetadataRequest{Record: encode(t, segment(tp3, 0, 9))})
	wantStatus(t, "add for a partition of an unconsumed metadata partition", err, codes.FailedPrecondition, kindNotAssigned)

	_, err = h.client.RemoteLogSegmentMetadata(ctx, &rlmmv1.RemoteLogSegmentMetadataRequest{TopicIdPartition: pb(tp1)})
	wantStatus(t, "lookup", err, codes.NotFound, kindNotFound)
	_, err = h.client.HighestOffsetForEpoch(ctx, &rlmmv1.HighestOffsetForEpochRequest{TopicIdPartition: pb(tp1)})
	wantStatus(t, "highestOffsetForEpoch", err, codes.NotFound, kindNotFound)
	_, err = h.client.RemoteLogSize(ctx, &rlmmv1.RemoteLogSizeRequest{TopicIdPartition: pb(tp1)})
	wantStatus(t, "remoteLogSize", err, codes.NotFound, kindNotFound)
	_, err = h.client.NextSegmentWithTxnIndex(ctx, &rlmmv1.NextSegmentWithTxnIndexRequest{TopicIdPartition: pb(tp1)})
	wantStatus(t, "nextSegmentWithTxnIndex", err, codes.NotFound, kindNotFound)
	_, err = list(t, h.client, &rlmmv1.ListRemoteLogSegmentsRequest{TopicIdPartition: pb(tp1)})
	wantStatus(t, "list", err, codes.NotFound, kindNotFound)
	_, err = list(t, h.client, &rlmmv1.ListRemoteLogSegmentsRequest{TopicIdPartition: pb(tp1), LeaderEpoch: ptr(int32(0))})
	wantStatus(t, "list for an epoch", err, codes.NotFound, kindNotFound)
	r, err := h.client.IsReady(ctx, &rlmmv1.IsReadyRequest{TopicIdPartition: pb(tp1)})
	if err != nil || r.Ready || r.Reason.GetKind() != kindNotFound {
		t.Fatalf("IsReady of an unassigned partition = %v, %v", r, err)
	}
}

// TestHalted: a record that does not decode halts its metadata partition; reads, writes,
// IsReady and Health all say so, naming the metadata partition and offset.
func TestHalted(t *testing.T) {
	h, c := newHarness(t)
	ctx := ctxT(t)
	h.assign(t, tp0)
	good := segment(tp0, 0, 9)
	produceRaw(t, c, 2, encode(t, good), []byte{0x01, 0x09, 0x00})
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := h.client.IsReady(ctx, &rlmmv1.IsReadyRequest{TopicIdPartition: pb(tp0)})
		if err != nil {
			t.Fatal(err)
		}
		if k := r.Reason.GetKind(); k == kindHalted {
			if r.Ready || r.Reason.MetadataPartition != 2 || r.Reason.Offset != 1 {
				t.Fatalf("IsReady of a halted partition = %v", r)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never halted: %v", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for what, err := range map[string]error{
		"lookup": second(h.client.RemoteLogSegmentMetadata(ctx, &rlmmv1.RemoteLogSegmentMetadataRequest{TopicIdPartition: pb(tp0)})),
		"add":    second(h.client.AddRemoteLogSegmentMetadata(ctx, &rlmmv1.AddRemoteLogSegmentMetadataRequest{Record: encode(t, segment(tp0, 10, 19))})),
		"list":   second(list(t, h.client, &rlmmv1.ListRemoteLogSegmentsRequest{TopicIdPartition: pb(tp0)})),
	} {
		d := wantStatus(t, what, err, codes.FailedPrecondition, kindHalted)
		if d.MetadataPartition != 2 || d.Offset != 1 {
			t.Errorf("%s: detail %v, want metadata partition 2 offset 1", what, d)
		}
	}
	health, err := h.client.Health(ctx, &rlmmv1.HealthRequest{})
	if err != nil || len(health.Partitions) != 1 || !health.Partitions[0].Halted || health.Partitions[0].Halt.GetOffset() != 1 {
		t.Fatalf("Health = %v, %v", health, err)
	}
}

func second[T any](_ T, err error) error { return err }

// TestNotReadyAndTimeout: while the consumer cannot advance, a partition assigned behind a
// non-empty metadata partition is not ready (UNAVAILABLE, retriable), and a write whose record
// is never applied is DEADLINE_EXCEEDED, INCOMPLETE, after the consume wait.
func TestNotReadyAndTimeout(t *testing.T) {
	h, c := newHarness(t, rlmm.WithConsumeWait(300*time.Millisecond))
	ctx := ctxT(t)
	h.assign(t, tp0)
	produceRaw(t, c, 4, encode(t, segment(tp3, 0, 9)))
	defer failFetches(c)()

	if _, err := h.client.OnPartitionLeadershipChanges(ctx, &rlmmv1.OnPartitionLeadershipChangesRequest{LeaderPartitions: []*rlmmv1.TopicIdPartition{pb(tp3)}}); err != nil {
		t.Fatal(err)
	}
	r, err := h.client.IsReady(ctx, &rlmmv1.IsReadyRequest{TopicIdPartition: pb(tp3)})
	if err != nil || r.Ready || r.Reason.GetKind() != kindNotReady {
		t.Fatalf("IsReady while loading = %v, %v", r, err)
	}
	_, err = h.client.RemoteLogSegmentMetadata(ctx, &rlmmv1.RemoteLogSegmentMetadataRequest{TopicIdPartition: pb(tp3)})
	wantStatus(t, "lookup while loading", err, codes.Unavailable, kindNotReady)
	_, err = h.client.RemoteLogSize(ctx, &rlmmv1.RemoteLogSizeRequest{TopicIdPartition: pb(tp3)})
	wantStatus(t, "size while loading", err, codes.Unavailable, kindNotReady)

	// The record reaches the topic but is never applied: when the consume wait ends the write's
	// outcome is unknown, and the detail says where the record is.
	_, err = h.client.AddRemoteLogSegmentMetadata(ctx, &rlmmv1.AddRemoteLogSegmentMetadataRequest{Record: encode(t, segment(tp0, 0, 9))})
	d := wantStatus(t, "add that is never applied", err, codes.DeadlineExceeded, kindIncomplete)
	if !d.Published || d.MetadataPartition != 2 || d.Offset < 0 {
		t.Fatalf("incomplete add: detail %v, want published on metadata partition 2 at an offset", d)
	}
}

// TestClosedManager: once the manager is closed, calls fail UNAVAILABLE with kind CLOSED.
func TestClosedManager(t *testing.T) {
	h, _ := newHarness(t)
	ctx := ctxT(t)
	h.assign(t, tp0)
	if err := h.m.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := h.client.AddRemoteLogSegmentMetadata(ctx, &rlmmv1.AddRemoteLogSegmentMetadataRequest{Record: encode(t, segment(tp0, 0, 9))})
	wantStatus(t, "add", err, codes.Unavailable, kindClosed)
	_, err = h.client.RemoteLogSegmentMetadata(ctx, &rlmmv1.RemoteLogSegmentMetadataRequest{TopicIdPartition: pb(tp0)})
	wantStatus(t, "lookup", err, codes.Unavailable, kindClosed)
	_, err = h.client.IsReady(ctx, &rlmmv1.IsReadyRequest{TopicIdPartition: pb(tp0)})
	wantStatus(t, "isReady", err, codes.Unavailable, kindClosed)
	_, err = h.client.OnPartitionLeadershipChanges(ctx, &rlmmv1.OnPartitionLeadershipChangesRequest{LeaderPartitions: []*rlmmv1.TopicIdPartition{pb(tp1)}})
	wantStatus(t, "onPartitionLeadershipChanges", err, codes.Unavailable, kindClosed)
}

// TestNotApplied: writes the store's rules refuse come back FAILED_PRECONDITION with kind
// NOT_APPLIED and the reason: an update of a segment never added, a transition Kafka forbids.
func TestNotApplied(t *testing.T) {
	h, _ := newHarness(t)
	ctx := ctxT(t)
	h.assign(t, tp0)
	_, err := h.client.UpdateRemoteLogSegmentMetadata(ctx, &rlmmv1.UpdateRemoteLogSegmentMetadataRequest{Record: encode(t, update(segment(tp0, 0, 9), proto.CopySegmentFinished))})
	d := wantStatus(t, "update of an unknown segment", err, codes.FailedPrecondition, kindNotApplied)
	if d.NotAppliedReason != rlmmv1.NotAppliedReason_NOT_APPLIED_REASON_UNKNOWN_SEGMENT || d.MetadataPartition != 2 {
		t.Fatalf("detail %v, want reason UNKNOWN_SEGMENT on metadata partition 2", d)
	}
	md := segment(tp0, 0, 9)
	h.add(t, md, true)
	for _, st := range []proto.SegmentState{proto.DeleteSegmentStarted, proto.DeleteSegmentFinished} {
		if _, err := h.client.UpdateRemoteLogSegmentMetadata(ctx, &rlmmv1.UpdateRemoteLogSegmentMetadataRequest{Record: encode(t, update(md, st))}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = h.client.UpdateRemoteLogSegmentMetadata(ctx, &rlmmv1.UpdateRemoteLogSegmentMetadataRequest{Record: encode(t, update(md, proto.CopySegmentFinished))})
	d = wantStatus(t, "COPY_SEGMENT_FINISHED after DELETE_SEGMENT_FINISHED", err, codes.FailedPrecondition, kindNotApplied)
	if r := d.NotAppliedReason; r == rlmmv1.NotAppliedReason_NOT_APPLIED_REASON_UNSPECIFIED {
		t.Fatalf("detail %v: no reason", d)
	}
}
