package cache

import (
	"bytes"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"

	"github.com/stratalog/strata/proto"
)

// GenerationStripes is how many change generations a store keeps (see Generation).
const GenerationStripes = 256

// generations count the store's changes by stripe of partitions, for readers outside the
// process that keep answers (strata serve's clients): an answer read at generation g of its
// stripe holds until the stripe's generation exceeds g. A stripe is shared by the partitions
// that hash to it, so a change to one of them passes for a change to all, which only costs a
// reader an answer it could have kept; striping bounds the memory whatever the partition count.
//
// A writer bumps the generations of what it changed after its commit and before it returns, as
// it forgets what lookupCache holds (txn.publish, Store.write, a rebuild): so a generation read
// before a snapshot is never newer than the snapshot, and one read after a write has returned
// is newer than every snapshot taken before the write committed.
type generations struct {
	seed    maphash.Seed
	stripes [GenerationStripes]atomic.Uint64

	mu      sync.Mutex
	changed chan struct{} // closed and replaced at each bump
}

func newGenerations() *generations {
	return &generations{seed: maphash.MakeSeed(), changed: make(chan struct{})}
}

func (g *generations) stripe(p tpPrefix) int {
	return int(maphash.Comparable(g.seed, p) % GenerationStripes)
}

// bump adds one to the generation of every stripe each calls fn with a partition of, or of
// every stripe when each is nil, then wakes the watchers.
func (g *generations) bump(each func(fn func(p tpPrefix))) {
	if each == nil {
		for i := range g.stripes {
			g.stripes[i].Add(1)
		}
	} else {
		each(func(p tpPrefix) { g.stripes[g.stripe(p)].Add(1) })
	}
	g.mu.Lock()
	close(g.changed)
	g.changed = make(chan struct{})
	g.mu.Unlock()
}

// Generation returns the stripe of tp's generation and its current value (see SegmentRange).
func (s *Store) Generation(tp proto.TopicIDPartition) (stripe int, gen uint64) {
	i := s.gens.stripe(prefixOf(tp))
	return i, s.gens.stripes[i].Load()
}

// Generations appends the current generation of every stripe, by stripe, to dst.
func (s *Store) Generations(dst []uint64) []uint64 {
	for i := range s.gens.stripes {
		dst = append(dst, s.gens.stripes[i].Load())
	}
	return dst
}

// GenerationsChanged returns a channel closed at the next change of a generation. Take it
// before reading Generations so that no change is missed.
func (s *Store) GenerationsChanged() <-chan struct{} {
	s.gens.mu.Lock()
	defer s.gens.mu.Unlock()
	return s.gens.changed
}

// SegmentRange is SegmentFor's answer with how long it holds: the same segment answers
// SegmentFor(tp, Epoch, o) for every o in [Lo, Hi] as long as the generation of the
// partition's Stripe is Generation, which was read before the snapshot the answer came from.
type SegmentRange struct {
	Segment    proto.SegmentMetadata
	Lo, Hi     int64
	Stripe     int
	Generation uint64
}

// SegmentForRange is SegmentFor with the offsets and generation its answer holds for. For the
// floor row of offset at start lo, with the epoch's next row (the least start above offset) at
// next, the segment m answers every offset in [lo, min(epochEnd(m, epoch), next-1)]: no row
// starts between lo and next, so the floor is the same, and m holds them within its part of
// the epoch. It answers from SegmentFor's cache as SegmentFor does (a run holds the floor row and
// the start of the row above it), filling it on a miss while it has room; once the cache is
// full it reads Pebble on a miss.
func (s *Store) SegmentForRange(tp proto.TopicIDPartition, epoch int32, offset int64) (SegmentRange, bool, error) {
	var r SegmentRange
	var ok bool
	err := s.read(func() error {
		p := prefixOf(tp)
		// Before the snapshot: a write that commits after this read bumps past it.
		r.Stripe = s.gens.stripe(p)
		r.Generation = s.gens.stripes[r.Stripe].Load()
		if s.lookups != nil {
			if done, err := s.rangeFromCache(tp, p, epoch, offset, &r, &ok); done {
				return err
			}
		}
		return s.withViewLocked(tp, p, func(v *view) error {
			if segmentForRangeOpened != nil {
				segmentForRangeOpened()
			}
			m, found, keyStart, err := v.floor(epoch, offset)
			if err != nil {
				return err
			}
			if !found || offset > epochEnd(&m, epoch) {
				return v.load()
			}
			hi := epochEnd(&m, epoch)
			if next, ok, err := v.nextStart(epoch, offset); err != nil {
				return err
			} else if ok && next-1 < hi {
				hi = next - 1
			}
			r.Segment, r.Lo, r.Hi, ok = m, keyStart, hi, true
			return nil
		})
	})
	if !ok {
		return SegmentRange{Stripe: r.Stripe, Generation: r.Generation}, false, err
	}
	return r, true, err
}

// rangeFromCache is SegmentForRange from SegmentFor's cache: done when a run holds offset, at
// once or after the miss path read one into the cache (only while the cache has room: once it is
// full, a miss would read Pebble twice). What the cache holds reflects every write whose
// generation bump the caller may have seen: a writer forgets the partition's runs before it
// bumps (txn.publish, Store.write), and a run read across a write is not kept.
func (s *Store) rangeFromCache(tp proto.TopicIDPartition, p tpPrefix, epoch int32, offset int64, r *SegmentRange, ok *bool) (done bool, err error) {
	for try := 0; ; try++ {
		var f lookupFloor
		found, row, below, above, rows, err := s.lookups.find(p, epoch, offset, &f)
		if found {
			if segmentForRangeOpened != nil {
				segmentForRangeOpened()
			}
			if err != nil {
				return true, corruptf(p.refKey(epoch, offset), "cached referenced row: %v", err)
			}
			if !row || offset > epochEnd(&f.m, epoch) {
				return true, nil
			}
			hi := epochEnd(&f.m, epoch)
			if f.hasNext && f.next-1 < hi {
				hi = f.next - 1
			}
			r.Segment, r.Lo, r.Hi, *ok = f.m, f.key, hi, true
			return true, nil
		}
		if try > 0 || rows == 0 {
			return false, nil
		}
		if _, _, err := s.segmentForMiss(tp, p, epoch, offset, below, above, rows); err != nil {
			return true, err
		}
	}
}

// segmentForRangeOpened, when set by a test, runs once SegmentForRange's snapshot is taken, or
// once the lookup cache found what it answers from.
var segmentForRangeOpened func()

// nextStart returns the least start offset above offset among the epoch's referenced rows:
// rows sort by start descending, so it is the last key before offset's.
func (v *view) nextStart(epoch int32, offset int64) (int64, bool, error) {
	if offset == math.MaxInt64 {
		return 0, false, nil
	}
	key := v.p.refKey(epoch, offset)
	if !v.it.SeekLT(key) || !bytes.HasPrefix(v.it.Key(), key[:refPrefixLen]) {
		return 0, false, v.it.Error()
	}
	pk, err := parseKey(v.it.Key())
	if err != nil {
		return 0, false, corruptf(v.it.Key(), "%v", err)
	}
	return pk.offset, true, nil
}
