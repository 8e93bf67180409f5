//go:build linux

package cache

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/stratalog/strata/proto"
)

var (
	benchSegments    = flag.Int("cache.bench-segments", 1_000_000, "segments BenchmarkApplyMillion builds")
	benchBlockCache  = flag.Int64("cache.bench-block-cache", DefaultBlockCacheSize, "block cache of the stores the benchmarks open")
	benchLookupCache = flag.Int64("cache.bench-lookup-cache", DefaultLookupCacheSize, "SegmentFor's answer cache in BenchmarkApplyMillion's stores; 0 turns it off")
	benchWarmup      = flag.Int("cache.bench-warmup", 20_000, "unmeasured lookups at random before the measured ones, as make bench makes")
)

const (
	benchPartitions = 1000 // user partitions
	benchMetadata   = 50   // metadata partitions, Kafka's default
	benchBatch      = 1000 // entries per Apply
	benchSegsEpoch  = 100  // segments per leader epoch of a partition
)

// benchWorkload is the topic a broker tiering 1,000 partitions writes: for each segment,
// COPY_SEGMENT_STARTED then COPY_SEGMENT_FINISHED, the partitions taking turns, a new leader
// epoch every 100 segments of a partition, each user partition's records in the metadata
// partition its number picks.
type benchWorkload struct {
	segments int
	next     [benchMetadata]int64
}

func (w *benchWorkload) tp(k int) proto.TopicIDPartition {
	return proto.TopicIDPartition{TopicID: testTopicID, Topic: "bench", Partition: int32(k % benchPartitions)}
}

// segment returns the id, start offset and epoch of the k-th segment.
func (w *benchWorkload) segment(k int) (proto.SegmentID, int64, int32) {
	j := k / benchPartitions
	id := proto.SegmentID{TopicIDPartition: w.tp(k)}
	id.ID[0], id.ID[1], id.ID[2], id.ID[3] = byte(k>>24), byte(k>>16), byte(k>>8), byte(k)
	id.ID[15] = 0xbe
	return id, int64(j) * 100, int32(j / benchSegsEpoch)
}

// added returns the add record of the k-th segment.
func (w *benchWorkload) added(k int) *proto.SegmentMetadata {
	id, start, epoch := w.segment(k)
	return &proto.SegmentMetadata{
		SegmentID: id, StartOffset: start, EndOffset: start + 99, BrokerID: 1,
		MaxTimestampMs: 1_700_000_000_000 + start, EventTimestampMs: 1_700_000_000_000 + start,
		LeaderEpochs:       []proto.EpochEntry{{Epoch: epoch, StartOffset: start}},
		SegmentSizeInBytes: 1 << 30, State: proto.CopySegmentStarted, TxnIndexEmpty: true,
	}
}

// batch returns the entries of events [from, from+n).
func (w *benchWorkload) batch(from, n int) []Entry {
	out := make([]Entry, 0, n)
	for ev := from; ev < from+n && ev < 2*w.segments; ev++ {
		k := ev / 2
		id, start, _ := w.segment(k)
		var r proto.Record
		if ev%2 == 0 {
			r = w.added(k)
		} else {
			r = &proto.SegmentMetadataUpdate{SegmentID: id, BrokerID: 1, EventTimestampMs: 1_700_000_000_001 + start, State: proto.CopySegmentFinished}
		}
		mp := id.Partition % benchMetadata
		out = append(out, Entry{Partition: mp, Offset: w.next[mp], Record: r})
		w.next[mp]++
	}
	return out
}

// BenchmarkApplyMillion builds a store of -cache.bench-segments segments (default 1,000,000)
// over 1,000 user partitions in calls of 1,000 entries, on the real filesystem (TMPDIR), then
// looks up random offsets. It reports apply throughput (events/s) and the CPU time the process
// spent per event meanwhile, Pebble's background work included (cpu-ns/event: unlike the
// throughput it does not depend on what else the machine runs), lookup latency (p50-ns,
// p99-ns), the process's peak resident memory (peak-rss-MB) and the store's size on disk
// (disk-MB). Then it closes and reopens the store, as a broker's restart would, and reports how
// long Open took (reopen-ms) and the lookup latency again (reopened-p50-ns, reopened-p99-ns).
// Run it as:
//
//	go test ./cache -run '^$' -bench BenchmarkApplyMillion -benchtime 1x
func BenchmarkApplyMillion(b *testing.B) { benchBuild(b, false) }

