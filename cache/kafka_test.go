package cache

import (
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/proto"
)

// These tests replay the cases of Kafka's RemoteLogMetadataCacheTest,
// RemoteLogLeaderEpochStateTest and RemoteLogSegmentLifecycleTest against the store.

func ids(ms []proto.SegmentMetadata) []byte {
	out := make([]byte, len(ms))
	for i, m := range ms {
		out[i] = m.SegmentID.ID[15]
	}
	return out
}

func wantSegmentFor(t *testing.T, s *Store, tp proto.TopicIDPartition, epoch int32, offset int64, want byte) {
	t.Helper()
	m, ok, err := s.SegmentFor(tp, epoch, offset)
	if err != nil {
		t.Fatalf("SegmentFor(%d, %d): %v", epoch, offset, err)
	}
	switch {
	case want == 0 && ok:
		t.Errorf("SegmentFor(%d, %d) = segment %d, want none", epoch, offset, m.SegmentID.ID[15])
	case want != 0 && !ok:
		t.Errorf("SegmentFor(%d, %d) = none, want segment %d", epoch, offset, want)
	case want != 0 && m.SegmentID.ID[15] != want:
		t.Errorf("SegmentFor(%d, %d) = segment %d, want segment %d", epoch, offset, m.SegmentID.ID[15], want)
	case ok && m.State != proto.CopySegmentFinished:
		t.Errorf("SegmentFor(%d, %d) returned a segment in %s", epoch, offset, m.State)
	}
}

func wantHighest(t *testing.T, s *Store, tp proto.TopicIDPartition, epoch int32, want int64, wantOK bool) {
	t.Helper()
	got, ok, err := s.HighestOffsetForEpoch(tp, epoch)
	if err != nil {
		t.Fatalf("HighestOffsetForEpoch(%d): %v", epoch, err)
	}
	if ok != wantOK || (ok && got != want) {
		t.Errorf("HighestOffsetForEpoch(%d) = %d, %t; want %d, %t", epoch, got, ok, want, wantOK)
	}
}

func wantEpochSets(t *testing.T, s *Store, tp proto.TopicIDPartition, epoch int32, refs map[int64]byte, unrefs ...byte) {
	t.Helper()
	gotRefs, gotUnrefs := epochSets(t, s, tp, epoch)
	wantUnrefs := map[byte]bool{}
	for _, u := range unrefs {
		wantUnrefs[u] = true
	}
	if !maps.Equal(gotRefs, refs) || !maps.Equal(gotUnrefs, wantUnrefs) {
		t.Errorf("epoch %d: referenced %v unreferenced %v; want %v and %v", epoch, gotRefs, gotUnrefs, refs, wantUnrefs)
	}
}

