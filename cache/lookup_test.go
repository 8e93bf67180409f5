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
	if c.find(p, 0, 15, func([]byte, int64) {}) {
		t.Fatal("a range loaded before a write to its partition was kept")
	}

	gen, all = c.generation(p)
	c.forgetAll()
	c.keep(p, 0, 10, 19, 19, []byte("row"), gen, all)
	if c.find(p, 0, 15, func([]byte, int64) {}) {
		t.Fatal("a range loaded before a write to the whole store was kept")
	}

	// A write to another partition leaves p's load valid, unless they share a stripe.
	gen, all = c.generation(p)
	if c.stripe(p) != c.stripe(q) {
		c.forget(func(fn func(tpPrefix)) { fn(q) })
	}
	c.keep(p, 0, 10, 19, 19, []byte("row"), gen, all)
	for _, o := range []int64{10, 15, 19} {
		var got []byte
		if !c.find(p, 0, o, func(v []byte, _ int64) { got = v }) || string(got) != "row" {
			t.Fatalf("offset %d: range not found (%q)", o, got)
		}
	}
	for _, o := range []int64{9, 20} {
		if c.find(p, 0, o, func([]byte, int64) {}) {
			t.Fatalf("offset %d is outside the range and was found", o)
		}
	}
	if c.find(p, 1, 15, func([]byte, int64) {}) {
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
	if !c.find(p, 0, 5, func([]byte, int64) {}) { // range 0 becomes the most recent
		t.Fatal("range 0 missing")
	}
	c.keep(p, 0, 30, 39, 39, val, gen, all)
	if used, n := c.stats(); n != 3 || used > 3*one {
		t.Fatalf("%d ranges in %d bytes, want 3 within %d", n, used, 3*one)
	}
	if c.find(p, 0, 15, func([]byte, int64) {}) {
		t.Fatal("range 1, the least recently used, was not evicted")
	}
	for _, o := range []int64{5, 25, 35} {
		if !c.find(p, 0, o, func([]byte, int64) {}) {
			t.Fatalf("offset %d evicted", o)
		}
	}
	// A range larger than the whole budget is not kept at all.
	c.keep(p, 1, 0, 9, 9, make([]byte, 4*one), gen, all)
	if c.find(p, 1, 5, func([]byte, int64) {}) {
		t.Fatal("a range over the budget was kept")
	}
}

// A row found twice by recent lookups is admitted, once; a row found once is not.
func TestLookupCacheAdmitsRowsFoundTwice(t *testing.T) {
	c := newLookupCache(1 << 20)
	var p tpPrefix
	if c.admit(p, 0, 10) {
		t.Fatal("a row found once was admitted")
	}
	if c.admit(p, 0, 20) || c.admit(p, 1, 10) {
		t.Fatal("another row or epoch was admitted")
	}
	if !c.admit(p, 0, 10) {
		t.Fatal("a row found twice was not admitted")
	}
	if c.admit(p, 0, 10) {
		t.Fatal("a row was admitted twice in a row: admitting forgets it")
	}
}
