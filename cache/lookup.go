package cache

import (
	"container/list"
	"hash/maphash"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/stratalog/strata/proto"
)

// DefaultLookupCacheSize is the memory budget of SegmentFor's cache of a store opened without
// WithLookupCacheSize. It holds the referenced rows of about 7 million segments (a row of a
// segment with one leader epoch takes about 28 bytes there, see encodeRun, and the ring is four
// fifths of the budget), so that lookups at random over 5 million segments answer from memory
// as Kafka's manager does, which holds every segment on its heap (about 600 bytes each). It is
// an upper bound, reached only by lookups over that much history: a store of 500,000 segments
// fills about 15 MiB of it however many lookups it serves.
const DefaultLookupCacheSize = 256 << 20

// lookupRunRows is the most referenced rows a lookup that misses the cache reads into it
// while the cache has room: the rows around its floor (half of them above it at most), in one
// pass of the iterator it seeks anyway; when that reaches the epoch's last row, the rest goes to
// the partition's other epochs (see Store.readAhead). Reading around is what makes the cache serve lookups
// at random: a uniform lookup over a history the budget holds misses only until the runs
// cover it, where one row per miss would take a miss per segment: in BenchmarkLookups at 5
// million segments, after 20,000 lookups 0.1% of lookups miss with 4,096 rows a miss, 2.5%
// with 1,024, 15% with 256. A miss that reads a run costs about a microsecond per row read
// (a few milliseconds for a whole run), once per stretch of history the cache holds after it.
//
// Once the ring has turned (the cache is full), a lookup that misses reads its floor alone, as
// without the cache, and keeps a run of lookupRunRowsFull rows only for a floor that recent
// lookups found too (see admit): a consumer reading on through a segment finds its row again,
// while lookups at random over a history larger than the budget seldom do, and then pay for
// the cache nothing but that check, and do not churn it.
const (
	lookupRunRows     = 4096
	lookupRunRowsFull = 4
)

// lookupCache keeps runs of referenced rows, in a form about half the size of Pebble's (see
// encodeRun), so that a lookup whose offset a run covers is a map lookup, two binary searches
// and the decoding of a few rows instead of a Pebble seek. Kafka's own cache keeps every segment of every partition on the heap for the same
// purpose; this keeps what lookups read, within a byte budget, so memory stays flat however
// long the history. Only lookups fill it: nothing is kept while records are applied.
//
// What it holds is exact, never a guess. A run is a stretch of one epoch's referenced rows
// that are neighbours in key order (start offsets descending), and the offsets [lo, hi] it
// answers for: hi is one below the start of the row just above the run (the epoch's greatest
// start offset has none: hi is math.MaxInt64), and lo is the run's least start, or
// math.MinInt64 when no row of the epoch lies below the run. For every offset in [lo, hi], the
// floor in the epoch is the run's row with the greatest start at or below it (none below the
// run's least start), exactly as a seek in Pebble would find it, so a hit decodes that row and
// answers as the Pebble path does. Runs of one epoch never overlap.
//
// Memory. The rows live in one ring outside Go's heap (lookupMemory), written in turn: a run
// is written where the last one ended, over the oldest runs, which are forgotten. The index of
// the runs (about lookupRunOverhead bytes each, on Go's heap) is bounded too: at most one run
// per KiB of budget, a fifth of the budget at most; the ring has the rest.
//
// Staleness. Every write to the store that can change a partition's referenced rows forgets
// what the cache holds of that partition, after the write commits and before the writer
// returns (Apply through txn.publish; every other writer forgets everything), so a reader that
// starts after a write has returned never gets an answer from before it: read-your-writes is
// the store's. A run read by a reader that raced with a write is not kept: readers note the
// partition's generation before they open their iterator and keep the run only if no write to
// the partition has committed since.
type lookupCache struct {
	budget  int64
	maxRuns int
	// ringSize is the budget but for what the most runs cost on the heap.
	ringSize int64

	mu sync.Mutex
	// ring holds the runs' bytes; nil until the first run is kept, and after close. head is
	// where the next run goes. Runs lie in ring in the order they were kept, from head on
	// the oldest, so writing a run at head overwrites the oldest first.
	ring    []byte
	release func()
	failed  bool // the ring could not be mapped: nothing is kept
	head    int
	turned  bool      // the ring has turned since it was last empty: the cache is full
	used    int64     // bytes of the runs held, their overhead included
	fifo    list.List // of *lookupRun, the most recently kept at the front
	// parts holds, per partition, per epoch, the runs sorted by lo.
	parts map[tpPrefix]map[int32][]*lookupRun
	// gens are generations by partition hash, and all the generation of everything: a write
	// bumps its partitions' stripes, or all. A reader keeps its run only if both are as they
	// were when it started. Striping bounds their memory whatever the partition count. They
	// change under mu, and are read without it.
	gens [256]atomic.Uint64
	all  atomic.Uint64

	hits, misses atomic.Int64

	// recent holds the last floor row found in each slot (run id modulo its size); lastID
	// numbers the runs kept.
	recent [lookupRecent]recentFloor
	lastID uint64

	// seen remembers the floor rows recent lookups found, for admit.
	seen [4096]atomic.Uint64
	seed maphash.Seed
}

