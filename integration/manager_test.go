//go:build integration

package integration

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rlmm"
)

// The tests of this file are the kfake tests of rlmm/*_test.go on a real Apache Kafka broker:
// Strata's metadata manager publishes to and consumes the broker's own __remote_log_metadata,
// which Kafka created and its own manager uses at the same time. Every user partition is
// invented with a fresh random topic id, so Kafka ignores Strata's events (its manager only
// applies events of partitions it leads or follows) and Strata's never mix with Kafka's.

// TestManagerLifecycle follows one user partition through every call a broker makes: add,
// finish, the lookups a fetch makes (SegmentFor, HighestOffsetForEpoch), segment deletion,
// partition deletion, and the calls Kafka refuses at once.
func TestManagerLifecycle(t *testing.T) {
	m := newManager(t, t.TempDir())
	ctx := testContext(t, 2*time.Minute)
	tp := newPartition(t, uniqueTopic(t), 0)
	// other's events go to a metadata partition m does not consume.
	other := newPartitionOff(t, tp, uniqueTopic(t), 0)

	if _, err := m.Segments(tp); !errors.Is(err, rlmm.ErrNotFound) {
		t.Fatalf("Segments before assignment: %v, want ErrNotFound", err)
	}
	assignReady(t, m, tp)
	if segs, err := m.Segments(tp); err != nil || len(segs) != 0 {
		t.Fatalf("Segments of a new partition = %v, %v; want none", segs, err)
	}

	s0 := newSegment(tp, 0, 99, 1000)
	if err := m.AddSegment(ctx, s0); err != nil {
		t.Fatalf("add %s: %v", s0.SegmentID, err)
	}
	// Read your writes: the add is applied when AddSegment returns. A segment still being
	// copied is listed but never returned for a fetch, and raises no epoch's highest offset.
	if segs, err := m.Segments(tp); err != nil || len(segs) != 1 || segs[0].State != proto.CopySegmentStarted {
		t.Fatalf("Segments after the add = %v, %v; want s0 COPY_SEGMENT_STARTED", segs, err)
	}
	if got, ok, err := m.SegmentFor(tp, 0, 50); err != nil || ok {
		t.Fatalf("SegmentFor(0, 50) while copying = %v, %v, %v; want none", got.SegmentID, ok, err)
	}
	if hi, ok, err := m.HighestOffsetForEpoch(tp, 0); err != nil || ok {
		t.Fatalf("HighestOffsetForEpoch(0) while copying = %d, %v, %v; want none", hi, ok, err)
	}

	if err := m.UpdateSegment(ctx, updateOf(s0, proto.CopySegmentFinished)); err != nil {
		t.Fatalf("finish %s: %v", s0.SegmentID, err)
	}
	wantSegment(t, m, tp, 0, 50, s0)
	wantHighest(t, m, tp, 0, 99)

	// s1 spans epochs 0 and 1: offsets 100-149 are in epoch 0, 150-199 in epoch 1.
	s1 := newSegment(tp, 100, 199, 1000, proto.EpochEntry{Epoch: 0, StartOffset: 100}, proto.EpochEntry{Epoch: 1, StartOffset: 150})
	if err := m.AddSegment(ctx, s1); err != nil {
		t.Fatalf("add %s: %v", s1.SegmentID, err)
	}
	if err := m.UpdateSegment(ctx, updateOf(s1, proto.CopySegmentFinished)); err != nil {
		t.Fatalf("finish %s: %v", s1.SegmentID, err)
	}
	wantSegment(t, m, tp, 0, 120, s1)
	wantSegment(t, m, tp, 1, 160, s1)
	wantSegment(t, m, tp, 1, 199, s1)
	wantSegment(t, m, tp, 0, 160, nil) // 160 is not in epoch 0
	wantSegment(t, m, tp, 1, 200, nil) // past the last remote offset
	wantSegment(t, m, tp, 2, 160, nil) // an epoch nothing was copied in
	wantHighest(t, m, tp, 0, 149)
	wantHighest(t, m, tp, 1, 199)

	// Deleting s0: once DELETE_SEGMENT_STARTED it is no longer served but still listed; once
	// DELETE_SEGMENT_FINISHED it is gone. The highest offset of epoch 0 is never lowered.
	if err := m.UpdateSegment(ctx, updateOf(s0, proto.DeleteSegmentStarted)); err != nil {
		t.Fatalf("start deleting %s: %v", s0.SegmentID, err)
	}
	wantSegment(t, m, tp, 0, 50, nil)
	if got, ok, err := m.Segment(s0.SegmentID); err != nil || !ok || got.State != proto.DeleteSegmentStarted {
		t.Fatalf("Segment(s0) = %v, %v, %v; want DELETE_SEGMENT_STARTED", got.State, ok, err)
	}
	if err := m.UpdateSegment(ctx, updateOf(s0, proto.DeleteSegmentFinished)); err != nil {
		t.Fatalf("finish deleting %s: %v", s0.SegmentID, err)
	}
	segs, err := m.Segments(tp)
	if err != nil || len(segs) != 1 || segs[0].SegmentID != s1.SegmentID {
		t.Fatalf("Segments after deleting s0 = %v, %v; want only s1", segs, err)
	}
	wantHighest(t, m, tp, 0, 149)

	// What Kafka refuses at once, without publishing: an add not COPY_SEGMENT_STARTED, an update
	// to COPY_SEGMENT_STARTED, a write for a metadata partition this manager does not consume.
	bad := newSegment(tp, 200, 299, 1000)
	bad.State = proto.CopySegmentFinished
	if err := m.AddSegment(ctx, bad); !errors.Is(err, rlmm.ErrInvalidArgument) {
		t.Errorf("add in COPY_SEGMENT_FINISHED: %v, want ErrInvalidArgument", err)
	}
	if err := m.UpdateSegment(ctx, updateOf(s1, proto.CopySegmentStarted)); !errors.Is(err, rlmm.ErrInvalidArgument) {
		t.Errorf("update to COPY_SEGMENT_STARTED: %v, want ErrInvalidArgument", err)
	}
	if err := m.AddSegment(ctx, newSegment(other, 0, 9, 10)); !errors.Is(err, rlmm.ErrNotAssigned) {
		t.Errorf("add for %s (metadata partition %d, not consumed): %v, want ErrNotAssigned",
			other, proto.MetadataPartition(other, kafkaMetadataPartitions), err)
	}

	// Deleting the partition: MARKED and STARTED are states it passes through; FINISHED drops
	// all its metadata, after which it reads as a partition with nothing tiered.
	for _, st := range []proto.PartitionDeleteState{proto.DeletePartitionMarked, proto.DeletePartitionStarted} {
		if err := m.PutPartitionDelete(ctx, &proto.PartitionDeleteMetadata{
			TopicIDPartition: tp, BrokerID: 1, EventTimestampMs: time.Now().UnixMilli(), State: st,
		}); err != nil {
			t.Fatalf("publish %s: %v", st, err)
		}
		if got, ok, err := m.PartitionDeleteState(tp); err != nil || !ok || got != st {
			t.Fatalf("PartitionDeleteState after publishing %s = %s, %v, %v", st, got, ok, err)
		}
	}
	if err := m.PutPartitionDelete(ctx, &proto.PartitionDeleteMetadata{
		TopicIDPartition: tp, BrokerID: 1, EventTimestampMs: time.Now().UnixMilli(), State: proto.DeletePartitionFinished,
	}); err != nil {
		t.Fatalf("publish DELETE_PARTITION_FINISHED: %v", err)
	}
	if got, ok, err := m.PartitionDeleteState(tp); err != nil || ok {
		t.Fatalf("PartitionDeleteState after FINISHED = %s, %v, %v; want none", got, ok, err)
	}
	if segs, err := m.Segments(tp); err != nil || len(segs) != 0 {
		t.Fatalf("Segments after DELETE_PARTITION_FINISHED = %v, %v; want none", segs, err)
	}
	if hi, ok, err := m.HighestOffsetForEpoch(tp, 1); err != nil || ok {
		t.Fatalf("HighestOffsetForEpoch(1) after DELETE_PARTITION_FINISHED = %d, %v, %v; want none", hi, ok, err)
	}
}

