//go:build integration

package integration

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/remover"
	"github.com/stratalog/strata/rsm"
	"github.com/stratalog/strata/tier"
)

// envRemoverSegments sets how many segments TestRemover deletes; the default keeps the suite
// fast, a larger number measures the deletion rate, e.g.
//
//	STRATA_IT_REMOVER_SEGMENTS=10000 integration/run.sh go test -tags integration -count=1 -run TestRemover -v ./integration/
const envRemoverSegments = "STRATA_IT_REMOVER_SEGMENTS"

const defaultRemoverSegments = 200

// TestRemover runs KIP-405's partition remover on the real broker with the S3 server: two
// partitions of a topic are tiered to S3 with tier.Copy, one is marked for deletion, and the
// remover, owning all 50 metadata partitions as the only broker of the cluster would, deletes
// every one of its objects and leaves the other partition's alone, publishing
// DELETE_PARTITION_STARTED, each segment's DELETE_SEGMENT_STARTED and _FINISHED, then
// DELETE_PARTITION_FINISHED. It logs how long the deletion took.
func TestRemover(t *testing.T) {
	e := requireS3(t)
	n := defaultRemoverSegments
	if v := os.Getenv(envRemoverSegments); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number of segments", envRemoverSegments, v)
		}
	}
	const keptSegments = 5
	// Generous enough for tens of thousands of segments; a hang still ends.
	timeout := 2*time.Minute + time.Duration(n)*20*time.Millisecond
	ctx := testContext(t, 2*timeout)

	m := newManager(t, t.TempDir())
	st := s3Store(t, e)
	doomed := newPartition(t, uniqueTopic(t), 0)
	kept := proto.TopicIDPartition{TopicID: doomed.TopicID, Topic: doomed.Topic, Partition: 1}
	forgetPartitions(t, kept)
	assignReady(t, m, doomed, kept)
	tierer, err := tier.New(m, st, tier.WithBrokerID(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// What is left of kept goes the way a partition deletion goes, objects included, as an
		// operator's repair would finish it.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := m.PutPartitionDelete(ctx, &proto.PartitionDeleteMetadata{
			TopicIDPartition: kept, BrokerID: 1, EventTimestampMs: time.Now().UnixMilli(), State: proto.DeletePartitionMarked,
		}); err != nil {
			t.Errorf("mark %s for deletion: %v", kept, err)
			return
		}
		if err := remover.FinishPartition(ctx, m, tierer, 1, kept, zap.NewNop()); err != nil {
			t.Errorf("delete %s: %v", kept, err)
		}
	})

	files := writeSegmentFiles(t, 4<<10, true)
	start := time.Now()
	tierSegments(t, ctx, tierer, doomed, n, files)
	tierSegments(t, ctx, tierer, kept, keptSegments, files)
	seeded := time.Since(start)
	t.Logf("tiered %d segments (2 S3 objects and 2 metadata records each) in %v: %.0f segments/s",
		n+keptSegments, seeded.Round(time.Millisecond), float64(n+keptSegments)/seeded.Seconds())
	if got := len(listObjects(t, st.List(ctx, doomed))); got != 2*n {
		t.Fatalf("S3 holds %d objects of %s, want 2 for each of its %d segments", got, doomed, n)
	}
	keptObjects := listObjects(t, st.List(ctx, kept))
	if len(keptObjects) != 2*keptSegments {
		t.Fatalf("S3 holds %d objects of %s, want %d", len(keptObjects), kept, 2*keptSegments)
	}

	// The remover owns every metadata partition; before the clock starts it has read them all,
	// so that the time measured is the deletion's alone.
	rem, err := remover.New(m, st, remover.WithBrokerID(1), remover.WithLogger(zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rem.Close() })
	all := make([]int32, kafkaMetadataPartitions)
	for i := range all {
		all[i] = int32(i)
	}
	if err := rem.SetOwned(ctx, all); err != nil {
		t.Fatalf("SetOwned(all %d metadata partitions): %v", len(all), err)
	}
	waitUntil(t, "the remover's manager reading every metadata partition", time.Minute, func() bool {
		for _, mp := range all {
			if m.MetadataPartitionReady(mp) != nil {
				return false
			}
		}
		return true
	})

	mp := proto.MetadataPartition(doomed, kafkaMetadataPartitions)
	from := endOffset(t, mp)
	start = time.Now()
	if err := m.PutPartitionDelete(ctx, &proto.PartitionDeleteMetadata{
		TopicIDPartition: doomed, BrokerID: 1, EventTimestampMs: time.Now().UnixMilli(), State: proto.DeletePartitionMarked,
	}); err != nil {
		t.Fatalf("mark %s for deletion: %v", doomed, err)
	}
	waitUntil(t, fmt.Sprintf("the remover deleting %s", doomed), timeout, func() bool {
		if err := rem.Stats().LastError; err != nil {
			t.Fatalf("the remover failed: %v", err)
		}
		// DELETE_PARTITION_FINISHED drops the partition's delete state with all its metadata.
		// The manager applies it before the remover's write returns, so the remover counts the
		// deletion a moment after the state is gone: wait for both.
		_, ok, err := m.PartitionDeleteState(doomed)
		return err == nil && !ok && rem.Stats().InProgress == 0
	})
	took := time.Since(start)
	t.Logf("the remover deleted a partition of %d segments in %v: %.0f segments/s",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds())
	if s := rem.Stats(); s.Done != 1 || s.Failures != 0 || s.Pending != 0 || s.InProgress != 0 {
		t.Errorf("remover stats %+v, want 1 deletion done, no failure, nothing pending", s)
	}

	if objs := listObjects(t, st.List(ctx, doomed)); len(objs) != 0 {
		t.Errorf("S3 still holds %d objects of the deleted %s, e.g. %s", len(objs), doomed, objs[0].Name)
	}
	if got := listObjects(t, st.List(ctx, kept)); !slices.EqualFunc(got, keptObjects, func(a, b rsm.Object) bool {
		return a.Name == b.Name && a.Size == b.Size
	}) {
		t.Errorf("objects of %s: %q after the deletion of %s, want %q", kept, objectNames(got), doomed, objectNames(keptObjects))
	}
	if segs, err := m.Segments(kept); err != nil || len(segs) != keptSegments {
		t.Errorf("Segments(%s) = %d, %v; want its %d segments", kept, len(segs), err, keptSegments)
	}
	checkDeletionEvents(t, readMetadata(t, mp, from, endOffset(t, mp)), doomed, n)
}

