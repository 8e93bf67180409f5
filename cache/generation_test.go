package cache

import (
	"math"
	"strconv"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/stratalog/strata/proto"
)

// SegmentForRange answers exact intervals from Pebble and from SegmentFor's cache alike.
func TestSegmentForRange(t *testing.T) {
	for _, budget := range []int64{DefaultLookupCacheSize, 0} {
		t.Run("lookup-cache-"+strconv.FormatInt(budget, 10), func(t *testing.T) {
			testSegmentForRange(t, openOn(t, vfs.NewMem(), WithLookupCacheSize(budget)))
		})
	}
}

func testSegmentForRange(t *testing.T, s *Store) {
	f := newFeed(t, s, 0)
	tp := testTP(0)
	finished := func(id proto.SegmentID, start, end int64, epochs ...int64) {
		f.applyOK(add(id, start, end, epochs...), update(id, proto.CopySegmentFinished))
	}
	finished(segID(tp, 1), 0, 99, 0, 0, 1, 50)
	finished(segID(tp, 2), 100, 199, 1, 100)
	finished(segID(tp, 3), 200, 249, 1, 200)
	// A gap at 250-299, then two overlapping segments: 400 answers for 400-449 only.
	finished(segID(tp, 4), 400, 499, 1, 400)
	finished(segID(tp, 5), 450, 549, 1, 450)
	st := s.LookupCacheStats()
	defer func() {
		// With the cache, every answer but the first came from it.
		if got := s.LookupCacheStats(); st.Budget > 0 && (got.Hits == st.Hits || got.Misses-st.Misses > 2) {
			t.Errorf("lookup cache: %d hits, %d misses; want the answers from the cache", got.Hits-st.Hits, got.Misses-st.Misses)
		}
	}()
	for _, c := range []struct {
		epoch          int32
		offset, lo, hi int64
		seg            byte // 0: no answer
	}{
		{0, 10, 0, 49, 1},
		{0, 60, 0, 0, 0}, // past the segment's part of epoch 0
		{1, 60, 50, 99, 1},
		{1, 120, 100, 199, 2},
		{1, 249, 200, 249, 3},
		{1, 260, 0, 0, 0},
		{1, 420, 400, 449, 4},
		{1, 450, 450, 549, 5},
		{1, math.MaxInt64, 0, 0, 0},
	} {
		r, ok, err := s.SegmentForRange(tp, c.epoch, c.offset)
		if err != nil || ok != (c.seg != 0) {
			t.Fatalf("SegmentForRange(%d, %d) = %t, %v; want found %t", c.epoch, c.offset, ok, err, c.seg != 0)
		}
		if !ok {
			continue
		}
		if r.Segment.SegmentID != segID(tp, c.seg) || r.Lo != c.lo || r.Hi != c.hi {
			t.Errorf("SegmentForRange(%d, %d) = %v [%d, %d]; want %v [%d, %d]", c.epoch, c.offset, r.Segment.SegmentID, r.Lo, r.Hi, segID(tp, c.seg), c.lo, c.hi)
		}
		// The interval is exact: SegmentFor agrees inside it and differs just outside.
		for o := r.Lo; o <= r.Hi; o++ {
			if m, ok, _ := s.SegmentFor(tp, c.epoch, o); !ok || m.SegmentID != r.Segment.SegmentID {
				t.Fatalf("SegmentFor(%d, %d) = %v, %t inside [%d, %d] of %v", c.epoch, o, m.SegmentID, ok, r.Lo, r.Hi, r.Segment.SegmentID)
			}
		}
		for _, o := range []int64{r.Lo - 1, r.Hi + 1} {
			if m, ok, _ := s.SegmentFor(tp, c.epoch, o); ok && m.SegmentID == r.Segment.SegmentID {
				t.Errorf("SegmentFor(%d, %d) = %v outside [%d, %d]: the interval is too narrow", c.epoch, o, m.SegmentID, r.Lo, r.Hi)
			}
		}
	}
}

// The generation of an answer is read before the data it answers from, from Pebble or from
// SegmentFor's cache.
func TestSegmentForRangeGeneration(t *testing.T) {
	for _, budget := range []int64{DefaultLookupCacheSize, 0} {
		t.Run("lookup-cache-"+strconv.FormatInt(budget, 10), func(t *testing.T) {
			testSegmentForRangeGeneration(t, openOn(t, vfs.NewMem(), WithLookupCacheSize(budget)))
		})
	}
}

func testSegmentForRangeGeneration(t *testing.T, s *Store) {
	f := newFeed(t, s, 0)
	tp := testTP(0)
	f.applyOK(add(segID(tp, 1), 0, 99, 0, 0), update(segID(tp, 1), proto.CopySegmentFinished))

	stripe, g0 := s.Generation(tp)
	changed := s.GenerationsChanged()
	r, ok, err := s.SegmentForRange(tp, 0, 10)
	if err != nil || !ok || r.Stripe != stripe || r.Generation != g0 {
		t.Fatalf("SegmentForRange = %+v, %t, %v; want stripe %d generation %d", r, ok, err, stripe, g0)
	}
	// Every Apply that changes the partition bumps its stripe and wakes the watchers.
	f.applyOK(update(segID(tp, 1), proto.DeleteSegmentStarted))
	if _, g := s.Generation(tp); g <= g0 {
		t.Fatalf("generation %d after a write; was %d", g, g0)
	}
	select {
	case <-changed:
	default:
		t.Fatal("GenerationsChanged not closed by a write")
	}
	if gs := s.Generations(nil); len(gs) != GenerationStripes || gs[stripe] <= g0 {
		t.Fatalf("Generations = %d stripes, %d at %d", len(gs), gs[stripe], stripe)
	}

	// A write that commits after the snapshot is taken: the answer is from before it, so its
	// generation must be older than the one the write leaves, or a client would keep it.
	f.applyOK(add(segID(tp, 2), 100, 199, 0, 100), update(segID(tp, 2), proto.CopySegmentFinished))
	segmentForRangeOpened = func() {
		segmentForRangeOpened = nil
		f.applyOK(update(segID(tp, 2), proto.DeleteSegmentStarted))
	}
	t.Cleanup(func() { segmentForRangeOpened = nil })
	r, ok, err = s.SegmentForRange(tp, 0, 150)
	if err != nil || !ok || r.Segment.SegmentID != segID(tp, 2) {
		t.Fatalf("SegmentForRange = %+v, %t, %v; want the snapshot's segment 2", r, ok, err)
	}
	if _, g := s.Generation(tp); r.Generation >= g {
		t.Fatalf("answer from before a write carries generation %d, the write's is %d", r.Generation, g)
	}
}