// wantSegment checks that SegmentFor(tp, epoch, offset) returns want, or nothing when want is nil.
func wantSegment(t *testing.T, m *rlmm.Manager, tp proto.TopicIDPartition, epoch int32, offset int64, want *proto.SegmentMetadata) {
	t.Helper()
	got, ok, err := m.SegmentFor(tp, epoch, offset)
	switch {
	case err != nil:
		t.Fatalf("SegmentFor(epoch %d, offset %d): %v", epoch, offset, err)
	case want == nil && ok:
		t.Fatalf("SegmentFor(epoch %d, offset %d) = %s, want none", epoch, offset, got.SegmentID.ID)
	case want != nil && !ok:
		t.Fatalf("SegmentFor(epoch %d, offset %d) found nothing, want %s", epoch, offset, want.SegmentID.ID)
	case want != nil && (got.SegmentID != want.SegmentID || got.State != proto.CopySegmentFinished ||
		got.StartOffset != want.StartOffset || got.EndOffset != want.EndOffset || !slices.Equal(got.LeaderEpochs, want.LeaderEpochs)):
		t.Fatalf("SegmentFor(epoch %d, offset %d) = %s, want %s in COPY_SEGMENT_FINISHED", epoch, offset, &got, want)
	}
}

// wantHighest checks HighestOffsetForEpoch(tp, epoch).
func wantHighest(t *testing.T, m *rlmm.Manager, tp proto.TopicIDPartition, epoch int32, want int64) {
	t.Helper()
	if got, ok, err := m.HighestOffsetForEpoch(tp, epoch); err != nil || !ok || got != want {
		t.Fatalf("HighestOffsetForEpoch(%d) = %d, %v, %v; want %d", epoch, got, ok, err, want)
	}
}