// lookupRun is the index entry of a run of n rows whose bytes are ring[off:off+size], in the
// cache's form (see encodeRun), and topic the topic name its rows carry.
type lookupRun struct {
	p         tpPrefix
	epoch     int32
	lo, hi    int64
	n         int
	off, size int
	topic     string
	id        uint64 // unique among the runs the cache has kept: names it in recent
	elem      *list.Element
}

// lookupRunOverhead approximates what a run costs on Go's heap: the struct, its topic name, its
// list element, its slot in the epoch's slice and its share of the maps.
const lookupRunOverhead = 200

func (r *lookupRun) cost() int64 { return lookupRunOverhead + int64(r.size) }

// floor decodes into f the row of the greatest start at or below offset, which must be in
// [lo, hi], and returns true; false when every row starts above it.
func (r *lookupRun) floor(ring []byte, p tpPrefix, offset int64, f *lookupFloor) (bool, error) {
	var row denseRow
	found, above, hasAbove, err := runFloor(ring[r.off:r.off+r.size], r.n, r.epoch, offset, &row)
	if !found || err != nil {
		return false, err
	}
	switch {
	case hasAbove:
		f.next, f.hasNext = above, true
	case r.hi != math.MaxInt64:
		f.next, f.hasNext = r.hi+1, true // hi is one below the start of the row above the run
	default:
		f.next, f.hasNext = 0, false
	}
	f.row = row
	f.m, f.key = row.metadata(p, r.topic), row.key
	return true, nil
}

// lookupRecent is the number of floor rows the cache keeps decoded, the last one found in each
// of as many slots, so that lookups that come back to a row (a consumer reading on through a
// segment asks for it at every fetch) skip the decoding of its group: about 200 KiB on Go's
// heap in all, besides the budget, whatever the budget.
const lookupRecent = 1024

// recentFloor is a floor row decoded from run id; its slices point into the run's bytes in the
// ring, valid as long as the run is held, which a lookup checks by finding the run first.
type recentFloor struct {
	id      uint64
	row     denseRow
	next    int64
	hasNext bool
	top     int64 // the greatest offset whose floor the row is: next-1, or math.MaxInt64
}

// lookupFloor is the floor row of an offset as a run holds it.
type lookupFloor struct {
	m       proto.SegmentMetadata // the caller's
	row     denseRow              // m before it was decoded
	key     int64                 // the start offset its key holds
	next    int64                 // the start offset of the epoch's row just above it
	hasNext bool                  // false when no row of the epoch starts above it
}

// runRead is a run as a reader reads it from Pebble, before the cache copies it into its ring.
type runRead struct {
	p      tpPrefix
	epoch  int32
	lo, hi int64
	starts []int64
	ends   []uint32
	vals   []byte
}

// add appends a row; its start must be below every row's already added.
func (r *runRead) add(start int64, val []byte) {
	r.starts = append(r.starts, start)
	r.vals = append(r.vals, val...)
	r.ends = append(r.ends, uint32(len(r.vals)))
}

// floor is lookupRun.floor on the rows as read.
func (r *runRead) floor(offset int64) ([]byte, bool) {
	i, _ := slices.BinarySearchFunc(r.starts, offset, func(s, o int64) int {
		if s > o {
			return -1
		}
		return 1
	})
	if i == len(r.starts) {
		return nil, false
	}
	from := uint32(0)
	if i > 0 {
		from = r.ends[i-1]
	}
	return r.vals[from:r.ends[i]], true
}