// The worked lifecycle of section 6 (RemoteLogSegmentLifecycleTest.testRemoteLogSegmentLifeCycle
// and RemoteLogMetadataCacheTest.testSegmentsLifeCycleInCache).
func TestKafkaSegmentLifecycle(t *testing.T) {
	s, _ := openMem(t)
	tp := testTP(0)
	f := newFeed(t, s, 2)
	s0, s1, s2, s3 := segID(tp, 1), segID(tp, 2), segID(tp, 3), segID(tp, 4)

	f.applyOK(add(s0, 0, 100, 0, 0, 1, 20, 2, 80))
	// Still copying: not readable, and no epoch has a highest offset.
	wantSegmentFor(t, s, tp, 1, 40, 0)
	for epoch := int32(0); epoch <= 2; epoch++ {
		wantHighest(t, s, tp, epoch, 0, false)
	}
	f.applyOK(update(s0, proto.CopySegmentFinished))
	f.applyOK(copied(s1, 101, 200, 2, 101)...)
	f.applyOK(copied(s2, 201, 300, 2, 201, 3, 240)...)
	f.applyOK(copied(s3, 250, 400, 3, 250, 4, 370)...)

	for _, c := range []struct {
		epoch  int32
		offset int64
		want   byte
	}{
		{1, 40, 1}, {2, 110, 2}, {3, 240, 3}, {3, 250, 4}, {4, 375, 4},
		{1, 110, 0}, {4, 401, 0}, {5, 301, 0},
	} {
		wantSegmentFor(t, s, tp, c.epoch, c.offset, c.want)
	}

	// The returned view is the add record merged with its latest update.
	m, ok, err := s.SegmentFor(tp, 1, 40)
	if err != nil || !ok {
		t.Fatalf("SegmentFor(1, 40) = %v, %v", ok, err)
	}
	want := *add(s0, 0, 100, 0, 0, 1, 20, 2, 80)
	want.State, want.BrokerID, want.EventTimestampMs = proto.CopySegmentFinished, 1, 200
	if !reflect.DeepEqual(m, want) {
		t.Errorf("SegmentFor(1, 40) =\n%+v\nwant\n%+v", m, want)
	}

	f.applyOK(update(s0, proto.DeleteSegmentStarted))
	wantSegmentFor(t, s, tp, 0, 10, 0)
	if got, _ := s.SegmentsForEpoch(tp, 0); !slices.Equal(ids(got), []byte{1}) {
		t.Errorf("SegmentsForEpoch(0) while deleting = %v, want [1]", ids(got))
	}
	f.applyOK(update(s0, proto.DeleteSegmentFinished))
	wantSegmentFor(t, s, tp, 0, 10, 0)
	if _, ok, err := s.Segment(s0); ok || err != nil {
		t.Errorf("Segment(s0) after DELETE_SEGMENT_FINISHED = %v, %v; want absent", ok, err)
	}

	// Highest offsets are never lowered, not even when their segment is gone.
	for epoch, want := range map[int32]int64{0: 19, 1: 79, 2: 239, 3: 369, 4: 400} {
		wantHighest(t, s, tp, epoch, want, true)
	}
	wantHighest(t, s, tp, 5, 0, false)

	segs, err := s.Segments(tp)
	if err != nil || !slices.Equal(ids(segs), []byte{2, 3, 4}) {
		t.Errorf("Segments = %v, %v; want [2 3 4]", ids(segs), err)
	}
	if got, _ := s.SegmentsForEpoch(tp, 3); !slices.Equal(ids(got), []byte{3, 4}) {
		t.Errorf("SegmentsForEpoch(3) = %v, want [3 4]", ids(got))
	}
	if size, _ := s.RemoteLogSizeForEpoch(tp, 2); size != 2*1024 {
		t.Errorf("RemoteLogSizeForEpoch(2) = %d, want %d", size, 2*1024)
	}
	if size, _ := s.RemoteLogSizeForEpoch(tp, 9); size != 0 {
		t.Errorf("RemoteLogSizeForEpoch(9) = %d, want 0", size)
	}
	if size, _ := s.RemoteLogSize(tp); size != 3*1024 {
		t.Errorf("RemoteLogSize = %d, want %d", size, 3*1024)
	}
	mustCheck(t, s)
}

// RemoteLogMetadataCacheTest: a segment in each state, as lookups and listings see it.
func TestKafkaSegmentStates(t *testing.T) {
	tp := testTP(0)
	for _, c := range []struct {
		name     string
		updates  []proto.SegmentState
		readable bool
		listed   bool
	}{
		{"COPY_SEGMENT_STARTED", nil, false, true},
		{"COPY_SEGMENT_FINISHED", []proto.SegmentState{proto.CopySegmentFinished}, true, true},
		{"DELETE_SEGMENT_STARTED", []proto.SegmentState{proto.CopySegmentFinished, proto.DeleteSegmentStarted}, false, true},
		{"DELETE_SEGMENT_FINISHED", []proto.SegmentState{proto.CopySegmentFinished, proto.DeleteSegmentStarted, proto.DeleteSegmentFinished}, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, _ := openMem(t)
			f := newFeed(t, s, 0)
			id := segID(tp, 1)
			f.applyOK(add(id, 101, 200, 0, 101))
			for _, st := range c.updates {
				f.applyOK(update(id, st))
			}
			var want byte
			if c.readable {
				want = 1
			}
			wantSegmentFor(t, s, tp, 0, 150, want)
			var wantList []byte
			if c.listed {
				wantList = []byte{1}
			}
			all, err := s.Segments(tp)
			if err != nil || !slices.Equal(ids(all), wantList) {
				t.Errorf("Segments = %v, %v; want %v", ids(all), err, wantList)
			}
			forEpoch, err := s.SegmentsForEpoch(tp, 0)
			if err != nil || !slices.Equal(ids(forEpoch), wantList) {
				t.Errorf("SegmentsForEpoch(0) = %v, %v; want %v", ids(forEpoch), err, wantList)
			}
			mustCheck(t, s)
		})
	}
}

// RemoteLogMetadataCacheTest.testCacheListSegments.
func TestKafkaListSegments(t *testing.T) {
	s, _ := openMem(t)
	tp := testTP(0)
	f := newFeed(t, s, 0)
	f.applyOK(copied(segID(tp, 1), 0, 100, 0, 0)...)
	f.applyOK(copied(segID(tp, 2), 101, 200, 0, 101)...)
	f.applyOK(copied(segID(tp, 3), 201, 400, 0, 201, 1, 301)...)
	if got, _ := s.SegmentsForEpoch(tp, 0); !slices.Equal(ids(got), []byte{1, 2, 3}) {
		t.Errorf("SegmentsForEpoch(0) = %v, want [1 2 3]", ids(got))
	}
	if got, _ := s.SegmentsForEpoch(tp, 1); !slices.Equal(ids(got), []byte{3}) {
		t.Errorf("SegmentsForEpoch(1) = %v, want [3]", ids(got))
	}
	if got, _ := s.Segments(tp); !slices.Equal(ids(got), []byte{1, 2, 3}) {
		t.Errorf("Segments = %v, want [1 2 3]", ids(got))
	}
}