// BenchmarkLoadMillion is BenchmarkApplyMillion with the store built by a Loader (the bulk
// load of a manager starting on an empty store), the records passed as the consumer passes
// them, with their bytes (Entry.Raw). Its events/s and cpu-ns/event cover Add and Finish, and
// the encoding of those bytes too.
// Peak memory is the process's: run it alone (-bench BenchmarkLoadMillion) to compare.
func BenchmarkLoadMillion(b *testing.B) { benchBuild(b, true) }

func benchBuild(b *testing.B, load bool) {
	for b.Loop() {
		dir := filepath.Join(b.TempDir(), "store")
		s, err := Open(dir, WithBlockCacheSize(*benchBlockCache), WithLookupCacheSize(*benchLookupCache))
		if err != nil {
			b.Fatal(err)
		}
		w := &benchWorkload{segments: *benchSegments}
		events := 2 * w.segments
		var l *Loader
		if load {
			if l, err = s.NewLoader(); err != nil {
				b.Fatal(err)
			}
		}
		cpu0, cpuOK := cpuTime()
		start := time.Now()
		for ev := 0; ev < events; ev += benchBatch {
			entries := w.batch(ev, benchBatch)
			if load {
				for i := range entries {
					if entries[i].Raw, err = proto.Encode(entries[i].Record); err != nil {
						b.Fatal(err)
					}
				}
				if err := l.Add(entries); err != nil {
					b.Fatal(err)
				}
				continue
			}
			res, err := s.Apply(entries)
			if err != nil {
				b.Fatal(err)
			}
			if len(res.Dropped) != 0 || res.Duplicates != 0 {
				b.Fatalf("events %d..: %d dropped (%v), %d duplicates", ev, len(res.Dropped), res.Dropped[0].Err, res.Duplicates)
			}
		}
		if load {
			res, err := l.Finish(context.Background(), nil)
			if err != nil {
				b.Fatal(err)
			}
			if res.Applied != events {
				b.Fatalf("the load applied %d of %d events: %+v", res.Applied, events, res)
			}
		}
		elapsed := time.Since(start)
		b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
		if cpu1, ok := cpuTime(); ok && cpuOK {
			b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(events), "cpu-ns/event")
		}

		p50, p99 := benchLookups(b, s, w)
		b.ReportMetric(float64(p50.Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(p99.Nanoseconds()), "p99-ns")

		if rss, ok := peakRSS(); ok {
			b.ReportMetric(float64(rss)/(1<<20), "peak-rss-MB")
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(dirSize(b, dir))/(1<<20), "disk-MB")

		// A restart: Open reads no history, and lookups run against the flushed store.
		t0 := time.Now()
		if s, err = Open(dir, WithBlockCacheSize(*benchBlockCache), WithLookupCacheSize(*benchLookupCache)); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(t0).Microseconds())/1000, "reopen-ms")
		p50, p99 = benchLookups(b, s, w)
		b.ReportMetric(float64(p50.Nanoseconds()), "reopened-p50-ns")
		b.ReportMetric(float64(p99.Nanoseconds()), "reopened-p99-ns")
		p50, p99 = benchSequentialLookups(b, s, w)
		b.ReportMetric(float64(p50.Nanoseconds()), "seq-p50-ns")
		b.ReportMetric(float64(p99.Nanoseconds()), "seq-p99-ns")
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// benchLookups times 100,000 SegmentFor calls at random offsets of random segments of w, after
// -cache.bench-warmup unmeasured ones, and returns the median and the 99th percentile.
func benchLookups(b *testing.B, s *Store, w *benchWorkload) (p50, p99 time.Duration) {
	const lookups = 100_000
	rng := rand.New(rand.NewPCG(1, 2))
	lat := make([]time.Duration, *benchWarmup+lookups)
	var hits0, misses0 int64
	for i := range lat {
		if i == *benchWarmup && s.lookups != nil {
			hits0, misses0 = s.lookups.hits.Load(), s.lookups.misses.Load()
		}
		k := rng.IntN(w.segments)
		id, first, epoch := w.segment(k)
		offset := first + rng.Int64N(100)
		t0 := time.Now()
		m, ok, err := s.SegmentFor(id.TopicIDPartition, epoch, offset)
		lat[i] = time.Since(t0)
		if err != nil || !ok || m.SegmentID.ID != id.ID {
			b.Fatalf("SegmentFor(%s, %d, %d) = %v, %t, %v; want segment %d", id.TopicIDPartition, epoch, offset, m.SegmentID, ok, err, k)
		}
	}
	if s.lookups != nil {
		hits, misses := s.lookups.hits.Load()-hits0, s.lookups.misses.Load()-misses0
		b.Logf("lookup cache: %d hits, %d misses of %d measured lookups", hits, misses, lookups)
	}
	lat = lat[*benchWarmup:]
	slices.Sort(lat)
	return lat[lookups/2], lat[lookups*99/100]
}