// TestManagerReadiness: a second manager, with an empty store, that is assigned a partition
// another manager wrote to is not answerable until WaitReady says so, and then it answers with
// everything the topic held at assignment, the other manager's writes included.
func TestManagerReadiness(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	writer := newManager(t, t.TempDir())
	tp := newPartition(t, uniqueTopic(t), 3)
	assignReady(t, writer, tp)
	const n = 15
	for i := range int64(n) {
		s := newSegment(tp, i*100, i*100+99, 500)
		if err := writer.AddSegment(ctx, s); err != nil {
			t.Fatalf("add segment %d: %v", i, err)
		}
		if err := writer.UpdateSegment(ctx, updateOf(s, proto.CopySegmentFinished)); err != nil {
			t.Fatalf("finish segment %d: %v", i, err)
		}
	}

	reader := newManager(t, t.TempDir())
	if err := reader.Ready(tp); !errors.Is(err, rlmm.ErrNotFound) {
		t.Fatalf("Ready before assignment: %v, want ErrNotFound", err)
	}
	// WaitReady of a partition never assigned cannot succeed: it says so at once.
	if err := reader.WaitReady(ctx, tp); !errors.Is(err, rlmm.ErrNotFound) {
		t.Fatalf("WaitReady before assignment: %v, want ErrNotFound", err)
	}
	if err := reader.AssignPartitions(ctx, nil, []proto.TopicIDPartition{tp}); err != nil {
		t.Fatalf("assign %s as a follower: %v", tp, err)
	}
	// Right after the assignment the partition is loading or, if the fetch was quick, ready;
	// a read never answers from a partial view.
	if err := reader.Ready(tp); err != nil && !errors.Is(err, rlmm.ErrNotReady) {
		t.Fatalf("Ready after assignment: %v, want nil or ErrNotReady", err)
	}
	if err := reader.WaitReady(ctx, tp); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	segs, err := reader.Segments(tp)
	if err != nil || len(segs) != n {
		t.Fatalf("Segments once ready: %d, %v; want the writer's %d", len(segs), err, n)
	}
	for i, s := range segs {
		if s.StartOffset != int64(i)*100 || s.State != proto.CopySegmentFinished {
			t.Errorf("segment %d: start %d in %s, want start %d COPY_SEGMENT_FINISHED", i, s.StartOffset, s.State, i*100)
		}
	}
	if hi, ok, err := reader.HighestOffsetForEpoch(tp, 0); err != nil || !ok || hi != n*100-1 {
		t.Errorf("HighestOffsetForEpoch(0) = %d, %v, %v; want %d", hi, ok, err, n*100-1)
	}

	// A write by the reader is read by the writer: both consume the same metadata partition.
	s := newSegment(tp, n*100, n*100+99, 500)
	if err := reader.AddSegment(ctx, s); err != nil {
		t.Fatalf("add through the reader: %v", err)
	}
	waitUntil(t, "the writer applying the reader's add", 30*time.Second, func() bool {
		_, ok, err := writer.Segment(s.SegmentID)
		return err == nil && ok
	})
}