// RemoteLogLeaderEpochStateTest, through the store: every segment has the one epoch 0, so the
// epoch's end offset is the segment's.
func TestKafkaEpochState(t *testing.T) {
	tp := testTP(0)
	type seg struct {
		n          byte
		start, end int64
		finished   bool
	}
	for _, c := range []struct {
		name    string
		segs    []seg
		refs    map[int64]byte
		unrefs  []byte
		highest int64
		lookups map[int64]byte // offset -> segment SegmentFor(0, offset) returns
		listed  []byte         // SegmentsForEpoch(0), by start offset
	}{
		{
			name:    "consecutive",
			segs:    []seg{{1, 10, 100, true}, {2, 101, 200, true}},
			refs:    map[int64]byte{10: 1, 101: 2},
			highest: 200,
			lookups: map[int64]byte{90: 1, 150: 2, 201: 0, 9: 0},
			listed:  []byte{1, 2},
		},
		{
			name:    "overlapping segment from a new leader",
			segs:    []seg{{1, 10, 100, true}, {2, 5, 150, true}},
			refs:    map[int64]byte{5: 2},
			unrefs:  []byte{1},
			highest: 150,
			lookups: map[int64]byte{11: 2, 95: 2},
			listed:  []byte{2, 1},
		},
		{
			name:    "several overlapping",
			segs:    []seg{{1, 10, 100, true}, {2, 5, 150, true}, {3, 148, 155, true}, {4, 4, 200, true}},
			refs:    map[int64]byte{4: 4},
			unrefs:  []byte{1, 2, 3},
			highest: 200,
			lookups: map[int64]byte{11: 4, 150: 4, 200: 4},
			listed:  []byte{4, 2, 1, 3},
		},
		{
			name:    "exact duplicate",
			segs:    []seg{{1, 10, 100, true}, {2, 10, 100, true}},
			refs:    map[int64]byte{10: 2},
			unrefs:  []byte{1},
			highest: 100,
			lookups: map[int64]byte{11: 2},
			listed:  []byte{1, 2},
		},
		{
			name:    "same start offset, larger end",
			segs:    []seg{{1, 10, 100, true}, {2, 10, 150, true}},
			refs:    map[int64]byte{10: 2},
			unrefs:  []byte{1},
			highest: 150,
			lookups: map[int64]byte{11: 2, 111: 2},
			listed:  []byte{1, 2},
		},
		{
			// testListAllRemoteLogSegmentsShouldReturnSortedSegments: one still copying, one
			// replaced by a later upload that starts before it.
			name:    "sorted listing",
			segs:    []seg{{1, 0, 4, false}, {2, 5, 10, true}, {3, 11, 100, true}, {4, 9, 150, true}},
			refs:    map[int64]byte{5: 2, 9: 4},
			unrefs:  []byte{1, 3},
			highest: 150,
			lookups: map[int64]byte{3: 0, 7: 2, 50: 4},
			listed:  []byte{1, 2, 4, 3},
		},
		{
			// A segment that starts where a referenced one does but ends before the epoch's
			// highest offset takes its slot without moving it to unreferenced: Kafka's loop
			// does not run, its put overwrites. Segment 1 is then in neither set of the epoch
			// (still listed for the partition), exactly as in Kafka.
			name:    "same start offset below the highest offset",
			segs:    []seg{{1, 10, 100, true}, {2, 150, 200, true}, {3, 10, 120, true}},
			refs:    map[int64]byte{10: 3, 150: 2},
			highest: 200,
			lookups: map[int64]byte{50: 3, 120: 3, 121: 0, 130: 0, 175: 2},
			listed:  []byte{3, 2},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, _ := openMem(t)
			f := newFeed(t, s, 0)
			for _, sg := range c.segs {
				id := segID(tp, sg.n)
				f.applyOK(add(id, sg.start, sg.end, 0, sg.start))
				if sg.finished {
					f.applyOK(update(id, proto.CopySegmentFinished))
				}
			}
			wantEpochSets(t, s, tp, 0, c.refs, c.unrefs...)
			wantHighest(t, s, tp, 0, c.highest, true)
			for offset, want := range c.lookups {
				wantSegmentFor(t, s, tp, 0, offset, want)
			}
			got, err := s.SegmentsForEpoch(tp, 0)
			if err != nil || !slices.Equal(ids(got), c.listed) {
				t.Errorf("SegmentsForEpoch(0) = %v, %v; want %v", ids(got), err, c.listed)
			}
			mustCheck(t, s)
		})
	}
}