func newLookupCache(budget int64) *lookupCache {
	c := &lookupCache{
		budget: budget, maxRuns: max(int(budget>>10), 1),
		parts: make(map[tpPrefix]map[int32][]*lookupRun), seed: maphash.MakeSeed(),
	}
	c.ringSize = max(budget-int64(c.maxRuns)*lookupRunOverhead, 0)
	return c
}

// close releases the ring. The store calls it once no reader can be in the cache.
func (c *lookupCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked()
	if c.release != nil {
		c.release()
	}
	c.ring, c.release, c.failed = nil, nil, true
}

func (c *lookupCache) stripe(p tpPrefix) int {
	return int(maphash.Comparable(c.seed, p) % uint64(len(c.gens)))
}

// generation returns what a reader must find unchanged to keep its run.
func (c *lookupCache) generation(p tpPrefix) (uint64, uint64) {
	return c.gens[c.stripe(p)].Load(), c.all.Load()
}

// runAt returns the index in rs of the run holding offset, or of where one would go, and
// whether it holds it.
func runAt(rs []*lookupRun, offset int64) (int, bool) {
	// The first run that starts above offset; the one before it is the only candidate.
	i, _ := slices.BinarySearchFunc(rs, offset, func(r *lookupRun, o int64) int {
		if r.lo <= o {
			return -1
		}
		return 1
	})
	if i > 0 && rs[i-1].hi >= offset {
		return i - 1, true
	}
	return i, false
}

// find decodes into f the floor row of offset in (p, epoch), if a run holds offset, and returns
// found and whether the epoch has such a row (none when every row of the epoch starts above
// offset). Otherwise it returns not found; the hi of the run below offset and the lo of the run
// above it, the stretches of the epoch a reader need not read again (math.MinInt64 and
// math.MaxInt64 when there is none); and how many rows the reader should read into a run:
// lookupRunRows while the cache has room, 0 once it is full (the reader reads its floor and
// asks admit).
func (c *lookupCache) find(p tpPrefix, epoch int32, offset int64, f *lookupFloor) (found, row bool, below, above int64, rows int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := c.parts[p][epoch]
	i, ok := runAt(rs, offset)
	if ok {
		c.hits.Add(1)
		r := rs[i]
		rf := &c.recent[r.id%lookupRecent]
		if rf.id == r.id && rf.row.key <= offset && offset <= rf.top {
			f.row, f.key, f.next, f.hasNext = rf.row, rf.row.key, rf.next, rf.hasNext
			f.m = f.row.metadata(p, r.topic)
			return true, true, 0, 0, 0, nil
		}
		if row, err = r.floor(c.ring, p, offset, f); row && err == nil {
			*rf = recentFloor{id: r.id, row: f.row, next: f.next, hasNext: f.hasNext, top: math.MaxInt64}
			if f.hasNext {
				rf.top = f.next - 1
			}
		}
		return true, row, 0, 0, 0, err
	}
	c.misses.Add(1)
	below, above = math.MinInt64, math.MaxInt64
	if i > 0 {
		below = rs[i-1].hi
	}
	if i < len(rs) {
		above = rs[i].lo
	}
	if !c.turned && c.fifo.Len() < c.maxRuns {
		rows = lookupRunRows
	}
	return false, false, below, above, rows, nil
}

// holds reports whether the cache holds a run of (p, epoch).
func (c *lookupCache) holds(p tpPrefix, epoch int32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.parts[p][epoch]) > 0
}

// floorRow names a referenced row: a partition, an epoch and the start offset of its key.
type floorRow struct {
	p     tpPrefix
	epoch int32
	start int64
}

// admit reports whether the floor row starting at start in (p, epoch) was found by a recent
// lookup too, and remembers it otherwise. Remembering is a hash in one of a fixed number of
// slots, so a collision only admits a row early or forgets one: it changes no answer.
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