// TestManagerRestartReadsOnlyTheTail: a manager reopened on its store resumes each metadata
// partition where the store left it, so it fetches only what was published while it was away,
// and answers with the old and the new. Kafka's manager replays the whole topic instead
// (docs/KAFKA_SEMANTICS.md section 5), which a manager with an empty store shows for contrast.
func TestManagerRestartReadsOnlyTheTail(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	dir := t.TempDir()
	tp := newPartition(t, uniqueTopic(t), 0)
	mp := proto.MetadataPartition(tp, kafkaMetadataPartitions)

	m := newManager(t, dir)
	assignReady(t, m, tp)
	var segs []*proto.SegmentMetadata
	for i := range int64(20) {
		s := newSegment(tp, i*100, i*100+99, 500)
		segs = append(segs, s)
		if err := m.AddSegment(ctx, s); err != nil {
			t.Fatalf("add segment %d: %v", i, err)
		}
		if err := m.UpdateSegment(ctx, updateOf(s, proto.CopySegmentFinished)); err != nil {
			t.Fatalf("finish segment %d: %v", i, err)
		}
	}
	// Whatever the manager applied is in its store when Close returns; the loop may apply a
	// record of Kafka's own after this look, so the store's offset is at least this.
	appliedAtClose := statsOf(t, m, mp).Applied
	if err := m.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	// While it is away, another broker publishes three records for the partition.
	raw := kafkaClient(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	extra := newSegment(tp, 2000, 2099, 500)
	var recs []*kgo.Record
	for _, r := range []proto.Record{extra, updateOf(extra, proto.CopySegmentFinished), updateOf(segs[0], proto.DeleteSegmentStarted)} {
		b, err := proto.Encode(r)
		if err != nil {
			t.Fatalf("encode %s: %v", r, err)
		}
		recs = append(recs, &kgo.Record{Topic: proto.TopicName, Partition: mp, Value: b})
	}
	if err := raw.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce to %s-%d: %v", proto.TopicName, mp, err)
	}
	end := endOffset(t, mp)

	m2 := newManager(t, dir)
	assignReady(t, m2, tp)
	st := statsOf(t, m2, mp)
	t.Logf("reopened: resumed %s-%d at offset %d (%d applied before closing), fetched %d records (3 published while away), applied up to %d",
		proto.TopicName, mp, st.ResumedAt, appliedAtClose, st.Fetched, st.Applied)
	if st.ResumedAt < appliedAtClose || st.ResumedAt > end-3 {
		t.Errorf("resumed at offset %d, want the store's offset: at least %d, and before the 3 records published at %d-%d",
			st.ResumedAt, appliedAtClose, end-3, end-1)
	}
	if st.Applied < end {
		t.Errorf("ready, but applied only up to %d of %d", st.Applied, end)
	}
	if st.Fetched != st.Applied-st.ResumedAt || st.Rebuilds != 0 {
		t.Errorf("fetched %d records from %d to %d (rebuilds %d): want only the tail, each once, no rebuild",
			st.Fetched, st.ResumedAt, st.Applied, st.Rebuilds)
	}
	all, err := m2.Segments(tp)
	if err != nil || len(all) != 21 {
		t.Fatalf("Segments after reopening: %d, %v; want 21", len(all), err)
	}
	if all[0].SegmentID != segs[0].SegmentID || all[0].State != proto.DeleteSegmentStarted {
		t.Errorf("first segment after reopening: %s in %s, want %s in DELETE_SEGMENT_STARTED", all[0].SegmentID.ID, all[0].State, segs[0].SegmentID.ID)
	}
	wantSegment(t, m2, tp, 0, 2050, extra)
	wantSegment(t, m2, tp, 0, 1950, segs[19])

	// An empty store reads the metadata partition from its log start: the full replay.
	m3 := newManager(t, t.TempDir())
	assignReady(t, m3, tp)
	full := statsOf(t, m3, mp)
	t.Logf("empty store: resumed at %d, fetched %d records", full.ResumedAt, full.Fetched)
	if full.Fetched <= st.Fetched || full.Fetched != full.Applied-full.ResumedAt {
		t.Errorf("an empty store fetched %d records (from %d to %d), the reopened one %d: want the whole partition, more than the tail",
			full.Fetched, full.ResumedAt, full.Applied, st.Fetched)
	}
	if got, err := m3.Segments(tp); err != nil || len(got) != len(all) {
		t.Errorf("an empty store lists %d segments (%v), the reopened one %d", len(got), err, len(all))
	}
}

