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

// TestReadiness: Readiness says of every assigned partition what Ready says, in one look: a
// halted one is not ready while the others are, a stopped one is gone, and nothing is left once
// the manager is closed.
func TestReadiness(t *testing.T) {
	c := newCluster(t)
	m := newManager(t, c, t.TempDir())
	if got := m.Readiness(); len(got) != 0 {
		t.Fatalf("before any assignment: %v", got)
	}
	assignReady(t, m, []proto.TopicIDPartition{tp0}, []proto.TopicIDPartition{tp3})
	if got := m.Readiness(); len(got) != 2 || !got[tp0] || !got[tp3] {
		t.Fatalf("after the assignment: %v, want both ready", got)
	}
	// A record that does not decode halts tp0's metadata partition (2), not tp3's.
	produceRaw(t, rawClient(t, c), 2, []byte{0x01, 0x09, 0x00})
	deadline := time.Now().Add(20 * time.Second)
	for m.Ready(tp0) == nil {
		if time.Now().After(deadline) {
			t.Fatal("tp0 never halted")
		}
		<-m.Changed()
	}
	if got := m.Readiness(); len(got) != 2 || got[tp0] || !got[tp3] {
		t.Fatalf("with tp0 halted: %v, want tp0 not ready, tp3 ready", got)
	}
	m.StopPartitions(tp3)
	if got := m.Readiness(); len(got) != 1 || got[tp0] {
		t.Fatalf("after stopping tp3: %v, want only tp0, not ready", got)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if got := m.Readiness(); len(got) != 0 {
		t.Fatalf("after Close: %v", got)
	}
}
