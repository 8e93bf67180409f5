package cache

import (
	"slices"
	"testing"
)

// A range loaded before a write to its partition committed must not be kept after it: the
// load's generation no longer matches.
func TestLookupCacheRefusesRangesFromBeforeAWrite(t *testing.T) {
	c := newLookupCache(1 << 20)
	var p, q tpPrefix
	p[0], q[0] = 1, 2
	gen, all := c.generation(p)
	c.forget(func(fn func(tpPrefix)) { fn(p) })
	c.keep(p, 0, 10, 19, 19, []byte("row"), gen, all)
	if hit(c.find(p, 0, 15, func([]byte, int64) {})) {
		t.Fatal("a range loaded before a write to its partition was kept")
	}

	gen, all = c.generation(p)
	c.forgetAll()
	c.keep(p, 0, 10, 19, 19, []byte("row"), gen, all)
	if hit(c.find(p, 0, 15, func([]byte, int64) {})) {
		t.Fatal("a range loaded before a write to the whole store was kept")
	}

	// A write to another partition leaves p's load valid, unless they share a stripe.
	gen, all = c.generation(p)
	if stripe(p) != stripe(q) {
		c.forget(func(fn func(tpPrefix)) { fn(q) })
	}
	c.keep(p, 0, 10, 19, 19, []byte("row"), gen, all)
	for _, o := range []int64{10, 15, 19} {
		var got []byte
		if !hit(c.find(p, 0, o, func(v []byte, _ int64) { got = v })) || string(got) != "row" {
			t.Fatalf("offset %d: range not found (%q)", o, got)
		}
	}
	for _, o := range []int64{9, 20} {
		if hit(c.find(p, 0, o, func([]byte, int64) {})) {
			t.Fatalf("offset %d is outside the range and was found", o)
		}
	}
	if hit(c.find(p, 1, 15, func([]byte, int64) {})) {
		t.Fatal("another epoch's lookup found the range")
	}
}

// The cache never holds more than its budget: the least recently used ranges go first.
func TestLookupCacheEvictsLeastRecentlyUsed(t *testing.T) {
	val := make([]byte, 40)
	one := (&lookupRange{val: slices.Clone(val)}).size() // as keep stores it
	c := newLookupCache(3 * one)
	var p tpPrefix
	gen, all := c.generation(p)
	for i := range int64(3) {
		c.keep(p, 0, i*10, i*10+9, i*10+9, val, gen, all)
	}
	if !hit(c.find(p, 0, 5, func([]byte, int64) {})) { // range 0 becomes the most recent
		t.Fatal("range 0 missing")
	}
	c.keep(p, 0, 30, 39, 39, val, gen, all)
	if used, n := c.stats(); n != 3 || used > 3*one {
		t.Fatalf("%d ranges in %d bytes, want 3 within %d", n, used, 3*one)
	}
	if hit(c.find(p, 0, 15, func([]byte, int64) {})) {
		t.Fatal("range 1, the least recently used, was not evicted")
	}
	for _, o := range []int64{5, 25, 35} {
		if !hit(c.find(p, 0, o, func([]byte, int64) {})) {
			t.Fatalf("offset %d evicted", o)
		}
	}
	// A range larger than the whole budget is not kept at all.
	c.keep(p, 1, 0, 9, 9, make([]byte, 4*one), gen, all)
	if hit(c.find(p, 1, 5, func([]byte, int64) {})) {
		t.Fatal("a range over the budget was kept")
	}
}

func hit(h, _ bool) bool { return h }

// A lookup above a kept range of the same floor is warm; below every range, or in another
// epoch, cold. A range read again reaches further.
func TestLookupCacheWarmLookups(t *testing.T) {
	c := newLookupCache(1 << 20)
	var p tpPrefix
	gen, all := c.generation(p)
	c.keep(p, 0, 10, 12, 99, []byte("row"), gen, all)
	for _, tc := range []struct {
		epoch     int32
		offset    int64
		hit, warm bool
	}{{0, 9, false, false}, {0, 10, true, false}, {0, 12, true, false}, {0, 13, false, true}, {1, 13, false, false}} {
		h, w := c.find(p, tc.epoch, tc.offset, func([]byte, int64) {})
		if h != tc.hit || w != tc.warm {
			t.Errorf("find(epoch %d, offset %d) = hit %t, warm %t; want %t, %t", tc.epoch, tc.offset, h, w, tc.hit, tc.warm)
		}
	}
	c.keep(p, 0, 10, 49, 99, []byte("row"), gen, all)
	if h, _ := c.find(p, 0, 49, func([]byte, int64) {}); !h {
		t.Error("the range read again does not reach 49")
	}
	if _, n := c.stats(); n != 1 {
		t.Errorf("%d ranges, want the one range grown", n)
	}
}