// TestManagerRemoteLogSizeByEpoch follows Kafka's remote log size tests: the size of an epoch
// counts every segment of that epoch not yet DELETE_SEGMENT_FINISHED, those still copying
// included, and a segment spanning two epochs counts in both.
func TestManagerRemoteLogSizeByEpoch(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	m := newManager(t, t.TempDir())
	tp := newPartition(t, uniqueTopic(t), 0)
	assignReady(t, m, tp)
	s0 := newSegment(tp, 0, 99, 1000, proto.EpochEntry{Epoch: 0, StartOffset: 0})
	s1 := newSegment(tp, 100, 199, 2000, proto.EpochEntry{Epoch: 0, StartOffset: 100}, proto.EpochEntry{Epoch: 1, StartOffset: 150})
	s2 := newSegment(tp, 200, 299, 4000, proto.EpochEntry{Epoch: 1, StartOffset: 200})
	for _, s := range []*proto.SegmentMetadata{s0, s1, s2} {
		if err := m.AddSegment(ctx, s); err != nil {
			t.Fatalf("add %s: %v", s.SegmentID, err)
		}
	}
	for _, s := range []*proto.SegmentMetadata{s0, s1} {
		if err := m.UpdateSegment(ctx, updateOf(s, proto.CopySegmentFinished)); err != nil {
			t.Fatalf("finish %s: %v", s.SegmentID, err)
		}
	}
	wantSizes := func(when string, want map[int32]int64, total int64) {
		t.Helper()
		for epoch, w := range want {
			if got, err := m.RemoteLogSizeForEpoch(tp, epoch); err != nil || got != w {
				t.Errorf("%s: RemoteLogSizeForEpoch(%d) = %d, %v; want %d", when, epoch, got, err, w)
			}
		}
		if got, err := m.RemoteLogSize(tp); err != nil || got != total {
			t.Errorf("%s: RemoteLogSize = %d, %v; want %d", when, got, err, total)
		}
	}
	wantSizes("s2 still copying", map[int32]int64{0: 3000, 1: 6000, 7: 0}, 7000)

	if err := m.UpdateSegment(ctx, updateOf(s0, proto.DeleteSegmentStarted)); err != nil {
		t.Fatal(err)
	}
	wantSizes("s0 being deleted", map[int32]int64{0: 3000, 1: 6000}, 7000)
	if err := m.UpdateSegment(ctx, updateOf(s0, proto.DeleteSegmentFinished)); err != nil {
		t.Fatal(err)
	}
	wantSizes("s0 deleted", map[int32]int64{0: 2000, 1: 6000}, 6000)
	if segs, err := m.SegmentsForEpoch(tp, 1); err != nil || len(segs) != 2 || segs[0].SegmentID != s1.SegmentID || segs[1].SegmentID != s2.SegmentID {
		t.Errorf("SegmentsForEpoch(1) = %v, %v; want s1 and s2 by start offset", segs, err)
	}
}

