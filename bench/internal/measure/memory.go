package measure

import (
	"runtime/metrics"
	"sync"
	"time"
)

// The parts of a process's resident memory, as Strata's side reports them at the moment its
// resident set peaked during the cold load (see MemorySampler). Kafka's side reports none.
const (
	PeakGoHeapLiveBytes = "peak_go_heap_live_bytes" // Go heap objects, live or not yet swept
	PeakGoHeapFreeBytes = "peak_go_heap_free_bytes" // Go heap held but holding no object (free and unused spans)
	PeakGoOtherBytes    = "peak_go_other_bytes"     // goroutine stacks and the Go runtime's own structures
	PeakMemtableBytes   = "peak_memtable_bytes"     // Pebble's memtables (Metrics().MemTable.Size)
	PeakBlockCacheBytes = "peak_block_cache_bytes"  // Pebble's block cache (Metrics().BlockCache.Size)
	PeakOtherBytes      = "peak_other_bytes"        // the rest: the program's code and data, C allocator overhead
	PeakSampledRSSBytes = "peak_sampled_rss_bytes"  // VmRSS of the sample the parts above are read from
	GCCycles            = "gc_cycles"               // garbage collections during the cold load
)

// Memory is the process's resident memory at one moment and what it is made of.
type Memory struct {
	RSS        int64 // VmRSS
	GoHeapLive int64 // /memory/classes/heap/objects:bytes
	GoHeapFree int64 // /memory/classes/heap/free:bytes + /memory/classes/heap/unused:bytes
	GoOther    int64 // the rest of Go's memory not released to the OS: stacks, runtime metadata
	Memtables  int64 // Pebble's memtables, outside the Go heap
	BlockCache int64 // Pebble's block cache, outside the Go heap
	GCCycles   int64 // /gc/cycles/total:gc-cycles
}

// Other is what RSS holds besides the parts: the program's code and data, the C allocator's
// overhead, and Go memory not yet touched (counted by Go, not resident), which makes it an
// estimate; never negative.
func (m Memory) Other() int64 {
	return max(0, m.RSS-m.GoHeapLive-m.GoHeapFree-m.GoOther-m.Memtables-m.BlockCache)
}

// Record adds m's parts to r under the Peak* names, and its GCCycles.
func (m Memory) Record(r Result) {
	r.Metrics[PeakGoHeapLiveBytes] = float64(m.GoHeapLive)
	r.Metrics[PeakGoHeapFreeBytes] = float64(m.GoHeapFree)
	r.Metrics[PeakGoOtherBytes] = float64(m.GoOther)
	r.Metrics[PeakMemtableBytes] = float64(m.Memtables)
	r.Metrics[PeakBlockCacheBytes] = float64(m.BlockCache)
	r.Metrics[PeakOtherBytes] = float64(m.Other())
	r.Metrics[PeakSampledRSSBytes] = float64(m.RSS)
	r.Metrics[GCCycles] = float64(m.GCCycles)
}

// MemorySampler reads the process's memory at a fixed interval while a phase runs and keeps
// the sample with the largest resident set. Between samples the resident set may peak higher
// (VmHWM is exact, the parts are not): the breakdown is that of the largest sample.
type MemorySampler struct {
	store func() (memtables, blockCache int64)
	stop  chan struct{}
	done  chan struct{}

	mu   sync.Mutex
	peak Memory
	err  error
}

var goMemoryNames = []string{
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/unused:bytes",
	"/gc/cycles/total:gc-cycles",
}

// StartMemorySampler starts sampling every interval; store, when not nil, reports Pebble's
// memtables and block cache. Stop ends it.
func StartMemorySampler(interval time.Duration, store func() (memtables, blockCache int64)) *MemorySampler {
	s := &MemorySampler{store: store, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run(interval)
	return s
}

func (s *MemorySampler) run(interval time.Duration) {
	defer close(s.done)
	samples := make([]metrics.Sample, len(goMemoryNames))
	for i, n := range goMemoryNames {
		samples[i].Name = n
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		m, err := s.sample(samples)
		s.mu.Lock()
		if err != nil && s.err == nil {
			s.err = err
		}
		if m.RSS > s.peak.RSS {
			s.peak = m
		}
		s.peak.GCCycles = m.GCCycles
		s.mu.Unlock()
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

func (s *MemorySampler) sample(samples []metrics.Sample) (Memory, error) {
	var m Memory
	rss, err := statusBytes("/proc/self/status", "VmRSS:")
	if err != nil {
		return m, err
	}
	m.RSS = rss
	metrics.Read(samples)
	v := func(i int) int64 { return int64(samples[i].Value.Uint64()) }
	total, released := v(0), v(1)
	m.GoHeapLive = v(2)
	m.GoHeapFree = v(3) + v(4)
	m.GoOther = total - released - m.GoHeapLive - m.GoHeapFree
	m.GCCycles = v(5)
	if s.store != nil {
		m.Memtables, m.BlockCache = s.store()
	}
	return m, nil
}

// Stop ends the sampling and returns the sample with the largest resident set, with the
// collections counted up to the last sample.
func (s *MemorySampler) Stop() (Memory, error) {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak, s.err
}