// benchSequentialLookups times 100,000 SegmentFor calls as consumers reading from remote
// storage make them: each reads a random segment from its start in ten steps, as a broker
// serving fetches of a tenth of a segment each asks for the segment of every fetch's offset.
// It returns the median and the 99th percentile.
func benchSequentialLookups(b *testing.B, s *Store, w *benchWorkload) (p50, p99 time.Duration) {
	const lookups, steps = 100_000, 10
	rng := rand.New(rand.NewPCG(3, 4))
	lat := make([]time.Duration, 0, lookups)
	for len(lat) < lookups {
		k := rng.IntN(w.segments)
		id, first, epoch := w.segment(k)
		for j := range int64(steps) {
			offset := first + j*100/steps
			t0 := time.Now()
			m, ok, err := s.SegmentFor(id.TopicIDPartition, epoch, offset)
			lat = append(lat, time.Since(t0))
			if err != nil || !ok || m.SegmentID.ID != id.ID {
				b.Fatalf("SegmentFor(%s, %d, %d) = %v, %t, %v; want segment %d", id.TopicIDPartition, epoch, offset, m.SegmentID, ok, err, k)
			}
		}
	}
	slices.Sort(lat)
	return lat[lookups/2], lat[lookups*99/100]
}

// BenchmarkSegmentFor measures one lookup in a store of 100,000 segments.
func BenchmarkSegmentFor(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "store"), WithBlockCacheSize(*benchBlockCache))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	w := &benchWorkload{segments: 100_000}
	for ev := 0; ev < 2*w.segments; ev += benchBatch {
		if _, err := s.Apply(w.batch(ev, benchBatch)); err != nil {
			b.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		id, first, epoch := w.segment(rng.IntN(w.segments))
		if _, ok, err := s.SegmentFor(id.TopicIDPartition, epoch, first+50); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkPebbleFloor measures what Pebble alone costs for BenchmarkApplyMillion's workload,
// opened with the store's options: each call writes, in one synced batch in key order, exactly
// the rows Apply nets out of 1,000 events (for each of 500 segments its finished segment row
// and its referenced row, its partition's row, and the next offsets), with none of Apply's own
// work. Sub-benchmark "exists" also makes the one read Apply cannot do without: whether each
// added segment already exists (a SeekPrefixGE per segment, in key order). Then it looks up
// random offsets as SegmentFor does (a fresh iterator bounded to the partition, one
// SeekPrefixGE, the value) with the store as the writes left it, and again with every block
// cached. The figures are a floor for the store's: Apply cannot write less or read less.
//
//	go test ./cache -run '^$' -bench BenchmarkPebbleFloor -benchtime 1x
func BenchmarkPebbleFloor(b *testing.B) {
	for _, exists := range []bool{false, true} {
		name := "rows"
		if exists {
			name = "rows+exists"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				pebbleFloor(b, exists)
			}
		})
	}
}

