package rlmm

import (
	"errors"
	"testing"

	"github.com/stratalog/strata/proto"
)

func TestAddFinishLookup(t *testing.T) {
	c := newCluster(t)
	m := newManager(t, c, t.TempDir())
	ctx := ctxT(t)
	if err := m.AssignPartitions(ctx, []proto.TopicIDPartition{tp0}, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitReady(ctx, tp0); err != nil {
		t.Fatal(err)
	}
	s0 := segment(tp0, 0, 100)
	if err := m.AddSegment(ctx, s0); err != nil {
		t.Fatal(err)
	}
	// Read your writes: the add is visible the moment AddSegment returns.
	if _, ok, err := m.SegmentFor(tp0, 0, 50); err != nil || ok {
		t.Fatalf("COPY_SEGMENT_STARTED segment returned by SegmentFor: %v %v", ok, err)
	}
	if got, err := m.Segments(tp0); err != nil || len(got) != 1 || got[0].State != proto.CopySegmentStarted {
		t.Fatalf("Segments = %v, %v", got, err)
	}
	if err := m.UpdateSegment(ctx, finish(s0, proto.CopySegmentFinished)); err != nil {
		t.Fatal(err)
	}
	got, ok, err := m.SegmentFor(tp0, 0, 50)
	if err != nil || !ok || got.SegmentID != s0.SegmentID || got.State != proto.CopySegmentFinished {
		t.Fatalf("SegmentFor = %v %v %v", got, ok, err)
	}
	if hi, ok, err := m.HighestOffsetForEpoch(tp0, 0); err != nil || !ok || hi != 100 {
		t.Fatalf("HighestOffsetForEpoch = %d %v %v", hi, ok, err)
	}
	if size, err := m.RemoteLogSizeForEpoch(tp0, 0); err != nil || size != int64(s0.SegmentSizeInBytes) {
		t.Fatalf("RemoteLogSizeForEpoch = %d %v", size, err)
	}
}

func TestWriteToUnassignedFailsAtOnce(t *testing.T) {
	c := newCluster(t)
	m := newManager(t, c, t.TempDir())
	ctx := ctxT(t)
	if err := m.AssignPartitions(ctx, []proto.TopicIDPartition{tp0}, nil); err != nil {
		t.Fatal(err)
	}
	// tp3 maps to metadata partition 4, which nothing assigned here maps to.
	err := m.AddSegment(ctx, segment(tp3, 0, 10))
	if !errors.Is(err, ErrNotAssigned) {
		t.Fatalf("err = %v, want ErrNotAssigned", err)
	}
	// tp1 maps to metadata partition 2 like tp0: the write is accepted, but reads of tp1 fail
	// with not found because tp1 itself is not assigned.
	if err := m.AddSegment(ctx, segment(tp1, 0, 10)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Segments(tp1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Segments(unassigned) err = %v, want ErrNotFound", err)
	}
	if err := m.AddSegment(ctx, finishAsAdd(segment(tp0, 0, 10))); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("add in FINISHED state: err = %v", err)
	}
	if err := m.UpdateSegment(ctx, finish(segment(tp0, 0, 1), proto.CopySegmentStarted)); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("update to STARTED: err = %v", err)
	}
}

func finishAsAdd(md *proto.SegmentMetadata) *proto.SegmentMetadata {
	md.State = proto.CopySegmentFinished
	return md
}
