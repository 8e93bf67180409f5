package cache

import (
	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// storeCollector exports what Pebble reports about the store (pebble.DB.Metrics), read at
// scrape time: nothing runs between scrapes and nothing is added to the write path.
type storeCollector struct {
	s *Store

	diskBytes, blockCacheBytes, memtableBytes, readAmp, compactionDebt *prometheus.Desc
	compactions, flushes, blockCacheHits, blockCacheMisses             *prometheus.Desc
	lookupCacheBytes, lookupCacheHits, lookupCacheMisses               *prometheus.Desc
}

// NewCollector returns a prometheus.Collector of s's Pebble metrics: disk usage, compactions,
// flushes, block-cache hits and misses (the hit rate is
// rate(hits) / (rate(hits) + rate(misses))), memtable size, read amplification. Register it on
// one registry per store; once the store is closed it reports nothing. Pebble's counters start
// again from zero each time the store is opened, which Prometheus's rate() treats as a restart.
func NewCollector(s *Store) prometheus.Collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("strata_cache_"+name, help, nil, nil)
	}
	return &storeCollector{
		s:                s,
		diskBytes:        d("disk_usage_bytes", "Bytes the store's files take on disk (Pebble's DiskSpaceUsage)."),
		blockCacheBytes:  d("block_cache_bytes", "Bytes of blocks in Pebble's block cache (its memtables not included)."),
		memtableBytes:    d("memtable_bytes", "Bytes allocated by Pebble's memtables: those in use, those still read, and the one kept for reuse."),
		readAmp:          d("read_amplification", "Pebble's read amplification: sublevels of L0 plus non-empty levels below it."),
		compactionDebt:   d("compaction_debt_bytes", "Pebble's estimate of the bytes to compact for the LSM to be stable."),
		compactions:      d("compactions_total", "Compactions since the store was opened."),
		flushes:          d("flushes_total", "Memtable flushes since the store was opened."),
		blockCacheHits:   d("block_cache_hits_total", "Block-cache hits since the store was opened."),
		blockCacheMisses: d("block_cache_misses_total", "Block-cache misses since the store was opened."),
		lookupCacheBytes: d("lookup_cache_bytes", "Bytes SegmentFor's cache holds (at most its budget, WithLookupCacheSize)."),
		lookupCacheHits:  d("lookup_cache_hits_total", "Segment-for-offset lookups SegmentFor's cache answered since the store was opened."),
		lookupCacheMisses: d("lookup_cache_misses_total",
			"Segment-for-offset lookups SegmentFor's cache did not answer (they read Pebble) since the store was opened."),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.diskBytes, c.blockCacheBytes, c.memtableBytes, c.readAmp, c.compactionDebt,
		c.compactions, c.flushes, c.blockCacheHits, c.blockCacheMisses,
		c.lookupCacheBytes, c.lookupCacheHits, c.lookupCacheMisses} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	var m *pebble.Metrics
	var lc LookupCacheStats
	// Holding the store open: Pebble's Metrics on a closed DB panics.
	// A damaged store (being replaced) reports nothing until it is replaced.
	err := c.s.read(func() error {
		if c.s.db != nil {
			m = c.s.db.Metrics()
		}
		lc = c.s.LookupCacheStats()
		return nil
	})
	if err != nil || m == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(c.diskBytes, float64(m.DiskSpaceUsage()))
	gauge(c.blockCacheBytes, float64(m.BlockCache.Size))
	// Pebble keeps the last flushed memtable to reuse its memory (ZombieSize counts it, with
	// memtables an iterator still reads): it is resident all the same.
	gauge(c.memtableBytes, float64(m.MemTable.Size+m.MemTable.ZombieSize))
	gauge(c.readAmp, float64(m.ReadAmp()))
	gauge(c.compactionDebt, float64(m.Compact.EstimatedDebt))
	counter(c.compactions, float64(m.Compact.Count))
	counter(c.flushes, float64(m.Flush.Count))
	counter(c.blockCacheHits, float64(m.BlockCache.Hits))
	counter(c.blockCacheMisses, float64(m.BlockCache.Misses))
	gauge(c.lookupCacheBytes, float64(lc.Bytes))
	counter(c.lookupCacheHits, float64(lc.Hits))
	counter(c.lookupCacheMisses, float64(lc.Misses))
}
