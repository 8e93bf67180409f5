package cache

import (
	"container/list"
	"slices"
	"sync"
)

// DefaultLookupCacheSize is the memory budget of SegmentFor's answer cache of a store opened
// without WithLookupCacheSize.
const DefaultLookupCacheSize = 32 << 20

// lookupCache remembers SegmentFor's answers so that a repeated lookup in the same stretch of
// offsets is a map lookup and a binary search instead of a Pebble seek. Kafka's own cache keeps
// every segment of every partition on the heap for the same purpose; this keeps only what was
// looked up recently, within a byte budget, so memory stays flat however long the history.
//
// What it holds is exact, never a guess. A Pebble lookup of offset o in an epoch finds the
// referenced row with the greatest start offset s <= o (the floor): every offset in [s, o] has
// that same floor, so the answer for the whole range is known: the floor's segment when the
// offset is within its part of the epoch, none otherwise. The cache keeps that range with the
// floor's row as Pebble held it, and decodes it again for every hit, so a hit returns a fresh
// value exactly as the Pebble path would. When a later lookup lands above a kept range of the
// same floor (a consumer reading on through a segment), the reader also looks one step back in
// key order for the row with the least start offset n > o, and the range grows to [s, n-1]:
// the rest of that stretch then hits. A lookup that touches a segment once (at random over a
// long history) pays no such second seek.
//
// Staleness. Every write to the store that can change a partition's referenced rows forgets
// what the cache holds of that partition, after the write commits and before the writer
// returns (Apply through txn.publish; every other writer forgets everything), so a reader that
// starts after a write has returned never gets an answer from before it: read-your-writes is
// the store's. A range computed by a reader that raced with a write is not kept: loads note
// the partition's generation before they open their iterator and keep the range only if no
// write to the partition has committed since.
type lookupCache struct {
	budget int64

	mu   sync.Mutex
	used int64
	lru  list.List // of *lookupRange, most recently used at the front
	// parts holds, per partition, per epoch, the known ranges sorted by start offset.
	parts map[tpPrefix]map[int32][]*lookupRange
	// gens are generations by partition hash, and all the generation of everything: a write
	// bumps its partitions' stripes, or all. A load keeps its range only if both are as
	// they were when it started. Striping bounds their memory whatever the partition count.
	gens [256]uint64
	all  uint64
}

// lookupRange is one known answer: for every offset in [start, end], the floor in the epoch
// is the segment whose referenced row is val, which covers the epoch up to epochEnd.
type lookupRange struct {
	p          tpPrefix
	epoch      int32
	start, end int64
	epochEnd   int64
	val        []byte
	elem       *list.Element
}

// lookupRangeOverhead approximates what a range costs beyond its row: the struct, its list
// element, its slot in the epoch's slice and its share of the maps.
const lookupRangeOverhead = 160

func (r *lookupRange) size() int64 { return lookupRangeOverhead + int64(cap(r.val)) }

func newLookupCache(budget int64) *lookupCache {
	return &lookupCache{budget: budget, parts: make(map[tpPrefix]map[int32][]*lookupRange)}
}

func stripe(p tpPrefix) int {
	h := uint32(2166136261)
	for _, b := range p {
		h = (h ^ uint32(b)) * 16777619
	}
	return int(h % 256)
}

// generation returns what a load must find unchanged to keep its range.
func (c *lookupCache) generation(p tpPrefix) (uint64, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gens[stripe(p)], c.all
}

// find calls fn with the row and the epoch end of the known range of (p, epoch) holding
// offset, if there is one, and returns true. Otherwise it returns false and whether the
// lookup is warm: a range of the same floor row ends below offset (the row's segment was read
// before, at a lower offset), so that the reader, once it has found the floor, should also
// learn where its range ends. The row is the cache's: fn decodes it and keeps nothing of it.
func (c *lookupCache) find(p tpPrefix, epoch int32, offset int64, fn func(val []byte, epochEnd int64)) (hit, warm bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := c.parts[p][epoch]
	// The first range that starts above offset; the one before it is the only candidate.
	i, _ := slices.BinarySearchFunc(rs, offset, func(r *lookupRange, o int64) int {
		if r.start <= o {
			return -1
		}
		return 1
	})
	if i == 0 {
		return false, false
	}
	r := rs[i-1]
	if r.end < offset {
		return false, true
	}
	c.lru.MoveToFront(r.elem)
	fn(r.val, r.epochEnd)
	return true, false
}

// keep adds a range found by a load that started at generation (gen, all), unless a write
// has changed the partition since or the range alone exceeds the budget. It copies val.
func (c *lookupCache) keep(p tpPrefix, epoch int32, start, end, epochEnd int64, val []byte, gen, all uint64) {
	r := &lookupRange{p: p, epoch: epoch, start: start, end: end, epochEnd: epochEnd, val: slices.Clone(val)}
	if r.size() > c.budget {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gens[stripe(p)] != gen || c.all != all {
		return
	}
	epochs := c.parts[p]
	if epochs == nil {
		epochs = make(map[int32][]*lookupRange)
		c.parts[p] = epochs
	}
	rs := epochs[epoch]
	i, found := slices.BinarySearchFunc(rs, start, func(r *lookupRange, s int64) int {
		switch {
		case r.start < s:
			return -1
		case r.start > s:
			return 1
		}
		return 0
	})
	if found {
		// The same floor row, read again at the same generation: the same answer, for a
		// range that may now reach further.
		rs[i].end = max(rs[i].end, end)
		c.lru.MoveToFront(rs[i].elem)
		return
	}
	r.elem = c.lru.PushFront(r)
	epochs[epoch] = slices.Insert(rs, i, r)
	c.used += r.size()
	for c.used > c.budget {
		c.removeLocked(c.lru.Back().Value.(*lookupRange))
	}
}

func (c *lookupCache) removeLocked(r *lookupRange) {
	c.lru.Remove(r.elem)
	c.used -= r.size()
	epochs := c.parts[r.p]
	rs := epochs[r.epoch]
	if i := slices.Index(rs, r); i >= 0 {
		rs = slices.Delete(rs, i, i+1)
	}
	if len(rs) == 0 {
		delete(epochs, r.epoch)
		if len(epochs) == 0 {
			delete(c.parts, r.p)
		}
		return
	}
	epochs[r.epoch] = rs
}

// forget drops every range of the partitions each calls fn with and bumps their generations.
// The writer calls it after its commit, before it returns.
func (c *lookupCache) forget(each func(fn func(p tpPrefix))) {
	c.mu.Lock()
	defer c.mu.Unlock()
	each(func(p tpPrefix) {
		c.gens[stripe(p)]++
		for _, rs := range c.parts[p] {
			for _, r := range rs {
				c.lru.Remove(r.elem)
				c.used -= r.size()
			}
		}
		delete(c.parts, p)
	})
}

// forgetAll drops everything and bumps every generation.
func (c *lookupCache) forgetAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all++
	c.parts = make(map[tpPrefix]map[int32][]*lookupRange)
	c.lru.Init()
	c.used = 0
}

// stats returns the bytes in use and the number of ranges held.
func (c *lookupCache) stats() (used int64, ranges int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used, c.lru.Len()
}