// tierSegments tiers n segments of tp, each holding 100 offsets, through tr with 16 copies at
// a time.
func tierSegments(t *testing.T, ctx context.Context, tr *tier.Tierer, tp proto.TopicIDPartition, n int, files segmentFiles) {
	t.Helper()
	work := make(chan int64)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				seg := newSegment(tp, i*100, i*100+99, int32(len(files.Log)))
				if _, err := tr.Copy(ctx, seg, files.Data); err != nil {
					errs <- fmt.Errorf("tier segment %d of %s: %w", i, tp, err)
					return
				}
			}
		})
	}
	go func() {
		defer close(work)
		for i := range int64(n) {
			select {
			case work <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// checkDeletionEvents checks the records a partition's deletion published about tp, from the
// marker on: DELETE_PARTITION_MARKED, _STARTED, for each of its n segments
// DELETE_SEGMENT_STARTED then _FINISHED, and DELETE_PARTITION_FINISHED last.
func checkDeletionEvents(t *testing.T, records []metadataRecord, tp proto.TopicIDPartition, n int) {
	t.Helper()
	var states []proto.PartitionDeleteState
	segments := map[proto.UUID][]proto.SegmentState{}
	for _, r := range records {
		switch d := r.Decoded.(type) {
		case *proto.PartitionDeleteMetadata:
			if d.TopicIDPartition == tp {
				states = append(states, d.State)
			}
		case *proto.SegmentMetadataUpdate:
			if d.SegmentID.TopicIDPartition != tp {
				continue
			}
			if len(states) != 2 {
				t.Errorf("%s at offset %d, after partition states %v: want it between DELETE_PARTITION_STARTED and _FINISHED",
					d, r.Offset, states)
			}
			segments[d.SegmentID.ID] = append(segments[d.SegmentID.ID], d.State)
		case *proto.SegmentMetadata:
			if d.SegmentID.TopicIDPartition == tp {
				t.Errorf("a segment of %s added during its deletion: %s", tp, d)
			}
		}
	}
	if want := []proto.PartitionDeleteState{proto.DeletePartitionMarked, proto.DeletePartitionStarted, proto.DeletePartitionFinished}; !slices.Equal(states, want) {
		t.Errorf("partition-delete records of %s: %v, want %v", tp, states, want)
	}
	if len(segments) != n {
		t.Errorf("the deletion published updates of %d segments of %s, want all %d", len(segments), tp, n)
	}
	want := []proto.SegmentState{proto.DeleteSegmentStarted, proto.DeleteSegmentFinished}
	for id, got := range segments {
		if !slices.Equal(got, want) {
			t.Errorf("segment %s went through %v during the deletion, want %v", id, got, want)
		}
	}
}