// RemoteLogLeaderEpochStateTest.handleSegmentWithDeleteSegmentStartedState and
// ...FinishedState.
func TestKafkaEpochStateDelete(t *testing.T) {
	s, _ := openMem(t)
	tp := testTP(0)
	f := newFeed(t, s, 0)
	s1, s2, s3 := segID(tp, 1), segID(tp, 2), segID(tp, 3)
	f.applyOK(copied(s1, 10, 100, 0, 10)...)
	f.applyOK(copied(s2, 101, 200, 0, 101)...)
	f.applyOK(add(s3, 201, 300, 0, 201))
	wantEpochSets(t, s, tp, 0, map[int64]byte{10: 1, 101: 2}, 3)

	f.applyOK(update(s1, proto.DeleteSegmentStarted), update(s2, proto.DeleteSegmentStarted))
	wantEpochSets(t, s, tp, 0, map[int64]byte{}, 1, 2, 3)
	wantHighest(t, s, tp, 0, 200, true)

	f.applyOK(update(s3, proto.DeleteSegmentStarted))
	f.applyOK(update(s1, proto.DeleteSegmentFinished), update(s2, proto.DeleteSegmentFinished), update(s3, proto.DeleteSegmentFinished))
	wantEpochSets(t, s, tp, 0, map[int64]byte{})
	wantHighest(t, s, tp, 0, 200, true)
	if segs, err := s.Segments(tp); err != nil || len(segs) != 0 {
		t.Errorf("Segments = %v, %v; want none", ids(segs), err)
	}
	info, err := s.Partitions()
	if err != nil || len(info) != 1 || info[0].Segments.Total() != 0 || info[0].Bytes != 0 {
		t.Errorf("Partitions = %+v, %v; want one partition without segments", info, err)
	}
	mustCheck(t, s)
}

// Deleting the last referenced segment of an epoch makes the one before it the last, so a later
// upload is compared with the right entry.
func TestDeleteLastReferenced(t *testing.T) {
	s, _ := openMem(t)
	tp := testTP(0)
	f := newFeed(t, s, 0)
	f.applyOK(copied(segID(tp, 1), 0, 99, 0, 0)...)
	f.applyOK(copied(segID(tp, 2), 100, 199, 0, 100)...)
	f.applyOK(update(segID(tp, 2), proto.DeleteSegmentStarted))
	mustCheck(t, s)
	// Highest is 199, so a re-upload of 100..150 does not move segment 1 (it starts below).
	f.applyOK(copied(segID(tp, 3), 100, 150, 0, 100)...)
	wantEpochSets(t, s, tp, 0, map[int64]byte{0: 1, 100: 3}, 2)
	f.applyOK(update(segID(tp, 3), proto.DeleteSegmentStarted), update(segID(tp, 1), proto.DeleteSegmentStarted))
	wantEpochSets(t, s, tp, 0, map[int64]byte{}, 1, 2, 3)
	mustCheck(t, s)
}

