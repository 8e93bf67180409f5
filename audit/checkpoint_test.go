package audit

import (
	"slices"
	"testing"
	"time"

	"github.com/stratalog/strata/proto"
)

func finishedSeg(n byte, start, end int64, epoch int32, tsSec int64) proto.SegmentMetadata {
	s := *seg(tp0, n, start, end, epoch)
	s.State = proto.CopySegmentFinished
	s.MaxTimestampMs = now.Add(time.Duration(tsSec) * time.Second).UnixMilli()
	return s
}

func TestPartitionCheckpoint(t *testing.T) {
	started := *seg(tp0, 9, 100, 199, 0)
	deleting := finishedSeg(8, 100, 199, 0, 500)
	deleting.State = proto.DeleteSegmentStarted
	for _, tc := range []struct {
		name string
		segs []proto.SegmentMetadata
		want *Checkpoint // timestamps in seconds after now
	}{
		{"nothing", nil, nil},
		{"nothing finished", []proto.SegmentMetadata{started}, nil},
		{"one segment", []proto.SegmentMetadata{finishedSeg(1, 0, 99, 0, 10)}, &Checkpoint{0, 99, 10}},
		{"contiguous run, any order", []proto.SegmentMetadata{finishedSeg(2, 100, 199, 0, 20), finishedSeg(1, 0, 99, 0, 10), finishedSeg(3, 200, 299, 0, 30)},
			&Checkpoint{0, 299, 30}},
		{"stops at a gap", []proto.SegmentMetadata{finishedSeg(1, 0, 99, 0, 10), finishedSeg(3, 150, 299, 0, 30)}, &Checkpoint{0, 99, 10}},
		{"starts at the lowest remote offset", []proto.SegmentMetadata{finishedSeg(1, 500, 599, 0, 10), finishedSeg(2, 600, 699, 0, 20)}, &Checkpoint{500, 699, 20}},
		{"a copy in progress does not fill a gap", []proto.SegmentMetadata{finishedSeg(1, 0, 99, 0, 10), started, finishedSeg(3, 200, 299, 0, 30)}, &Checkpoint{0, 99, 10}},
		{"a segment being deleted does not count", []proto.SegmentMetadata{finishedSeg(1, 0, 99, 0, 10), deleting, finishedSeg(3, 200, 299, 0, 30)}, &Checkpoint{0, 99, 10}},
		{"leader-epoch change between segments", []proto.SegmentMetadata{finishedSeg(1, 0, 99, 0, 10), finishedSeg(2, 100, 199, 1, 20), finishedSeg(3, 200, 299, 2, 30)},
			&Checkpoint{0, 299, 30}},
		{"a new leader's upload overlaps the old leader's and goes further", []proto.SegmentMetadata{finishedSeg(1, 0, 149, 0, 15), finishedSeg(2, 100, 249, 1, 25)},
			&Checkpoint{0, 249, 25}},
		{"an overlapping upload inside an earlier one neither shortens nor extends the run", []proto.SegmentMetadata{finishedSeg(1, 0, 299, 0, 30), finishedSeg(2, 100, 199, 1, 20), finishedSeg(3, 300, 399, 1, 40)},
			&Checkpoint{0, 399, 40}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := PartitionCheckpoint(tc.segs)
			var want *Checkpoint
			if tc.want != nil {
				want = &Checkpoint{StartOffset: tc.want.StartOffset, Offset: tc.want.Offset, MaxTimestampMs: now.Add(time.Duration(tc.want.MaxTimestampMs) * time.Second).UnixMilli()}
			}
			if (got == nil) != (want == nil) || got != nil && *got != *want {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestTopicCheckpoint(t *testing.T) {
	tp := func(p int32) proto.TopicIDPartition {
		return proto.TopicIDPartition{TopicID: topic, Topic: "orders", Partition: p}
	}
	fin := func(f *fixture, p int32, n byte, start, end, tsSec int64) {
		s := seg(tp(p), n, start, end, 0)
		s.MaxTimestampMs = now.Add(time.Duration(tsSec) * time.Second).UnixMilli()
		f.apply(s, update(s, proto.CopySegmentFinished, now))
	}
	for _, tc := range []struct {
		name     string
		n        int32
		setup    func(f *fixture)
		wantTime int64 // seconds after now; -1 for none
		heldBack []int32
		statuses []PartitionStatus
	}{
		{"the minimum over the live partitions", 2, func(f *fixture) {
			fin(f, 0, 1, 0, 99, 50)
			fin(f, 1, 2, 0, 99, 30)
		}, 30, []int32{}, []PartitionStatus{Tiered, Tiered}},
		{"a live partition with nothing tiered holds the topic back and is named", 3, func(f *fixture) {
			fin(f, 0, 1, 0, 99, 50)
			fin(f, 2, 2, 0, 99, 30)
		}, -1, []int32{1}, []PartitionStatus{Tiered, NothingTiered, Tiered}},
		{"a partition being deleted is excluded", 2, func(f *fixture) {
			fin(f, 0, 1, 0, 99, 50)
			fin(f, 1, 2, 0, 99, 10)
			f.apply(&proto.PartitionDeleteMetadata{TopicIDPartition: tp(1), State: proto.DeletePartitionMarked})
		}, 50, []int32{}, []PartitionStatus{Tiered, Deleting}},
		{"a partition being deleted with nothing tiered does not hold it back", 2, func(f *fixture) {
			fin(f, 0, 1, 0, 99, 50)
			f.apply(&proto.PartitionDeleteMetadata{TopicIDPartition: tp(1), State: proto.DeletePartitionMarked},
				&proto.PartitionDeleteMetadata{TopicIDPartition: tp(1), State: proto.DeletePartitionStarted})
		}, 50, []int32{}, []PartitionStatus{Tiered, Deleting}},
		{"a gap holds its partition's time back to before it", 2, func(f *fixture) {
			fin(f, 0, 1, 0, 99, 10)
			fin(f, 0, 2, 200, 299, 90)
			fin(f, 1, 3, 0, 99, 50)
		}, 10, []int32{}, []PartitionStatus{Tiered, Tiered}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.setup(f)
			got, err := TopicCheckpointOf(f.store, "orders", topic, tc.n, now.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			var statuses []PartitionStatus
			for _, p := range got.Partitions {
				statuses = append(statuses, p.Status)
			}
			if !slices.Equal(statuses, tc.statuses) || !slices.Equal(got.HeldBackBy, tc.heldBack) {
				t.Fatalf("statuses %v held back by %v, want %v and %v", statuses, got.HeldBackBy, tc.statuses, tc.heldBack)
			}
			switch {
			case tc.wantTime < 0 && (got.TimeMs != nil || got.LagMs != nil):
				t.Fatalf("time %v lag %v, want none", *got.TimeMs, got.LagMs)
			case tc.wantTime >= 0 && (got.TimeMs == nil || *got.TimeMs != now.Add(time.Duration(tc.wantTime)*time.Second).UnixMilli()):
				t.Fatalf("time %v, want now+%ds", got.TimeMs, tc.wantTime)
			case tc.wantTime >= 0 && *got.LagMs != time.Hour.Milliseconds()-tc.wantTime*1000:
				t.Fatalf("lag %d", *got.LagMs)
			}
		})
	}
	f := newFixture(t)
	if _, err := TopicCheckpointOf(f.store, "orders", topic, 0, now); err == nil {
		t.Fatal("a partition count of 0 was accepted")
	}
}