// keep copies a run read by a reader that started at generation (gen, all) into the ring, in
// the cache's form, unless a write has changed the partition since, the run alone exceeds the
// ring, a row of it does not parse, or it overlaps a run another reader kept meanwhile (both
// are exact: one is enough).
func (c *lookupCache) keep(rr *runRead, gen, all uint64) {
	if len(rr.starts) == 0 {
		return
	}
	// Encoded before taking the lock, which hits wait for.
	dense, topic, err := encodeRun(nil, rr)
	size := len(dense)
	if err != nil || int64(size) > c.ringSize {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gens[c.stripe(rr.p)].Load() != gen || c.all.Load() != all {
		return
	}
	if c.ring == nil {
		if c.failed {
			return
		}
		ring, release, err := lookupMemory(int(c.ringSize))
		if err != nil {
			c.failed = true
			return
		}
		c.ring, c.release = ring, release
	}
	rs := c.parts[rr.p][rr.epoch]
	i, _ := runAt(rs, rr.lo)
	if (i < len(rs) && rs[i].lo <= rr.hi) || (i > 0 && rs[i-1].hi >= rr.lo) {
		return
	}

	// Room at head: the oldest runs go, those from head to the end of the ring first when
	// the run does not fit there.
	if c.head+size > len(c.ring) {
		c.evictFromLocked(len(c.ring))
		c.head, c.turned = 0, true
	}
	c.evictFromLocked(c.head + size)
	for c.fifo.Len() >= c.maxRuns {
		c.removeLocked(c.fifo.Back().Value.(*lookupRun))
	}

	c.lastID++
	r := &lookupRun{p: rr.p, epoch: rr.epoch, lo: rr.lo, hi: rr.hi, n: len(rr.starts), off: c.head, size: size, topic: topic, id: c.lastID}
	copy(c.ring[r.off:r.off+size], dense)
	c.head += size

	// rs may have changed with the evictions.
	epochs := c.parts[r.p]
	if epochs == nil {
		epochs = make(map[int32][]*lookupRun)
		c.parts[r.p] = epochs
	}
	rs = epochs[r.epoch]
	i, _ = runAt(rs, r.lo)
	epochs[r.epoch] = slices.Insert(rs, i, r)
	r.elem = c.fifo.PushFront(r)
	c.used += r.cost()
}

// evictFromLocked forgets the oldest runs that lie between head and to: the runs kept before
// the ring last turned, which lie from head on in the order they were kept.
func (c *lookupCache) evictFromLocked(to int) {
	for c.fifo.Len() > 0 {
		r := c.fifo.Back().Value.(*lookupRun)
		if r.off < c.head || r.off >= to {
			return
		}
		c.removeLocked(r)
	}
}

func (c *lookupCache) removeLocked(r *lookupRun) {
	c.fifo.Remove(r.elem)
	c.used -= r.cost()
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

// forget drops every run of the partitions each calls fn with and bumps their generations.
// The writer calls it after its commit, before it returns.
func (c *lookupCache) forget(each func(fn func(p tpPrefix))) {
	c.mu.Lock()
	defer c.mu.Unlock()
	each(func(p tpPrefix) {
		c.gens[c.stripe(p)].Add(1)
		for _, rs := range c.parts[p] {
			for _, r := range rs {
				c.fifo.Remove(r.elem)
				c.used -= r.cost()
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
	c.dropLocked()
}

func (c *lookupCache) dropLocked() {
	c.parts = make(map[tpPrefix]map[int32][]*lookupRun)
	c.fifo.Init()
	c.used, c.head, c.turned = 0, 0, false
}

// LookupCacheStats describes SegmentFor's cache (see WithLookupCacheSize).
type LookupCacheStats struct {
	Budget int64 // bytes it may hold; 0 when it is off
	Bytes  int64 // bytes it holds, the index of its runs included
	Runs   int   // runs of referenced rows it holds
	Hits   int64 // lookups it answered since the store was opened
	Misses int64 // lookups it did not, which read Pebble
}

// LookupCacheStats returns what SegmentFor's cache holds and how often it answered.
func (s *Store) LookupCacheStats() LookupCacheStats {
	c := s.lookups
	if c == nil {
		return LookupCacheStats{}
	}
	used, runs := c.stats()
	return LookupCacheStats{Budget: c.budget, Bytes: used, Runs: runs, Hits: c.hits.Load(), Misses: c.misses.Load()}
}

// stats returns the bytes in use, overhead included, and the number of runs held.
func (c *lookupCache) stats() (used int64, runs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used, c.fifo.Len()
}