// Every (from, to) pair of segment states: applied or dropped as Kafka's
// RemoteLogSegmentState.isValidTransition and the cache's own checks decide.
func TestSegmentTransitions(t *testing.T) {
	tp := testTP(0)
	const (
		none = proto.SegmentState(-1)
		bad  = proto.SegmentState(7)
		cs   = proto.CopySegmentStarted
		cf   = proto.CopySegmentFinished
		ds   = proto.DeleteSegmentStarted
		df   = proto.DeleteSegmentFinished
	)
	// path reaches the from state; DELETE_SEGMENT_FINISHED cannot be a from state (the
	// segment is gone).
	paths := map[proto.SegmentState][]proto.SegmentState{none: nil, cs: {}, cf: {cf}, ds: {cf, ds}}
	for _, c := range []struct {
		from, to proto.SegmentState
		want     DropReason // 0: applied
	}{
		{none, cf, UnknownSegment}, {none, ds, UnknownSegment}, {none, df, UnknownSegment},
		{none, bad, InvalidRecord},
		{cs, cs, InvalidRecord}, // a valid transition, but only the add record may set it
		{cs, cf, 0}, {cs, ds, 0}, {cs, df, InvalidTransition}, {cs, bad, InvalidRecord},
		{cf, cs, InvalidTransition}, {cf, cf, 0}, {cf, ds, 0}, {cf, df, InvalidTransition},
		{ds, cs, InvalidTransition}, {ds, cf, InvalidTransition}, {ds, ds, 0}, {ds, df, 0},
	} {
		s, _ := openMem(t)
		f := newFeed(t, s, 0)
		id := segID(tp, 1)
		f.applyOK(copied(segID(tp, 9), 0, 9, 0, 0)...) // the partition is known
		if c.from != none {
			f.applyOK(add(id, 10, 20, 0, 10))
			for _, st := range paths[c.from] {
				f.applyOK(update(id, st))
			}
		}
		before := dump(t, s)
		res := f.apply(update(id, c.to))
		after := dump(t, s)
		if c.want == 0 {
			if res.Applied != 1 {
				t.Errorf("%s -> %s: dropped %+v, want applied", c.from, c.to, res.Dropped)
			}
		} else {
			if len(res.Dropped) != 1 || res.Dropped[0].Reason != c.want || !errors.Is(res.Dropped[0].Err, c.want.Err()) {
				t.Errorf("%s -> %s: result %+v, want dropped as %s", c.from, c.to, res, c.want)
			}
			// A dropped record changes nothing but the offset, and is kept with its reason.
			if next, _ := s.NextOffset(0); next != f.next {
				t.Errorf("%s -> %s: next offset %d, want %d", c.from, c.to, next, f.next)
			}
			if d, ok, err := s.DroppedAt(0, f.next-1); err != nil || !ok || d.Reason != c.want || d.Segment != id.ID ||
				d.UserPartition != tp || !errors.Is(d.Err(), c.want.Err()) {
				t.Errorf("%s -> %s: DroppedAt = %+v, %t, %v; want the drop as %s", c.from, c.to, d, ok, err, c.want)
			}
			if stripOffsets(before) != stripOffsets(after) {
				t.Errorf("%s -> %s: dropped record changed the store:\n%s\n---\n%s", c.from, c.to, before, after)
			}
		}
		mustCheck(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// stripOffsets removes the offset rows of a dump.
// stripOffsets removes from a dump what every record changes, applied or not: the offsets and
// the rows of dropped records.
func stripOffsets(d string) string {
	lines := strings.Split(d, "\n")
	return strings.Join(slices.DeleteFunc(lines, func(l string) bool {
		return strings.HasPrefix(l, "offset ") || strings.HasPrefix(l, "dropped ")
	}), "\n")
}

// Add records: only COPY_SEGMENT_STARTED, only as Kafka's RemoteLogSegmentMetadata constructor
// allows, and only again while the segment is still copying.
func TestAddRecords(t *testing.T) {
	s, _ := openMem(t)
	tp := testTP(0)
	f := newFeed(t, s, 0)
	for _, c := range []struct {
		name string
		rec  *proto.SegmentMetadata
	}{
		{"finished add", func() *proto.SegmentMetadata {
			m := add(segID(tp, 1), 0, 9, 0, 0)
			m.State = proto.CopySegmentFinished
			return m
		}()},
		{"negative start", add(segID(tp, 1), -1, 9, 0, 0)},
		{"end below start", add(segID(tp, 1), 10, 9, 0, 10)},
		{"no epochs", add(segID(tp, 1), 0, 9)},
		{"epochs not ascending", add(segID(tp, 1), 0, 9, 1, 0, 0, 5)},
		{"duplicate epoch", add(segID(tp, 1), 0, 9, 1, 0, 1, 5)},
	} {
		if d := f.applyDropped(c.rec); d.Reason != InvalidRecord {
			t.Errorf("%s: dropped as %s, want InvalidRecord", c.name, d.Reason)
		}
	}
	if _, err := s.Segments(tp); !errors.Is(err, ErrNotFound) {
		t.Errorf("Segments after only invalid adds: %v, want ErrNotFound", err)
	}

	// Re-adding a segment still copying replaces it, epochs included.
	id := segID(tp, 1)
	f.applyOK(add(id, 0, 9, 0, 0, 1, 5))
	readd := add(id, 0, 19, 1, 0, 2, 10)
	readd.SegmentSizeInBytes = 4096
	f.applyOK(readd)
	wantEpochSets(t, s, tp, 0, map[int64]byte{})
	wantEpochSets(t, s, tp, 1, map[int64]byte{}, 1)
	wantEpochSets(t, s, tp, 2, map[int64]byte{}, 1)
	if size, _ := s.RemoteLogSize(tp); size != 4096 {
		t.Errorf("RemoteLogSize after re-add = %d, want 4096", size)
	}
	mustCheck(t, s)
	// Once finished it cannot be added again.
	f.applyOK(update(id, proto.CopySegmentFinished))
	if d := f.applyDropped(add(id, 0, 19, 1, 0, 2, 10)); d.Reason != InvalidTransition {
		t.Errorf("add of a finished segment dropped as %s, want InvalidTransition", d.Reason)
	}
	mustCheck(t, s)
}

// The update's custom metadata replaces the segment's, null included, as Kafka's
// RemoteLogSegmentMetadata.createWithUpdates does; broker id and event time follow the update.
func TestUpdateMergesAsKafka(t *testing.T) {
	s, _ := openMem(t)
	tp := testTP(0)
	f := newFeed(t, s, 0)
	id := segID(tp, 1)
	a := add(id, 0, 9, 0, 0)
	a.CustomMetadata = []byte("from-add")
	f.applyOK(a)
	u := update(id, proto.CopySegmentFinished)
	u.CustomMetadata = []byte{}
	u.BrokerID, u.EventTimestampMs = 7, 777
	f.applyOK(u)
	m, ok, err := s.Segment(id)
	if err != nil || !ok {
		t.Fatalf("Segment = %v, %v", ok, err)
	}
	if m.CustomMetadata == nil || len(m.CustomMetadata) != 0 || m.BrokerID != 7 || m.EventTimestampMs != 777 {
		t.Errorf("after update with empty custom metadata: custom %v (nil %t), broker %d, ts %d",
			m.CustomMetadata, m.CustomMetadata == nil, m.BrokerID, m.EventTimestampMs)
	}
	f.applyOK(update(id, proto.DeleteSegmentStarted))
	m, _, _ = s.Segment(id)
	if m.CustomMetadata != nil {
		t.Errorf("after update with null custom metadata: %v, want null", m.CustomMetadata)
	}
}

// Partition deletion from the marker to the end, with its transitions checked.
func TestPartitionDelete(t *testing.T) {
	s, _ := openMem(t)
	tp, other := testTP(0), testTP(1)
	f := newFeed(t, s, 0)
	wantState := func(want proto.PartitionDeleteState, wantOK bool) {
		t.Helper()
		st, ok, err := s.PartitionDeleteState(tp)
		if err != nil || ok != wantOK || (ok && st != want) {
			t.Errorf("PartitionDeleteState = %s, %t, %v; want %s, %t", st, ok, err, want, wantOK)
		}
	}
	if d := f.applyDropped(partDelete(tp, proto.DeletePartitionStarted)); d.Reason != InvalidTransition {
		t.Errorf("STARTED without MARKED dropped as %s", d.Reason)
	}
	if d := f.applyDropped(partDelete(tp, proto.DeletePartitionFinished)); d.Reason != InvalidTransition {
		t.Errorf("FINISHED without MARKED dropped as %s", d.Reason)
	}
	if d := f.applyDropped(partDelete(tp, 5)); d.Reason != InvalidRecord {
		t.Errorf("state 5 dropped as %s", d.Reason)
	}
	f.applyOK(copied(segID(tp, 1), 0, 99, 0, 0)...)
	f.applyOK(copied(segID(tp, 2), 100, 199, 0, 100)...)
	f.applyOK(add(segID(tp, 3), 200, 299, 1, 200))
	f.applyOK(copied(segID(other, 1), 0, 99, 0, 0)...)
	wantState(0, false)

	f.applyOK(partDelete(tp, proto.DeletePartitionMarked))
	f.applyOK(partDelete(tp, proto.DeletePartitionMarked)) // a controller failover repeats it
	wantState(proto.DeletePartitionMarked, true)
	if d := f.applyDropped(partDelete(tp, proto.DeletePartitionFinished)); d.Reason != InvalidTransition {
		t.Errorf("MARKED -> FINISHED dropped as %s", d.Reason)
	}
	f.applyOK(partDelete(tp, proto.DeletePartitionStarted))
	if d := f.applyDropped(partDelete(tp, proto.DeletePartitionMarked)); d.Reason != InvalidTransition {
		t.Errorf("STARTED -> MARKED dropped as %s", d.Reason)
	}
	wantState(proto.DeletePartitionStarted, true)
	// Reads still work while the remover deletes segments.
	wantSegmentFor(t, s, tp, 0, 50, 1)
	f.applyOK(update(segID(tp, 1), proto.DeleteSegmentStarted), update(segID(tp, 1), proto.DeleteSegmentFinished))
	f.applyOK(update(segID(tp, 3), proto.DeleteSegmentStarted))
	mustCheck(t, s)
	// Segment 2 is never deleted: FINISHED removes it with everything else.
	f.applyOK(partDelete(tp, proto.DeletePartitionFinished))

	for name, err := range map[string]error{
		"Segments":              second(s.Segments(tp)),
		"SegmentsForEpoch":      second(s.SegmentsForEpoch(tp, 0)),
		"RemoteLogSize":         second(s.RemoteLogSize(tp)),
		"RemoteLogSizeForEpoch": second(s.RemoteLogSizeForEpoch(tp, 0)),
		"SegmentFor":            third(s.SegmentFor(tp, 0, 150)),
		"HighestOffsetForEpoch": third(s.HighestOffsetForEpoch(tp, 0)),
		"PartitionDeleteState":  third(s.PartitionDeleteState(tp)),
		"Segment":               third(s.Segment(segID(tp, 2))),
		"NextSegmentWithTxn":    third(s.NextSegmentWithTxnIndex(tp, 0, 0)),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s after DELETE_PARTITION_FINISHED: %v, want ErrNotFound", name, err)
		}
	}
	info, err := s.Partitions()
	if err != nil || len(info) != 1 || info[0].Partition != other {
		t.Errorf("Partitions = %+v, %v; want only %s", info, err, other)
	}
	wantSegmentFor(t, s, other, 0, 50, 1)
	mustCheck(t, s)

	// A partition gone stays gone: a topic id is never reused, so a repeated marker (a
	// controller failover) or an old leader's copy still in flight is stale. Kafka would
	// re-create the partition and start a second deletion; the store drops them.
	wantDropped(t, f, PartitionDeleted, partDelete(tp, proto.DeletePartitionMarked))
	wantDropped(t, f, PartitionDeleted, add(segID(tp, 7), 300, 399, 0, 300))
	wantDropped(t, f, PartitionDeleted, update(segID(tp, 2), proto.CopySegmentFinished))
	wantDropped(t, f, PartitionDeleted, partDelete(tp, proto.DeletePartitionFinished))
	if _, _, err := s.PartitionDeleteState(tp); !errors.Is(err, ErrNotFound) {
		t.Errorf("PartitionDeleteState after late records: %v, want ErrNotFound", err)
	}
	if info, _ := s.Partitions(); len(info) != 1 {
		t.Errorf("Partitions after late records = %+v, want only %s", info, other)
	}
	dropped, err := s.Dropped()
	if n := len(dropped); err != nil || n < 4 || dropped[n-3].Segment != segID(tp, 7).ID || dropped[n-3].Offset != f.next-3 {
		t.Errorf("Dropped = %+v, %v; want the four late records last, the copy of segment 7 second of them", dropped, err)
	}
	mustCheck(t, s)

	// The tombstone and the drops are derived from the metadata partition: a reset removes
	// them with the rest, and the records are read again.
	if err := s.ResetPartition(0, 0); err != nil {
		t.Fatal(err)
	}
	if dropped, err := s.Dropped(); err != nil || len(dropped) != 0 {
		t.Errorf("Dropped after reset = %+v, %v; want none", dropped, err)
	}
	if dump := dump(t, s); strings.Contains(dump, "deleted ") {
		t.Errorf("a tombstone survived the reset:\n%s", dump)
	}
	mustCheck(t, s)
}

// wantDropped applies r, which must be dropped for reason and kept by the store as dropped.
func wantDropped(t *testing.T, f *feed, reason DropReason, r proto.Record) {
	t.Helper()
	res := f.apply(r)
	if len(res.Dropped) != 1 || res.Dropped[0].Reason != reason || !errors.Is(res.Dropped[0].Err, reason.Err()) {
		t.Fatalf("%s: result %+v, want dropped as %s", r.Key(), res, reason)
	}
	d, ok, err := f.s.DroppedAt(f.mp, f.next-1)
	if err != nil || !ok || d.Reason != reason || d.Detail != res.Dropped[0].Detail {
		t.Fatalf("%s: DroppedAt = %+v, %t, %v; want the drop", r.Key(), d, ok, err)
	}
}

// Records after DELETE_PARTITION_FINISHED in the same Apply find the tombstone it leaves and are
// dropped, and nothing of the partition's former rows comes back, through that Apply or a later
// one.
func TestPartitionDeleteAndReAddInOneApply(t *testing.T) {
	s, fs := openMem(t)
	tp := testTP(0)
	f := newFeed(t, s, 0)
	f.applyOK(copied(segID(tp, 1), 0, 99, 5, 0)...)
	res := f.apply(
		partDelete(tp, proto.DeletePartitionMarked),
		partDelete(tp, proto.DeletePartitionStarted),
		update(segID(tp, 1), proto.DeleteSegmentStarted),
		partDelete(tp, proto.DeletePartitionFinished),
		add(segID(tp, 1), 0, 50, 3, 0),
		update(segID(tp, 1), proto.CopySegmentFinished),
	)
	if res.Applied != 4 || len(res.Dropped) != 2 || res.Dropped[0].Reason != PartitionDeleted || res.Dropped[1].Reason != PartitionDeleted {
		t.Fatalf("result %+v, want 4 applied and the last two dropped as PartitionDeleted", res)
	}
	for name, err := range map[string]error{
		"SegmentFor":            third(s.SegmentFor(tp, 3, 25)),
		"HighestOffsetForEpoch": third(s.HighestOffsetForEpoch(tp, 5)),
		"PartitionDeleteState":  third(s.PartitionDeleteState(tp)),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	wantDropped(t, f, PartitionDeleted, add(segID(tp, 2), 60, 80, 5, 60))
	mustCheck(t, s)
	// After a reopen the tombstone is read from the store, not from the writer's memory.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openOn(t, fs)
	f.s = s
	wantDropped(t, f, PartitionDeleted, update(segID(tp, 2), proto.CopySegmentFinished))
	mustCheck(t, s)
}

// Kafka's nextSegmentWithTxnIndex walks the epoch by end offset + 1.
func TestNextSegmentWithTxnIndex(t *testing.T) {
	s, _ := openMem(t)
	tp := testTP(0)
	f := newFeed(t, s, 0)
	withTxn := func(id proto.SegmentID, start, end int64, epochs ...int64) []proto.Record {
		r := copied(id, start, end, epochs...)
		r[0].(*proto.SegmentMetadata).TxnIndexEmpty = false
		return r
	}
	f.applyOK(copied(segID(tp, 1), 0, 99, 0, 0)...)
	f.applyOK(copied(segID(tp, 2), 100, 199, 0, 100)...)
	f.applyOK(withTxn(segID(tp, 3), 200, 299, 0, 200, 1, 250)...)
	f.applyOK(withTxn(segID(tp, 4), 300, 399, 1, 300)...)
	for _, c := range []struct {
		epoch  int32
		offset int64
		want   byte
	}{
		{0, 0, 3}, {0, 150, 3}, {0, 249, 3}, {0, 250, 0}, {1, 260, 3}, {1, 301, 4}, {1, 400, 0}, {2, 0, 0},
	} {
		m, ok, err := s.NextSegmentWithTxnIndex(tp, c.epoch, c.offset)
		got := byte(0)
		if ok {
			got = m.SegmentID.ID[15]
		}
		if err != nil || got != c.want {
			t.Errorf("NextSegmentWithTxnIndex(%d, %d) = %d, %v; want %d", c.epoch, c.offset, got, err, c.want)
		}
	}
}

func second[T any](_ T, err error) error        { return err }
func third[T, U any](_ T, _ U, err error) error { return err }

// A segment whose leader-epoch map names an epoch starting past its end offset (start 100, end
// 150, epochs {3: 100, 4: 200}) is one Kafka accepts and then loops on: queried at epoch 3,
// offset 100, its nextSegmentWithTxnIndex asks for offset 151, which the segment "holds" in
// epoch 3 (up to 199), and asks again forever. The store refuses such a record, and its walk
// advances whatever the store holds.
func TestEpochPastEndOffset(t *testing.T) {
	tp := testTP(0)
	bad := add(segID(tp, 1), 100, 150, 3, 100, 4, 200)

	if err := CheckRecord(bad); !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("CheckRecord = %v, want ErrInvalidRecord", err)
	}
	s, _ := openMem(t)
	f := newFeed(t, s, 0)
	wantDropped(t, f, InvalidRecord, bad)

	// The walk on such a segment, written into the store row by row as an earlier version of
	// the store could have kept it (the same rows addSegment and copyFinished write).
	err := s.write(func() error {
		tx := s.newTxn()
		defer tx.release()
		pt, err := tx.part(prefixOf(tp))
		if err != nil {
			return err
		}
		pt.setRow(partRow{name: tp.Topic, mp: 0})
		ss, err := pt.segment(bad.SegmentID.ID)
		if err != nil {
			return err
		}
		m := tx.meta(bad)
		m.State = proto.CopySegmentFinished
		ss.m, ss.dirty, pt.dirty = m, true, true
		pt.row.counts[proto.CopySegmentFinished]++
		pt.row.bytes += int64(m.SegmentSizeInBytes)
		if err := pt.copyFinished(m); err != nil {
			return err
		}
		return tx.commit()
	})
	if err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		m, ok, err := s.NextSegmentWithTxnIndex(tp, 3, 100)
		if err != nil || ok {
			t.Errorf("NextSegmentWithTxnIndex(3, 100) = %s, %t, %v; want none (its one segment has an empty txn index)", m.SegmentID, ok, err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		// The looping query holds the store open, so Close in the cleanup would wait for it
		// forever: end the test binary instead.
		panic("NextSegmentWithTxnIndex(3, 100) did not return within 10s: the walk does not advance")
	}
}
