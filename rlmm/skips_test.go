package rlmm

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/proto"
)

// waitHalted waits until tp's metadata partition is halted and returns the halt.
func waitHalted(t *testing.T, m *Manager, tp proto.TopicIDPartition) *HaltError {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var halt *HaltError
		err := m.Ready(tp)
		if errors.As(err, &halt) {
			return halt
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never halted: %v", tp, err)
		}
		m.WaitReady(ctxWithin(t, 200*time.Millisecond), tp)
	}
}

// TestSkipEverywhere: two managers halted at the same poison record; one operator action on
// one of them makes both skip it, and a manager started afterwards on an empty store passes it
// without halting. The skip is kept in each store with its reason.
func TestSkipEverywhere(t *testing.T) {
	c := newCluster(t)
	m1 := newManager(t, c, t.TempDir())
	m2 := newManager(t, c, t.TempDir())
	ctx := ctxT(t)
	for _, m := range []*Manager{m1, m2} {
		assignReady(t, m, []proto.TopicIDPartition{tp0}, nil)
	}
	good := segment(tp0, 0, 10)
	produceRaw(t, rawClient(t, c), 2, encode(t, good), []byte{0x01, 0x09, 0x00}, encode(t, finish(good, proto.CopySegmentFinished)))
	for _, m := range []*Manager{m1, m2} {
		if h := waitHalted(t, m, tp0); h.Partition != 2 || h.Offset != 1 {
			t.Fatalf("halt = %v, want metadata partition 2 at offset 1", h)
		}
	}
	if err := m1.SkipEverywhere(ctx, 2, 1, ""); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("a skip without a reason = %v, want ErrInvalidArgument", err)
	}
	if err := m1.SkipEverywhere(ctx, 2, 1, "garbage written by a test"); err != nil {
		t.Fatal(err)
	}
	// m1 applied it before SkipEverywhere returned; m2 applies it when it reads the skips topic.
	if err := m1.Ready(tp0); err != nil {
		t.Fatalf("m1 after SkipEverywhere: %v", err)
	}
	m3 := newManager(t, c, t.TempDir())
	if err := m3.AssignPartitions(ctx, []proto.TopicIDPartition{tp0}, nil); err != nil {
		t.Fatal(err)
	}
	for i, m := range []*Manager{m1, m2, m3} {
		// A halt is reported at once by WaitReady; it must be lifted by the recorded skip.
		deadline := time.Now().Add(20 * time.Second)
		for {
			err := m.WaitReady(ctxWithin(t, 20*time.Second), tp0)
			if err == nil {
				break
			}
			var halt *HaltError
			if !errors.As(err, &halt) || time.Now().After(deadline) {
				t.Fatalf("manager %d: %v", i+1, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		for {
			got, ok, err := m.Segment(good.SegmentID)
			if err == nil && ok && got.State == proto.CopySegmentFinished {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("manager %d: the record after the skipped one is not applied: %v, %v, %v", i+1, got, ok, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		skipped, err := m.View().Skipped()
		if err != nil || len(skipped) != 1 || skipped[0].Partition != 2 || skipped[0].Offset != 1 ||
			!strings.Contains(skipped[0].Reason, "garbage written by a test") {
			t.Fatalf("manager %d: Skipped = %v, %v", i+1, skipped, err)
		}
		if st := statsOf(m, 2); st.Halt != nil || st.Skipped != 1 {
			t.Fatalf("manager %d: stats %+v, want 1 skipped and no halt", i+1, st)
		}
	}
}

// TestSkipEverywhereIgnoresOtherTopicIncarnations: a recorded skip names the metadata topic by
// id; a record at the same partition and offset of a topic created again is not skipped.
func TestSkipEverywhereIgnoresOtherTopicIncarnations(t *testing.T) {
	if _, ok := parseSkipRecordKey(topicID, []byte(skipRecordKey(proto.UUID{1: 1}, 2, 1))); ok {
		t.Fatal("a skip of another metadata topic id was accepted")
	}
	k, ok := parseSkipRecordKey(topicID, []byte(skipRecordKey(topicID, 2, 1)))
	if !ok || k != (skipKey{2, 1}) {
		t.Fatalf("parse = %v, %v", k, ok)
	}
	for _, bad := range []string{"", "x/1/2", topicID.String() + "/-1/2", topicID.String() + "/1/x", topicID.String() + "/1/2/3"} {
		if _, ok := parseSkipRecordKey(topicID, []byte(bad)); ok {
			t.Errorf("key %q accepted", bad)
		}
	}
}