func pebbleFloor(b *testing.B, exists bool) {
	o, err := buildOptions([]Option{WithBlockCacheSize(*benchBlockCache)})
	if err != nil {
		b.Fatal(err)
	}
	db, err := pebble.Open(filepath.Join(b.TempDir(), "floor"), pebbleOptions(o, &damage{log: o.log}))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	w := &benchWorkload{segments: *benchSegments}
	events := 2 * w.segments
	parts := make(map[tpPrefix]*partRow)
	type row struct{ k, v []byte }
	var rows []row
	cpu0, cpuOK := cpuTime()
	start := time.Now()
	for ev := 0; ev < events; ev += benchBatch {
		rows = rows[:0]
		var keys [][]byte
		for k := ev / 2; k < (ev+benchBatch)/2 && k < w.segments; k++ {
			id, first, epoch := w.segment(k)
			m := w.added(k) // as its update leaves it
			m.EventTimestampMs, m.State = 1_700_000_000_001+first, proto.CopySegmentFinished
			p := prefixOf(id.TopicIDPartition)
			pr := parts[p]
			if pr == nil {
				pr = &partRow{name: id.Topic, mp: id.Partition % benchMetadata, hasCur: true}
				parts[p] = pr
			}
			pr.counts[proto.CopySegmentFinished]++
			pr.bytes += int64(m.SegmentSizeInBytes)
			pr.cur, pr.curRow = epoch, epochRow{hasHighest: true, highest: m.EndOffset, hasLast: true, last: first}
			keys = append(keys, p.segmentKey(id.ID))
			rows = append(rows,
				row{p.segmentKey(id.ID), encodeSegment(nil, m)},
				row{p.refKey(epoch, first), encodeRef(nil, m)},
				row{p.partitionKey(), encodePart(nil, pr)})
		}
		for mp := int32(0); mp < benchMetadata; mp++ {
			rows = append(rows, row{offsetKey(mp), encodeOffset(int64(ev))})
		}
		if exists {
			slices.SortFunc(keys, bytes.Compare)
			it, err := db.NewIter(&pebble.IterOptions{UseL6Filters: true})
			if err != nil {
				b.Fatal(err)
			}
			for _, k := range keys {
				if it.SeekPrefixGE(k) && bytes.Equal(it.Key(), k) {
					b.Fatalf("segment %x exists", k)
				}
			}
			if err := it.Close(); err != nil {
				b.Fatal(err)
			}
		}
		slices.SortFunc(rows, func(a, b row) int { return bytes.Compare(a.k, b.k) })
		batch := db.NewBatch()
		for _, r := range rows {
			if err := batch.Set(r.k, r.v, nil); err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.Commit(pebble.Sync); err != nil {
			b.Fatal(err)
		}
		batch.Close()
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
	if cpu1, ok := cpuTime(); ok && cpuOK {
		b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(events), "cpu-ns/event")
	}
	for _, round := range []string{"", "warm-"} {
		rng := rand.New(rand.NewPCG(1, 2))
		lat := make([]time.Duration, 100_000)
		for i := range lat {
			id, first, epoch := w.segment(rng.IntN(w.segments))
			p := prefixOf(id.TopicIDPartition)
			key := p.refKey(epoch, first+rng.Int64N(100))
			t0 := time.Now()
			it, err := db.NewIter(&pebble.IterOptions{LowerBound: p[:], UpperBound: p.upper()})
			if err != nil {
				b.Fatal(err)
			}
			if !it.SeekPrefixGE(key) {
				b.Fatalf("no referenced row at or below %s", formatKey(key))
			}
			_ = it.Value()
			if err := it.Close(); err != nil {
				b.Fatal(err)
			}
			lat[i] = time.Since(t0)
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), round+"p50-ns")
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), round+"p99-ns")
	}
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

// peakRSS returns the process's peak resident set size (VmHWM), where Linux reports it.
func peakRSS() (int64, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

func dirSize(b *testing.B, dir string) int64 {
	var total int64
	err := filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			total += info.Size()
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return total
}
