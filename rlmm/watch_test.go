package rlmm

import (
	"errors"
	"testing"
	"time"

	"github.com/stratalog/strata/proto"
)

func TestWatchMetadataPartitions(t *testing.T) {
	c := newCluster(t)
	m := newManager(t, c, t.TempDir())
	ctx := ctxT(t)
	raw := rawClient(t, c)
	s := segment(tp0, 0, 10)
	produceRaw(t, raw, 2, encode(t, s))

	if err := m.WatchMetadataPartitions(ctx, 9); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("watching partition 9 of 5: %v", err)
	}
	changed := m.Changed()
	if err := m.WatchMetadataPartitions(ctx, 2); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("Changed not closed by watching")
	}
	for m.MetadataPartitionReady(2) != nil {
		select {
		case <-m.Changed():
		case <-ctx.Done():
			t.Fatal(m.MetadataPartitionReady(2))
		}
	}
	// The store holds the record written before watching, though tp0 is not assigned.
	if got, ok, err := m.View().Segment(s.SegmentID); err != nil || !ok {
		t.Fatalf("watched record: %v %v %v", got, ok, err)
	}
	if err := m.UpdateSegment(ctx, finish(s, proto.CopySegmentFinished)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Segments(tp0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("user partition reads still need an assignment: %v", err)
	}
	// A user partition assigned and then stopped does not end the watch.
	assignReady(t, m, []proto.TopicIDPartition{tp0}, nil)
	m.StopPartitions(tp0)
	if err := m.MetadataPartitionReady(2); err != nil {
		t.Fatal(err)
	}
	m.UnwatchMetadataPartitions(2)
	if err := m.AddSegment(ctx, segment(tp0, 20, 30)); !errors.Is(err, ErrNotAssigned) {
		t.Fatalf("after unwatch: %v", err)
	}
	if err := m.MetadataPartitionReady(2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ready after unwatch: %v", err)
	}
}
