package cache

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stratalog/strata/proto"
)

// testRun returns a run of (p, epoch) over [lo, hi] with rows at starts (descending), each
// row's value its start as text.
func testRun(p tpPrefix, epoch int32, lo, hi int64, starts ...int64) *runRead {
	r := &runRead{p: p, epoch: epoch, lo: lo, hi: hi}
	for _, s := range starts {
		r.add(s, []byte(rowName(s)))
	}
	return r
}

func rowName(start int64) string {
	if start == math.MinInt64 {
		return "none"
	}
	return "row@" + string(rune('0'+start/10%10)) + string(rune('0'+start%10))
}

// lookupAt returns what the cache answers for offset: the row's name, "none", or "miss".
func lookupAt(c *lookupCache, p tpPrefix, epoch int32, offset int64) string {
	got := "miss"
	found, _, _, _ := c.find(p, epoch, offset, func(val []byte) {
		got = "none"
		if val != nil {
			got = string(val)
		}
	})
	if !found {
		return "miss"
	}
	return got
}

// A run answers, for every offset in [lo, hi], the row with the greatest start at or below
// it, or none below its least start when nothing of the epoch lies below; outside, it misses.
func TestLookupCacheRunsAnswerTheirFloor(t *testing.T) {
	c := newLookupCache(1 << 20)
	t.Cleanup(c.close)
	var p tpPrefix
	gen, all := c.generation(p)
	// Rows at 40, 30 and 20, the row above at 50 (hi 49), and more rows below 20.
	c.keep(testRun(p, 0, 20, 49, 40, 30, 20), gen, all)
	// The epoch's last rows: nothing of it below 5.
	c.keep(testRun(p, 0, math.MinInt64, 9, 5), gen, all)
	for offset, want := range map[int64]string{
		49: rowName(40), 40: rowName(40), 39: rowName(30), 30: rowName(30), 25: rowName(20), 20: rowName(20),
		50: "miss", 19: "miss", 10: "miss",
		9: rowName(5), 5: rowName(5), 4: "none", -1: "none", math.MinInt64: "none",
	} {
		if got := lookupAt(c, p, 0, offset); got != want {
			t.Errorf("offset %d: %s, want %s", offset, got, want)
		}
		if got := lookupAt(c, p, 1, offset); got != "miss" {
			t.Errorf("epoch 1 offset %d: %s, want a miss", offset, got)
		}
	}
	// find tells a missing reader where the runs below and above are, so that it stops there.
	if found, below, above, _ := c.find(p, 0, 15, func([]byte) {}); found || below != 9 || above != 20 {
		t.Errorf("offset 15: found %t, below %d, above %d; want a miss between 9 and 20", found, below, above)
	}
	// A run overlapping one kept is not kept: both are exact, one is enough.
	c.keep(testRun(p, 0, 10, 25, 20, 15, 10), gen, all)
	if got := lookupAt(c, p, 0, 15); got != "miss" {
		t.Errorf("an overlapping run was kept: offset 15 answers %s", got)
	}
	c.keep(testRun(p, 0, 10, 19, 15, 10), gen, all)
	if got := lookupAt(c, p, 0, 17); got != rowName(15) {
		t.Errorf("offset 17: %s, want %s", got, rowName(15))
	}
	if _, runs := c.stats(); runs != 3 {
		t.Errorf("%d runs, want 3", runs)
	}
}

// A run read before a write to its partition committed must not be kept after it: the
// reader's generation no longer matches.
func TestLookupCacheRefusesRunsFromBeforeAWrite(t *testing.T) {
	c := newLookupCache(1 << 20)
	t.Cleanup(c.close)
	var p, q tpPrefix
	p[0], q[0] = 1, 2
	gen, all := c.generation(p)
	c.forget(func(fn func(tpPrefix)) { fn(p) })
	c.keep(testRun(p, 0, 10, 19, 10), gen, all)
	if got := lookupAt(c, p, 0, 15); got != "miss" {
		t.Fatalf("a run read before a write to its partition was kept: %s", got)
	}

	gen, all = c.generation(p)
	c.forgetAll()
	c.keep(testRun(p, 0, 10, 19, 10), gen, all)
	if got := lookupAt(c, p, 0, 15); got != "miss" {
		t.Fatalf("a run read before a write to the whole store was kept: %s", got)
	}

	// A write to another partition leaves p's run valid, unless they share a stripe.
	gen, all = c.generation(p)
	if c.stripe(p) != c.stripe(q) {
		c.forget(func(fn func(tpPrefix)) { fn(q) })
	}
	c.keep(testRun(p, 0, 10, 19, 10), gen, all)
	if got := lookupAt(c, p, 0, 15); got != rowName(10) {
		t.Fatalf("offset 15: %s, want %s", got, rowName(10))
	}
	// A write to p forgets it.
	c.forget(func(fn func(tpPrefix)) { fn(p) })
	if got := lookupAt(c, p, 0, 15); got != "miss" {
		t.Fatalf("a write to the partition left its run: %s", got)
	}
	if used, runs := c.stats(); used != 0 || runs != 0 {
		t.Fatalf("%d runs in %d bytes after forgetting everything", runs, used)
	}
}