// TestManagerWriteOutcomes is rlmm's TestWriteOutcomes on the real broker: every reason the store
// drops a record reaches the write that published it, for a partition the manager follows, with
// the offset the record landed at; for a partition it leads and has ready the same writes are
// refused before anything is produced.
func TestManagerWriteOutcomes(t *testing.T) {
	m := newManager(t, t.TempDir())
	ctx := testContext(t, 2*time.Minute)
	followed := newPartition(t, uniqueTopic(t), 0)
	led := newPartition(t, uniqueTopic(t), 0)
	if err := m.AssignPartitions(ctx, []proto.TopicIDPartition{led}, []proto.TopicIDPartition{followed}); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitReady(ctx, led, followed); err != nil {
		t.Fatal(err)
	}
	want := func(err, reason error, published bool) {
		t.Helper()
		var na *rlmm.NotAppliedError
		if !errors.As(err, &na) || !errors.Is(err, rlmm.ErrNotApplied) || !errors.Is(err, reason) || na.Published != published {
			t.Fatalf("err = %v, want a *NotAppliedError (published %t) wrapping %v", err, published, reason)
		}
		if !published {
			return
		}
		d, ok, derr := m.View().DroppedAt(na.Partition, na.Offset)
		if derr != nil || !ok || !errors.Is(d.Reason.Err(), reason) {
			t.Fatalf("View().DroppedAt(%d, %d) = %+v, %t, %v; want the drop", na.Partition, na.Offset, d, ok, derr)
		}
	}
	put := func(tp proto.TopicIDPartition, st proto.PartitionDeleteState) error {
		return m.PutPartitionDelete(ctx, &proto.PartitionDeleteMetadata{TopicIDPartition: tp, BrokerID: 1, EventTimestampMs: time.Now().UnixMilli(), State: st})
	}

	want(m.UpdateSegment(ctx, updateOf(newSegment(followed, 0, 9, 10), proto.CopySegmentFinished)), cache.ErrUnknownSegment, true)
	s := newSegment(followed, 0, 9, 10)
	if err := m.AddSegment(ctx, s); err != nil {
		t.Fatal(err)
	}
	want(m.UpdateSegment(ctx, updateOf(s, proto.DeleteSegmentFinished)), cache.ErrInvalidTransition, true)
	if err := m.UpdateSegment(ctx, updateOf(s, proto.CopySegmentFinished)); err != nil {
		t.Fatal(err)
	}
	want(m.AddSegment(ctx, s), cache.ErrInvalidTransition, true)
	renamed := followed
	renamed.Topic += "-renamed"
	want(m.AddSegment(ctx, newSegment(renamed, 10, 19, 10)), cache.ErrPartitionMismatch, true)
	for _, st := range []proto.PartitionDeleteState{proto.DeletePartitionMarked, proto.DeletePartitionStarted, proto.DeletePartitionFinished} {
		if err := put(followed, st); err != nil {
			t.Fatal(err)
		}
	}
	want(m.AddSegment(ctx, newSegment(followed, 20, 29, 10)), cache.ErrPartitionDeleted, true)
	want(put(followed, proto.DeletePartitionMarked), cache.ErrPartitionDeleted, true)

	neg := newSegment(followed, -5, 9, 10)
	if err := m.AddSegment(ctx, neg); !errors.Is(err, rlmm.ErrInvalidArgument) || !errors.Is(err, cache.ErrInvalidRecord) {
		t.Errorf("add with a negative start offset: %v, want ErrInvalidArgument wrapping cache.ErrInvalidRecord", err)
	}

	want(m.UpdateSegment(ctx, updateOf(newSegment(led, 0, 9, 10), proto.CopySegmentFinished)), cache.ErrUnknownSegment, false)
	l := newSegment(led, 0, 9, 10)
	if err := m.AddSegment(ctx, l); err != nil {
		t.Fatal(err)
	}
	want(m.UpdateSegment(ctx, updateOf(l, proto.DeleteSegmentFinished)), cache.ErrInvalidTransition, false)
}
