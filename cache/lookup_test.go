package cache

import (
	"maps"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stratalog/strata/proto"
)

// testRun returns a run of (p, epoch) over [lo, hi] with rows at starts (descending), each
// row's segment starting there.
func testRun(p tpPrefix, epoch int32, lo, hi int64, starts ...int64) *runRead {
	r := &runRead{p: p, epoch: epoch, lo: lo, hi: hi}
	for _, s := range starts {
		r.add(s, encodeRef(nil, testRow(p, epoch, s, nil)))
	}
	return r
}

func testRow(p tpPrefix, epoch int32, start int64, custom []byte) *proto.SegmentMetadata {
	return &proto.SegmentMetadata{
		SegmentID: proto.SegmentID{
			TopicIDPartition: proto.TopicIDPartition{TopicID: p.topicID(), Topic: "t", Partition: p.partition()},
			ID:               proto.UUID{0: byte(start)},
		},
		StartOffset: start, EndOffset: start + 9, LeaderEpochs: []proto.EpochEntry{{Epoch: epoch, StartOffset: start}},
		State: proto.CopySegmentFinished, CustomMetadata: custom,
	}
}

// denseSize is what r takes in the ring.
func denseSize(t *testing.T, r *runRead) int {
	b, _, err := encodeRun(nil, r)
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

func rowName(start int64) string {
	if start == math.MinInt64 {
		return "none"
	}
	return "row@" + string(rune('0'+start/10%10)) + string(rune('0'+start%10))
}

// lookupAt returns what the cache answers for offset: the row's name, "none", or "miss".
func lookupAt(c *lookupCache, p tpPrefix, epoch int32, offset int64) string {
	var f lookupFloor
	found, row, _, _, _, err := c.find(p, epoch, offset, &f)
	switch {
	case err != nil:
		return err.Error()
	case !found:
		return "miss"
	case !row:
		return "none"
	}
	return rowName(f.m.StartOffset)
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
	// A hit names the floor's start and the start of the epoch's row above it, in the run or,
	// for the run's first row, just above hi (SegmentForRange's interval).
	for _, h := range []struct {
		offset, key, next int64
		hasNext           bool
	}{{45, 40, 50, true}, {35, 30, 40, true}, {20, 20, 30, true}, {7, 5, 10, true}} {
		var f lookupFloor
		if found, row, _, _, _, err := c.find(p, 0, h.offset, &f); !found || !row || err != nil || f.key != h.key || f.next != h.next || f.hasNext != h.hasNext {
			t.Errorf("offset %d: found %t, row %t, %v: key %d, next %d (%t); want %d, %d (%t)", h.offset, found, row, err, f.key, f.next, f.hasNext, h.key, h.next, h.hasNext)
		}
	}
	// find tells a missing reader where the runs below and above are, so that it stops there.
	if found, _, below, above, _, _ := c.find(p, 0, 15, new(lookupFloor)); found || below != 9 || above != 20 {
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
	one := denseSize(t, testRun(tpPrefix{}, 0, 0, 9, 0))
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
	big := &runRead{p: p, epoch: 1, lo: 0, hi: 9}
	big.add(0, encodeRef(nil, testRow(p, 1, 0, make([]byte, c.ringSize))))
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

// The cache's form of a run decodes to exactly what decodeRef returns for each row as Pebble
// held it, for any rows: other topic names, several leader epochs, custom metadata (absent,
// empty or not), numbers at their extremes, and runs of every length around the groups.
func TestLookupRowsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for n := 1; n <= 3*runGroupRows+1; n++ {
		checkRunRoundTrip(t, rng, n)
	}
	for range 200 {
		checkRunRoundTrip(t, rng, 1+rng.IntN(300))
	}
}

func FuzzLookupRows(f *testing.F) {
	f.Add(uint64(1), uint64(2), 5)
	f.Add(uint64(3), uint64(4), 40)
	f.Fuzz(func(t *testing.T, a, b uint64, n int) {
		if n <= 0 || n > 2000 {
			return
		}
		checkRunRoundTrip(t, rand.New(rand.NewPCG(a, b)), n)
	})
}

func checkRunRoundTrip(t *testing.T, rng *rand.Rand, n int) {
	t.Helper()
	p := prefixOf(testTP(rng.Int32N(5)))
	epoch := rng.Int32N(4) - 1
	num := func() int64 {
		switch rng.IntN(6) {
		case 0:
			return math.MinInt64 + rng.Int64N(3)
		case 1:
			return math.MaxInt64 - rng.Int64N(3)
		case 2:
			return -rng.Int64N(1 << 40)
		default:
			return rng.Int64N(1 << 40)
		}
	}
	// Distinct key starts, descending.
	keys := make(map[int64]bool)
	for len(keys) < n {
		if rng.IntN(2) == 0 {
			keys[num()] = true
		} else {
			keys[rng.Int64N(int64(4*n))] = true
		}
	}
	starts := slices.Sorted(maps.Keys(keys))
	slices.Reverse(starts)
	rr := &runRead{p: p, epoch: epoch, lo: starts[n-1], hi: math.MaxInt64}
	raw := make([][]byte, n)
	for i, k := range starts {
		m := &proto.SegmentMetadata{
			SegmentID: proto.SegmentID{
				TopicIDPartition: proto.TopicIDPartition{TopicID: p.topicID(), Topic: []string{"t", "t", "t", "other", ""}[rng.IntN(5)], Partition: p.partition()},
			},
			StartOffset: k - rng.Int64N(3), EndOffset: num(), BrokerID: rng.Int32(), MaxTimestampMs: num(),
			EventTimestampMs: num(), SegmentSizeInBytes: rng.Int32() - rng.Int32(),
			State: proto.SegmentState(rng.IntN(256)), TxnIndexEmpty: rng.IntN(2) == 0,
		}
		if rng.IntN(8) == 0 {
			m.StartOffset = num()
		}
		for j := range 16 {
			m.SegmentID.ID[j] = byte(rng.Uint32())
		}
		if rng.IntN(3) == 0 {
			// The common case the form writes in one bit: the run's epoch, from the start.
			m.LeaderEpochs = []proto.EpochEntry{{Epoch: epoch, StartOffset: m.StartOffset}}
		}
		for range rng.IntN(4) {
			m.LeaderEpochs = append(m.LeaderEpochs, proto.EpochEntry{Epoch: rng.Int32() - rng.Int32(), StartOffset: num()})
		}
		switch rng.IntN(3) {
		case 0:
			m.CustomMetadata = []byte{}
		case 1:
			m.CustomMetadata = []byte("custom" + strconv.Itoa(rng.IntN(1000)))
		}
		raw[i] = encodeRef(nil, m)
		rr.add(k, raw[i])
	}
	dense, topic, err := encodeRun(nil, rr)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range starts {
		want, err := decodeRef(raw[i], p)
		if err != nil {
			t.Fatal(err)
		}
		// At the row's start, and between it and the row above.
		for _, o := range []int64{k, k + (max(starts[max(i-1, 0)]-k, 1)-1)/2} {
			if i == 0 {
				o = k
			}
			var r denseRow
			ok, above, hasAbove, err := runFloor(dense, n, epoch, o, &r)
			if err != nil || !ok {
				t.Fatalf("%d rows, row %d (start %d), offset %d: %t, %v", n, i, k, o, ok, err)
			}
			if hasAbove != (i > 0) || (i > 0 && above != starts[i-1]) {
				t.Fatalf("%d rows, row %d (start %d), offset %d: the row above starts at %d (%t), want %d", n, i, k, o, above, hasAbove, starts[max(i-1, 0)])
			}
			if got := r.metadata(p, topic); !reflect.DeepEqual(got, want) {
				t.Fatalf("%d rows, row %d (start %d), offset %d:\n got %+v\nwant %+v", n, i, k, o, got, want)
			}
		}
	}
	if starts[n-1] > math.MinInt64 {
		var r denseRow
		if ok, _, _, err := runFloor(dense, n, epoch, starts[n-1]-1, &r); ok || err != nil {
			t.Fatalf("below every row: %t, %v", ok, err)
		}
	}
}

// A miss that reads its epoch to the last row goes on into the partition's other epochs, each a
// run of its own that answers exactly: after one lookup in the middle epoch, every lookup in
// every epoch hits, and answers as the store does without the cache. A read-ahead that stops
// inside an epoch holds that epoch only down to the last row it read.
func TestLookupCacheReadsTheFollowingEpochs(t *testing.T) {
	s, _ := openMem(t)
	f := newFeed(t, s, 0)
	tp := testTP(0)
	const epochs, perEpoch = 5, 10
	for e := range int64(epochs) {
		for j := range int64(perEpoch) {
			start := (e*perEpoch + j) * 10
			sid := segID(tp, byte(e*perEpoch+j))
			f.applyOK(add(sid, start, start+9, e, start), update(sid, proto.CopySegmentFinished))
		}
	}
	want := func(epoch int32, offset int64) proto.SegmentMetadata {
		t.Helper()
		var m proto.SegmentMetadata
		err := s.withView(tp, func(v *view) (err error) {
			m, _, err = v.segmentFor(epoch, offset)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	// In the middle epoch: the read-ahead takes the epochs after it, then those before.
	if _, _, err := s.SegmentFor(tp, 2, 205); err != nil {
		t.Fatal(err)
	}
	st := s.LookupCacheStats()
	for e := range int32(epochs) {
		for o := int64(e) * perEpoch * 10; o < int64(e+1)*perEpoch*10+15; o += 7 {
			m, ok, err := s.SegmentFor(tp, e, o)
			if w := want(e, o); err != nil || ok != (w.SegmentID != proto.SegmentID{}) || !reflect.DeepEqual(m, w) {
				t.Fatalf("epoch %d offset %d: %v, %t, %v; want %v", e, o, m.SegmentID, ok, err, w.SegmentID)
			}
		}
	}
	if got := s.LookupCacheStats(); got.Misses != st.Misses || got.Runs != epochs {
		t.Errorf("after the first lookup: %d misses (want %d), %d runs (want %d)", got.Misses, st.Misses, got.Runs, epochs)
	}

	// Read-ahead of 15 rows from epoch 1's first row: epoch 1 whole, epoch 2 down to its fifth.
	err := s.withView(tp, func(v *view) error {
		if !v.it.SeekGE(v.p.refEpoch(1)) {
			t.Fatal("no row of epoch 1")
		}
		no := func(int32) bool { return false }
		rs, err := v.following(15, no, no)
		if err != nil {
			return err
		}
		if len(rs) != 2 || rs[0].epoch != 1 || rs[1].epoch != 2 || len(rs[0].starts) != 10 || len(rs[1].starts) != 5 {
			t.Fatalf("runs %+v", rs)
		}
		if rs[0].lo != math.MinInt64 || rs[0].hi != math.MaxInt64 || rs[1].hi != math.MaxInt64 || rs[1].lo != 250 {
			t.Fatalf("epoch 1 [%d, %d], epoch 2 [%d, %d]; want epoch 2's lo at its fifth row's start, 250", rs[0].lo, rs[0].hi, rs[1].lo, rs[1].hi)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A lookup that comes back to the floor row the last one found in its slot answers from the
// row decoded then, within that row's interval only, and never from a run forgotten since.
func TestLookupCacheRecentRows(t *testing.T) {
	c := newLookupCache(1 << 20)
	t.Cleanup(c.close)
	var p tpPrefix
	gen, all := c.generation(p)
	c.keep(testRun(p, 0, 20, 49, 40, 30, 20), gen, all)
	for _, q := range []struct {
		offset int64
		want   string
	}{{35, rowName(30)}, {39, rowName(30)}, {30, rowName(30)}, {40, rowName(40)}, {31, rowName(30)}, {29, rowName(20)}, {49, rowName(40)}} {
		if got := lookupAt(c, p, 0, q.offset); got != q.want {
			t.Fatalf("offset %d: %s, want %s", q.offset, got, q.want)
		}
	}
	if got := lookupAt(c, p, 0, 31); got != rowName(30) {
		t.Fatalf("offset 31: %s", got)
	}
	// The partition is written: the run goes, and another takes its place, with a row at 25,
	// in the same slot of the recent rows (as many runs later as there are slots).
	c.forget(func(fn func(tpPrefix)) { fn(p) })
	q := tpPrefix{1}
	qgen, qall := c.generation(q)
	for e := range int32(lookupRecent - 1) {
		c.keep(testRun(q, e, 0, 9, 0), qgen, qall)
	}
	gen, all = c.generation(p)
	c.keep(testRun(p, 0, 20, 49, 40, 25, 20), gen, all)
	for offset, want := range map[int64]string{31: rowName(25), 39: rowName(25), 24: rowName(20)} {
		if got := lookupAt(c, p, 0, offset); got != want {
			t.Fatalf("after the write, offset %d: %s, want %s", offset, got, want)
		}
	}
}
