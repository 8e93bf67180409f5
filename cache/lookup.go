package cache

import (
	"container/list"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
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
// referenced row with the greatest start offset s <= o (the floor) and, one step back in key
// order, the row with the least start offset n > o. Every offset in [s, n-1] has that same
// floor, so the answer for the whole range is known: the floor's segment when the offset is
// within its part of the epoch, none otherwise. The cache keeps that range with the floor's
// row as Pebble held it, and decodes it again for every hit, so a hit returns a fresh value
// exactly as the Pebble path would. Only a row that recent lookups found twice is kept (see
// admit): lookups at random over a long history, which seldom find a row twice, pay neither
// the second seek nor the cache's upkeep.
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
	// They change under mu, and are read without it.
	gens [256]atomic.Uint64
	all  atomic.Uint64

	// seen remembers the floor rows recent lookups found, for admit.
	seen [4096]atomic.Uint64
	seed maphash.Seed
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
	return &lookupCache{budget: budget, parts: make(map[tpPrefix]map[int32][]*lookupRange), seed: maphash.MakeSeed()}
}

// floorRow names a referenced row: a partition, an epoch and the start offset of its key.
type floorRow struct {
	p     tpPrefix
	epoch int32
	start int64
}

func (c *lookupCache) stripe(p tpPrefix) int {
	return int(maphash.Comparable(c.seed, p) % uint64(len(c.gens)))
}

// generation returns what a load must find unchanged to keep its range.
func (c *lookupCache) generation(p tpPrefix) (uint64, uint64) {
	return c.gens[c.stripe(p)].Load(), c.all.Load()
}

// find calls fn with the row and the epoch end of the known range of (p, epoch) holding
// offset, if there is one, and returns true. The row is the cache's: fn decodes it and keeps
// nothing of it.
func (c *lookupCache) find(p tpPrefix, epoch int32, offset int64, fn func(val []byte, epochEnd int64)) bool {
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
	if i == 0 || rs[i-1].end < offset {
		return false
	}
	r := rs[i-1]
	c.lru.MoveToFront(r.elem)
	fn(r.val, r.epochEnd)
	return true
}

// admit reports whether the floor row starting at start in (p, epoch) was found by a recent
// lookup too, and remembers it otherwise. A reader keeps a range only for a row found twice:
// a consumer reading on through a segment finds its row again and again, while lookups at
// random over a long history seldom find the same row twice, and then pay nothing for the
// cache but this check. Remembering is a hash in one of a fixed number of slots, so a
// collision only admits a row early or forgets one: it changes no answer.
func (c *lookupCache) admit(p tpPrefix, epoch int32, start int64) bool {
	sum := maphash.Comparable(c.seed, floorRow{p, epoch, start}) | 1 // never 0, an empty slot
	slot := &c.seen[sum%uint64(len(c.seen))]
	if slot.Load() == sum {
		slot.Store(0)
		return true
	}
	slot.Store(sum)
	return false
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
	if c.gens[c.stripe(p)].Load() != gen || c.all.Load() != all {
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
		c.gens[c.stripe(p)].Add(1)
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
	c.all.Add(1)
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