// The cache never holds more than its budget: a run is written over the oldest ones, which
// it forgets, and the ring turns when a run does not fit at its end.
func TestLookupCacheForgetsOldestRuns(t *testing.T) {
	one := testRun(tpPrefix{}, 0, 0, 9, 0).size()
	c := newLookupCache(1 << 20)
	c.ringSize = int64(3*one + one/2)
	t.Cleanup(c.close)
	var p tpPrefix
	gen, all := c.generation(p)
	for i := range int64(3) {
		c.keep(testRun(p, 0, i*10, i*10+9, i*10), gen, all)
	}
	// The fourth does not fit at the end: the ring turns, and the oldest, run 0, goes.
	c.keep(testRun(p, 0, 30, 39, 30), gen, all)
	if _, n := c.stats(); n != 3 {
		t.Fatalf("%d runs, want 3", n)
	}
	if got := lookupAt(c, p, 0, 5); got != "miss" {
		t.Fatalf("run 0, the oldest, was not forgotten: %s", got)
	}
	for _, o := range []int64{15, 25, 35} {
		if got := lookupAt(c, p, 0, o); got != rowName(o/10*10) {
			t.Fatalf("offset %d: %s, want %s", o, got, rowName(o/10*10))
		}
	}
	// The fifth goes after the fourth, over run 1.
	c.keep(testRun(p, 0, 40, 49, 40), gen, all)
	for o, want := range map[int64]string{15: "miss", 25: rowName(20), 35: rowName(30), 45: rowName(40)} {
		if got := lookupAt(c, p, 0, o); got != want {
			t.Fatalf("offset %d: %s, want %s", o, got, want)
		}
	}
	if used, _ := c.stats(); used != 3*(int64(one)+lookupRunOverhead) {
		t.Fatalf("%d bytes in use, want %d", used, 3*(int64(one)+lookupRunOverhead))
	}
	// A run larger than the whole budget is not kept at all.
	big := testRun(p, 1, 0, 9, 0)
	big.vals = make([]byte, c.ringSize)
	big.ends[0] = uint32(len(big.vals))
	c.keep(big, gen, all)
	if got := lookupAt(c, p, 1, 5); got != "miss" {
		t.Fatal("a run over the budget was kept")
	}
}

// The ring and the most runs' index never exceed the budget together.
func TestLookupCacheBudget(t *testing.T) {
	for _, budget := range []int64{100, 4 << 10, 1 << 20, DefaultLookupCacheSize} {
		c := newLookupCache(budget)
		if total := c.ringSize + int64(c.maxRuns)*lookupRunOverhead; total > max(budget, int64(c.maxRuns)*lookupRunOverhead) {
			t.Errorf("budget %d: ring %d and %d runs take %d", budget, c.ringSize, c.maxRuns, total)
		}
		if budget >= 4<<10 && c.ringSize < budget*3/4 {
			t.Errorf("budget %d: a ring of %d", budget, c.ringSize)
		}
	}
}

// Every lookup made after an Apply returned sees it, while other readers keep filling the cache
// from views of the store before it: a run kept across a write would answer with the segment
// the write replaced.
func TestSegmentForReadsItsWritesWhileReadersFillTheCache(t *testing.T) {
	s, _ := openMem(t)
	f := newFeed(t, s, 0)
	tp := testTP(0)
	const segments, steps = 50, 300
	id := func(step int) proto.SegmentID {
		return proto.SegmentID{TopicIDPartition: tp, ID: proto.UUID{13: 1, 14: byte(step >> 8), 15: byte(step)}}
	}
	for k := range segments {
		sid := segID(tp, byte(k))
		f.applyOK(add(sid, int64(k)*10, int64(k)*10+9, 0, int64(k)*10), update(sid, proto.CopySegmentFinished))
	}
	var done atomic.Bool
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			for !done.Load() {
				if _, _, err := s.SegmentFor(tp, 0, rng.Int64N(segments*10)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for step := range steps {
		k := int64(step % segments)
		sid := id(step)
		f.applyOK(add(sid, k*10, k*10+9, 0, k*10), update(sid, proto.CopySegmentFinished))
		for _, o := range []int64{k * 10, k*10 + 5, k*10 + 9} {
			m, ok, err := s.SegmentFor(tp, 0, o)
			if err != nil || !ok || m.SegmentID != sid {
				t.Fatalf("step %d: SegmentFor(%d) = %v, %t, %v right after segment %v replaced it", step, o, m.SegmentID, ok, err, sid)
			}
		}
	}
	done.Store(true)
	wg.Wait()
	if st := s.LookupCacheStats(); st.Budget != DefaultLookupCacheSize || st.Hits == 0 || st.Misses == 0 || st.Bytes <= 0 {
		t.Errorf("cache stats %+v", st)
	}
}
