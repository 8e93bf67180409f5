package cache

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"

	"github.com/stratalog/strata/proto"
)

// ErrNotEmpty is returned by NewLoader for a store that already holds rows of user partitions:
// a load builds them from nothing.
var ErrNotEmpty = errors.New("cache: store holds user partitions")

// ErrLoading is returned by every write to a store while a Loader fills it (Apply, Preview,
// Skip, ResetPartition, SetIdentity): their answers would ignore what the load holds.
var ErrLoading = errors.New("cache: store is being loaded")

// ErrLoadEnded is returned by a Loader's methods after Finish or Abort, or after the store was
// replaced or closed under it.
var ErrLoadEnded = errors.New("cache: load ended")

// Loader fills a store that holds no user partition yet from the start of the metadata topic:
// what a manager does once, at its first start, over all the history the topic holds. Its
// result is the store Apply would have built from the same entries, row for row (the same
// applies, drops and offsets), built another way:
//
//   - Apply writes each fetch through Pebble's write-ahead log and memtables, and reads the
//     store for every segment a record names, most of them to learn that a segment about to be
//     added does not exist; then Pebble's compactions rewrite the rows several times over as
//     history accumulates. All of that grows with history.
//   - The Loader only appends entries to sorted runs, files in the store's directory (Add). Finish
//     merges the runs into one sequence grouped by user partition in key order (each
//     partition's entries in the order they were added), applies each partition's entries in
//     memory with the same code as Apply (nothing to read: the store holds nothing of it),
//     writes the resulting rows in key order into tables, and ingests the tables and the
//     metadata partitions' next offsets into the store in one atomic step. The rows are
//     written once, at the bottom of the store, where no compaction needs to move them.
//
// Until Finish returns, the store holds nothing of the load: a crash or Abort leaves it as it
// was (but for dropped-record rows, see Finish), and the load starts again from the same
// offsets. Every other write to the store fails with ErrLoading meanwhile; queries answer from
// the store as it was.
//
// Memory is bounded by the run size (loadRunBytes) and, during Finish, by a read buffer per run
// and the history of the largest user partitions: two partitions' rows are held while they are
// applied. Disk: the runs, in the store's directory, hold every entry added, about the size of
// the records, until Finish.
//
// A Loader is used by one goroutine.
type Loader struct {
	s   *Store
	fs  vfs.FS
	dir string

	next map[int32]int64 // next offset of each metadata partition: the store's, moved by Add

	runBytes int     // the size a run grows to before it is sorted and written
	chunk    int     // the most entries of a partition Finish passes from reading to applying at once
	cur      loadRun // the run being added to
	spare    loadRun // the run written last, to reuse once written
	tpIndex  map[tpPrefix]int32
	runs     []string
	writing  chan error     // the write of the last full run, when in flight
	odd      []proto.Record // records Kafka's format cannot hold, by index

	replaced atomic.Bool // the store was replaced under the load (Replace)
	dropMu   sync.Mutex  // serializes the calls of Finish's onDrop
	res      LoadResult
	ended    bool
}

// LoadResult counts what a load did, as Apply's Result does: Applied + Duplicates + Dropped is
// the number of entries added.
type LoadResult struct {
	Applied    int
	Duplicates int
	Dropped    int
}

// loadRun is the entries of one run, as Add keeps them: their encodings in one arena, and
// the user partitions they are about.
type loadRun struct {
	arena []byte
	recs  []loadRec
	tps   []tpPrefix
}

// loadRec is one entry of a run: the index of its user partition in the run's tps and
// where its encoding starts in the arena (metadata partition, offset, length, record).
type loadRec struct {
	tp  int32
	off uint32
}

// loadRunBytes is the size of the records a run holds before it is sorted and written out. The
// Loader's memory while it adds is two runs: one filling while the last one is written.
const loadRunBytes = 4 << 20

// loadTableBytes is the size at which Finish starts a new table.
const loadTableBytes = 64 << 20

// loadDropBatch is how many bytes of dropped-record rows Finish holds before writing them to
// the store: unlike the partitions' rows they are not bounded by the number of partitions, and
// written ahead of the load they change nothing a reader relies on (see Finish).
const loadDropBatch = 1 << 20

const loadDirName = "load.tmp"

// oddRecord in the length of a run's entry says the entry is l.odd[i], i the next 4 bytes.
const oddRecord = ^uint32(0)

// NewLoader starts a load. It fails with ErrNotEmpty when the store holds any row of a user
// partition (or the tombstone of one), with ErrLoading while another load runs.
func (s *Store) NewLoader() (*Loader, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.loader != nil {
		return nil, ErrLoading
	}
	l := &Loader{s: s, fs: s.opts.fs, dir: s.opts.fs.PathJoin(s.dir, loadDirName), runBytes: loadRunBytes, chunk: loadChunkEntries,
		tpIndex: map[tpPrefix]int32{}}
	err := s.read(func() error {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagDeleted}})
		if err != nil {
			return err
		}
		found := it.First()
		if err := it.Close(); err != nil {
			return err
		}
		if found {
			return ErrNotEmpty
		}
		// A load that a crash interrupted left its runs behind.
		if err := l.fs.RemoveAll(l.dir); err != nil {
			return err
		}
		return l.fs.MkdirAll(l.dir, 0o755)
	})
	if err == nil {
		l.next, err = s.Offsets()
	}
	if err != nil {
		return nil, fmt.Errorf("cache: load: %w", err)
	}
	s.loader = l
	return l, nil
}

// Add adds entries to the load. As with Apply, an entry below its metadata partition's next
// offset is a duplicate and is counted only; entries of each metadata partition come in offset
// order. An invalid entry fails the call (wrapping ErrInvalidEntry) with nothing of it added.
// Add keeps nothing of entries after it returns.
func (l *Loader) Add(entries []Entry) error {
	if l.ended {
		return ErrLoadEnded
	}
	for i := range entries {
		if err := validEntry(&entries[i]); err != nil {
			return fmt.Errorf("cache: load: entry %d of %d: %w", i, len(entries), err)
		}
	}
	for i := range entries {
		e := &entries[i]
		if e.Offset < l.next[e.Partition] {
			l.res.Duplicates++
			continue
		}
		l.next[e.Partition] = e.Offset + 1
		p := loadPrefix(e.Record)
		r := &l.cur
		ti, ok := l.tpIndex[p]
		if !ok {
			ti = int32(len(r.tps))
			l.tpIndex[p] = ti
			r.tps = append(r.tps, p)
		}
		off := len(r.arena)
		r.arena = binary.BigEndian.AppendUint32(r.arena, uint32(e.Partition))
		r.arena = binary.BigEndian.AppendUint64(r.arena, uint64(e.Offset))
		r.arena = append(r.arena, 0, 0, 0, 0)
		if e.Raw != nil {
			binary.BigEndian.PutUint32(r.arena[off+12:], uint32(len(e.Raw)))
			r.arena = append(r.arena, e.Raw...)
		} else if enc, err := proto.AppendEncode(r.arena, e.Record); err == nil {
			binary.BigEndian.PutUint32(enc[off+12:], uint32(len(enc)-off-16))
			r.arena = enc
		} else {
			// A record Decode returned always encodes. One built otherwise may hold what
			// Kafka's format cannot (an unknown state, epochs out of order), and Apply
			// drops it for that: it stays in memory, and the run holds its index.
			binary.BigEndian.PutUint32(r.arena[off+12:], oddRecord)
			r.arena = binary.BigEndian.AppendUint32(r.arena, uint32(len(l.odd)))
			l.odd = append(l.odd, e.Record)
		}
		r.recs = append(r.recs, loadRec{tp: ti, off: uint32(off)})
		if len(r.arena) >= l.runBytes {
			if err := l.spill(); err != nil {
				return err
			}
		}
	}
	return nil
}

// loadPrefix is the key prefix of the user partition a record is about; zero for a record
// that names none (every store drops those).
func loadPrefix(r proto.Record) tpPrefix {
	switch r := r.(type) {
	case *proto.SegmentMetadata:
		return prefixOf(r.SegmentID.TopicIDPartition)
	case *proto.SegmentMetadataUpdate:
		return prefixOf(r.SegmentID.TopicIDPartition)
	case *proto.PartitionDeleteMetadata:
		return prefixOf(r.TopicIDPartition)
	}
	return tpPrefix{}
}

// spill hands the current run to a goroutine that sorts and writes it, once the previous one
// is written, and starts a new run: the next entries are added while it is written.
func (l *Loader) spill() error {
	if len(l.cur.recs) == 0 {
		return nil
	}
	if err := l.waitWrite(); err != nil {
		return err
	}
	name := l.fs.PathJoin(l.dir, fmt.Sprintf("run-%06d", len(l.runs)))
	l.runs = append(l.runs, name)
	run := l.cur
	l.cur = loadRun{arena: l.spare.arena[:0], recs: l.spare.recs[:0], tps: l.spare.tps[:0]}
	l.spare = run
	clear(l.tpIndex)
	done := make(chan error, 1)
	l.writing = done
	go func() { done <- l.writeRun(name, &run) }()
	return nil
}

// waitWrite waits for the run being written, if any.
func (l *Loader) waitWrite() error {
	if l.writing == nil {
		return nil
	}
	err := <-l.writing
	l.writing = nil
	return err
}

// writeRun sorts a run by user partition, keeping each partition's entries in the order they
// were added (a counting sort over the partitions' ranks), and writes it to a file: for each
// partition its prefix and number of entries, then the entries. The file is not synced: a
// load that does not finish starts over, its runs are never read again.
func (l *Loader) writeRun(name string, r *loadRun) error {
	order := make([]int32, len(r.tps))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return bytes.Compare(r.tps[a][:], r.tps[b][:]) })
	rank := make([]int32, len(r.tps))
	for k, i := range order {
		rank[i] = int32(k)
	}
	start := make([]int, len(r.tps)+1)
	for _, e := range r.recs {
		start[rank[e.tp]+1]++
	}
	for i := 1; i < len(start); i++ {
		start[i] += start[i-1]
	}
	sorted := make([]uint32, len(r.recs))
	pos := slices.Clone(start[:len(r.tps)])
	for _, e := range r.recs {
		k := rank[e.tp]
		sorted[pos[k]] = e.off
		pos[k]++
	}

	f, err := l.fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("cache: load: %w", err)
	}
	w := bufio.NewWriterSize(f, 256<<10)
	var hdr [tpPrefixLen + binary.MaxVarintLen64]byte
	for k, i := range order {
		n := start[k+1] - start[k]
		copy(hdr[:], r.tps[i][:])
		w.Write(hdr[:binary.PutUvarint(hdr[tpPrefixLen:], uint64(n))+tpPrefixLen])
		for _, off := range sorted[start[k]:start[k+1]] {
			size := binary.BigEndian.Uint32(r.arena[off+12:])
			if size == oddRecord {
				size = 4
			}
			w.Write(r.arena[off : off+16+size])
		}
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		return fmt.Errorf("cache: load: writing %s: %w", name, err)
	}
	return nil
}

// Abort ends the load and removes its runs; the store is as it was before NewLoader.
func (l *Loader) Abort() error {
	if l.ended {
		return nil
	}
	return l.end()
}

// end releases the store for other writers and removes the load's files.
func (l *Loader) end() error {
	l.ended = true
	// A run still being written matters no more: Finish has waited for the last one and
	// returned its error, and Abort drops them all.
	l.waitWrite()
	l.cur, l.spare, l.odd = loadRun{}, loadRun{}, nil
	l.s.writeMu.Lock()
	if l.s.loader == l {
		l.s.loader = nil
	}
	l.s.writeMu.Unlock()
	if err := l.fs.RemoveAll(l.dir); err != nil {
		return fmt.Errorf("cache: load: removing %s: %w", l.dir, err)
	}
	return nil
}

// Finish applies everything added and writes it into the store, calling onDrop (when not nil)
// for each record not applied, one call at a time, grouped by user partition and in order
// within each. It stops soon after ctx ends, with ctx's error and nothing written. After it the
// load has ended, whether it succeeded or not.
//
// The partitions' rows, their tombstones and the metadata partitions' next offsets enter the
// store in one ingestion: after a crash the store holds all of them or none. Dropped-record rows
// may be written before it, in batches: such a row says only what the record at its offset
// is, which every later load or Apply of that record writes again identically.
func (l *Loader) Finish(ctx context.Context, onDrop func(Drop)) (LoadResult, error) {
	if l.ended {
		return LoadResult{}, ErrLoadEnded
	}
	res, err := l.finish(ctx, onDrop)
	if eerr := l.end(); err == nil {
		err = eerr
	}
	if err != nil {
		return LoadResult{}, err
	}
	return res, nil
}

func (l *Loader) finish(ctx context.Context, onDrop func(Drop)) (LoadResult, error) {
	if err := l.spill(); err != nil {
		return LoadResult{}, err
	}
	if err := l.waitWrite(); err != nil {
		return LoadResult{}, err
	}
	// Every run is written: the arenas are not needed again.
	l.cur, l.spare = loadRun{}, loadRun{}
	m, err := newRunMerger(l.fs, l.runs)
	if err != nil {
		return LoadResult{}, err
	}
	defer m.close()
	tw, err := newTableWriter(l)
	if err != nil {
		return LoadResult{}, err
	}
	defer tw.abandon()
	appliers := make([]*applier, loadAppliers)
	for i := range appliers {
		a, err := newApplier(l, onDrop)
		if err != nil {
			return LoadResult{}, err
		}
		defer a.sink.close()
		appliers[i] = a
	}

	// The stages run on goroutines of their own, all owned by this one, which waits for them:
	// a reader that reads and decodes the runs' entries, partition by partition in key order;
	// appliers, each applying every other partition (a partition's entries all go to one);
	// and a writer that writes the partitions' rows into tables in key order, taking them
	// from the appliers in turn. A partition's entries go in chunks, so that what is in flight
	// does not grow with its history; its rows go at once, when its last chunk is applied.
	//
	// Whatever a stage waits for, the stage it waits on makes progress: the reader sends a
	// partition's chunks only after every chunk of the one before, so the applier of the
	// partition the writer waits for has all of it.
	stop := make(chan struct{})
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }) }
	freeChunks := make(chan []Entry, 2*len(appliers)+1)
	freeBlocks := make(chan *rowBlock, len(appliers)+1)
	var readErr, writeErr error
	var wg sync.WaitGroup
	// A cancelled ctx stops every stage.
	cancelled := context.AfterFunc(ctx, halt)
	defer cancelled()
	wg.Add(2 + len(appliers))
	go func() {
		defer wg.Done()
		defer func() {
			for _, a := range appliers {
				close(a.in)
			}
		}()
		fresh := func() []Entry {
			select {
			case e := <-freeChunks:
				return e
			default:
				return make([]Entry, 0, l.chunk)
			}
		}
		for g := 0; ; g++ {
			in := appliers[g%len(appliers)].in
			send := func(c loadChunk) bool {
				select {
				case in <- c:
					return true
				case <-stop:
					return false
				}
			}
			entries := fresh()
			ok, err := m.group(func(mp int32, offset int64, rec []byte, odd bool) error {
				var r proto.Record
				if odd {
					r = l.odd[binary.BigEndian.Uint32(rec)]
				} else {
					var err error
					if r, err = m.dec.Decode(rec); err != nil {
						return fmt.Errorf("metadata partition %d offset %d: %w", mp, offset, err)
					}
				}
				entries = append(entries, Entry{Partition: mp, Offset: offset, Record: r})
				if len(entries) == l.chunk {
					if !send(loadChunk{entries: entries}) {
						return errLoadStopped
					}
					entries = fresh()
				}
				return nil
			})
			if errors.Is(err, errLoadStopped) {
				return
			}
			if err != nil {
				readErr = fmt.Errorf("cache: load: reading the runs: %w", err)
				halt()
				return
			}
			if !ok || !send(loadChunk{entries: entries, last: true}) {
				return
			}
		}
	}()
	for _, a := range appliers {
		go func() {
			defer wg.Done()
			defer close(a.out)
			a.run(stop, halt, freeChunks, freeBlocks)
		}()
	}
	go func() {
		defer wg.Done()
		// Partition g comes from applier g mod n; when that one has no more, none has.
		for g := 0; ; g++ {
			blk, ok := <-appliers[g%len(appliers)].out
			if !ok {
				break
			}
			if writeErr == nil {
				if writeErr = blk.each(tw.set); writeErr != nil {
					writeErr = fmt.Errorf("cache: load: writing a table: %w", writeErr)
					halt()
				}
			}
			blk.buf = blk.buf[:0]
			select {
			case freeBlocks <- blk:
			default:
			}
		}
		// An applier that stopped early may still hold rows for the writer: drained, so that
		// it can end.
		for _, a := range appliers {
			for range a.out {
			}
		}
	}()
	wg.Wait()
	errs := []error{ctx.Err(), readErr, writeErr}
	for _, a := range appliers {
		errs = append(errs, a.err)
	}
	if err := errors.Join(errs...); err != nil {
		return LoadResult{}, err
	}
	if err := l.ingest(ctx, tw, appliers); err != nil {
		return LoadResult{}, err
	}
	for _, a := range appliers {
		l.res.Applied += a.res.Applied
		l.res.Dropped += a.res.Dropped
	}
	return l.res, nil
}

// loadAppliers is how many goroutines apply partitions in Finish.
const loadAppliers = 2

// loadChunk is some of one user partition's entries, in order; last says they end it.
type loadChunk struct {
	entries []Entry
	last    bool
}

// loadChunkEntries is the most entries a chunk holds.
const loadChunkEntries = 1024

var errLoadStopped = errors.New("cache: load stopped")

// rowBlock is the rows of one user partition, in key order, on their way to the tables: each
// its key's and value's lengths, then both.
type rowBlock struct{ buf []byte }

func (b *rowBlock) add(k, v []byte) {
	b.buf = binary.AppendUvarint(b.buf, uint64(len(k)))
	b.buf = binary.AppendUvarint(b.buf, uint64(len(v)))
	b.buf = append(append(b.buf, k...), v...)
}

func (b *rowBlock) each(fn func(k, v []byte) error) error {
	for buf := b.buf; len(buf) > 0; {
		nk, n1 := binary.Uvarint(buf)
		nv, n2 := binary.Uvarint(buf[n1:])
		buf = buf[n1+n2:]
		if err := fn(buf[:nk], buf[nk:nk+nv]); err != nil {
			return err
		}
		buf = buf[nk+nv:]
	}
	return nil
}

// applier is one of Finish's appliers: it applies the chunks it receives with a txn of its
// own, which reads nothing (the store holds nothing of the partition), and sends the rows of
// each partition to the writer once its last chunk is applied.
type applier struct {
	l      *Loader
	tx     *txn
	sink   *loadSink
	onDrop func(Drop)
	in     chan loadChunk
	out    chan *rowBlock
	parts  map[tpPrefix]partRow // the rows of the partitions it wrote, for the writer's cache
	res    LoadResult
	err    error
}

func newApplier(l *Loader, onDrop func(Drop)) (*applier, error) {
	sink, err := newLoadSink(l.s)
	if err != nil {
		return nil, err
	}
	return &applier{
		l: l, sink: sink, onDrop: onDrop,
		tx: &txn{s: l.s, offsets: map[int32]int64{}, parts: map[tpPrefix]*ptx{}},
		in: make(chan loadChunk, 1), out: make(chan *rowBlock, 1), parts: map[tpPrefix]partRow{},
	}, nil
}

func (a *applier) run(stop <-chan struct{}, halt func(), freeChunks chan []Entry, freeBlocks chan *rowBlock) {
	for c := range a.in {
		if a.err != nil {
			continue // until the reader has stopped
		}
		select {
		case <-stop:
			continue
		default:
		}
		if a.err = a.apply(c.entries); a.err != nil {
			halt()
			continue
		}
		clear(c.entries)
		select {
		case freeChunks <- c.entries[:0]:
		default:
		}
		if !c.last {
			continue
		}
		var blk *rowBlock
		select {
		case blk = <-freeBlocks:
		default:
			blk = &rowBlock{}
		}
		if a.err = a.write(blk); a.err != nil {
			halt()
			continue
		}
		select {
		case a.out <- blk:
		case <-stop:
		}
	}
}

// apply applies entries of one user partition, in order.
func (a *applier) apply(entries []Entry) error {
	s := a.l.s
	return s.read(func() error {
		if a.l.replaced.Load() {
			return ErrLoadEnded
		}
		tx := a.tx
		tx.bulk = true
		for i := range entries {
			e := &entries[i]
			d, err := tx.apply(e)
			if err != nil {
				return fmt.Errorf("cache: load metadata partition %d offset %d: %w", e.Partition, e.Offset, err)
			}
			if d == nil {
				a.res.Applied++
				continue
			}
			a.res.Dropped++
			tx.drops = append(tx.drops, d)
			if ce := s.log.Check(zap.DebugLevel, "record dropped"); ce != nil {
				ce.Write(zap.Int32("metadata_partition", d.Partition), zap.Int64("offset", d.Offset),
					zap.Stringer("reason", d.Reason), zap.Error(d.Err))
			}
			if a.onDrop != nil {
				a.l.dropMu.Lock()
				a.onDrop(*d)
				a.l.dropMu.Unlock()
			}
		}
		return nil
	})
}

// write writes the rows the txn holds into blk (the dropped records and the tombstone to the
// sink), keeps the partition's row for the writer's cache, and empties the txn for the next
// partition.
func (a *applier) write(blk *rowBlock) error {
	return a.l.s.read(func() error {
		tx := a.tx
		defer tx.release()
		a.sink.block = blk
		if err := tx.write(a.sink); err != nil {
			return err
		}
		for p, pt := range tx.parts {
			if pt.row != nil {
				a.parts[p] = *pt.row
			} else {
				delete(a.parts, p)
			}
		}
		return nil
	})
}

// ingest writes the metadata partitions' next offsets and the tombstones into a table of their
// own, and ingests every table into the store at once.
func (l *Loader) ingest(ctx context.Context, tw *tableWriter, appliers []*applier) error {
	s := l.s
	var global []kv
	// Every metadata partition's: those Add did not move are written as the store has them.
	for mp := range l.next {
		global = append(global, kv{k: offsetKey(mp), v: encodeOffset(l.next[mp])})
	}
	for _, a := range appliers {
		global = append(global, a.sink.global...)
	}
	if err := tw.finish(global); err != nil {
		return err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.loader != l {
		return ErrLoadEnded // the store was replaced under the load
	}
	err := s.read(func() error {
		for _, a := range appliers {
			if err := a.sink.flushDrops(); err != nil {
				return err
			}
		}
		if len(tw.paths) == 0 {
			return nil
		}
		return s.db.Ingest(ctx, tw.paths)
	})
	if err != nil {
		return fmt.Errorf("cache: load: %w", err)
	}
	for _, a := range appliers {
		for p, row := range a.parts {
			s.parts[p] = row
		}
	}
	if s.lookups != nil {
		s.lookups.forgetAll()
	}
	s.gens.bump(nil)
	return nil
}

type kv struct{ k, v []byte }

// loadSink receives an applier's rows (txn.write): the rows of user partitions go into block,
// in key order, for the writer; the dropped-record rows are written to the store in batches;
// the others (tombstones) are kept for the table ingest writes last. Deletes are dropped: the
// store holds nothing of the partitions a load writes, so there is nothing for them to remove.
type loadSink struct {
	s      *Store
	block  *rowBlock
	global []kv
	drops  *pebble.Batch
}

func newLoadSink(s *Store) (*loadSink, error) {
	w := &loadSink{s: s}
	err := s.read(func() error {
		w.drops = s.db.NewBatch()
		return nil
	})
	return w, err
}

func (w *loadSink) Set(k, v []byte, _ *pebble.WriteOptions) error {
	switch k[0] {
	case tagPartition:
		w.block.add(k, v)
	case tagDropped:
		if err := w.drops.Set(k, v, nil); err != nil {
			return err
		}
		if w.drops.Len() >= loadDropBatch {
			return w.flushDrops()
		}
	default:
		w.global = append(w.global, kv{k: slices.Clone(k), v: slices.Clone(v)})
	}
	return nil
}

func (w *loadSink) Delete([]byte, *pebble.WriteOptions) error             { return nil }
func (w *loadSink) DeleteRange(_, _ []byte, _ *pebble.WriteOptions) error { return nil }

// flushDrops writes the dropped-record rows held so far. The caller is inside s.read.
func (w *loadSink) flushDrops() error {
	if w.drops.Empty() {
		return nil
	}
	err := w.drops.Commit(pebble.NoSync)
	w.drops.Reset()
	return err
}

func (w *loadSink) close() {
	if w.drops != nil {
		w.drops.Close()
		w.drops = nil
	}
}

// tableWriter writes rows, in key order, into tables of about loadTableBytes each.
type tableWriter struct {
	fs    vfs.FS
	dir   string
	wopts sstable.WriterOptions
	w     *sstable.Writer
	paths []string // tables written, in key order
}

func newTableWriter(l *Loader) (*tableWriter, error) {
	s := l.s
	po := pebbleOptions(s.opts, s.dmg.Load())
	po.EnsureDefaults()
	w := &tableWriter{fs: l.fs, dir: l.dir}
	err := s.read(func() error {
		w.wopts = po.MakeWriterOptions(len(po.Levels)-1, s.db.TableFormat())
		// As the store's own tables (see experimental): every referenced row's value in
		// place, none moved to value blocks, which the writer would also hold in memory
		// until the table ends.
		w.wopts.DisableValueBlocks = true
		return nil
	})
	return w, err
}

func (w *tableWriter) set(k, v []byte) error {
	if w.w != nil && w.w.Raw().EstimatedSize() >= loadTableBytes {
		if err := w.w.Close(); err != nil {
			return err
		}
		w.w = nil
	}
	if w.w == nil {
		name := w.fs.PathJoin(w.dir, fmt.Sprintf("table-%06d.sst", len(w.paths)))
		f, err := w.fs.Create(name, vfs.WriteCategoryUnspecified)
		if err != nil {
			return err
		}
		w.paths = append(w.paths, name)
		w.w = sstable.NewWriter(objstorageprovider.NewFileWritable(f), w.wopts)
	}
	return w.w.Set(k, v)
}

// finish closes the last table of rows and writes global (offsets and tombstones, which sort
// before every user partition's rows) into a table of its own.
func (w *tableWriter) finish(global []kv) error {
	if w.w != nil {
		err := w.w.Close()
		w.w = nil
		if err != nil {
			return err
		}
	}
	if len(global) == 0 {
		return nil
	}
	slices.SortFunc(global, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
	name := w.fs.PathJoin(w.dir, "table-global.sst")
	f, err := w.fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	t := sstable.NewWriter(objstorageprovider.NewFileWritable(f), w.wopts)
	for _, r := range global {
		if err := t.Set(r.k, r.v); err != nil {
			t.Close()
			return err
		}
	}
	if err := t.Close(); err != nil {
		return err
	}
	w.paths = append(w.paths, name)
	return nil
}

// abandon closes a table finish did not.
func (w *tableWriter) abandon() {
	if w.w != nil {
		w.w.Close()
		w.w = nil
	}
}

// runReadBuffer is the read buffer of each run while Finish merges them: the runs number about
// a 4 MiB run for each 4 MiB of records added (250 for 10M records of the benchmark's).
const runReadBuffer = 16 << 10

// runMerger reads the runs as one sequence of groups, one per user partition in key order, each
// holding the partition's entries of every run, run by run: the order they were added in.
type runMerger struct {
	runs []*runFile
	buf  []byte
	dec  proto.Decoder
}

type runFile struct {
	f    vfs.File
	r    *bufio.Reader
	name string
	ok   bool     // a group is at the head
	tp   tpPrefix // the head group's partition
	left uint64   // its entries not yet read
}

func newRunMerger(fs vfs.FS, names []string) (*runMerger, error) {
	m := &runMerger{}
	for _, name := range names {
		f, err := fs.Open(name)
		if err != nil {
			m.close()
			return nil, err
		}
		rr := &runFile{f: f, r: bufio.NewReaderSize(f, runReadBuffer), name: name}
		m.runs = append(m.runs, rr)
		if err := rr.head(); err != nil {
			m.close()
			return nil, err
		}
	}
	return m, nil
}

// head reads the header of the next group.
func (rr *runFile) head() error {
	if _, err := io.ReadFull(rr.r, rr.tp[:]); err != nil {
		if errors.Is(err, io.EOF) {
			rr.ok = false
			return nil
		}
		return fmt.Errorf("%s: %w", rr.name, err)
	}
	n, err := binary.ReadUvarint(rr.r)
	if err != nil {
		return fmt.Errorf("%s: %w", rr.name, noEOF(err))
	}
	rr.ok, rr.left = true, n
	return nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// group calls fn with each entry of the next group; false when every run is read. The record passed to fn is valid until the next call of group.
func (m *runMerger) group(fn func(mp int32, offset int64, rec []byte, odd bool) error) (bool, error) {
	var lo *runFile
	for _, rr := range m.runs {
		if rr.ok && (lo == nil || bytes.Compare(rr.tp[:], lo.tp[:]) < 0) {
			lo = rr
		}
	}
	if lo == nil {
		return false, nil
	}
	p := lo.tp
	m.buf = m.buf[:0]
	type at struct {
		mp       int32
		offset   int64
		from, to int
		odd      bool
	}
	var ats []at
	for _, rr := range m.runs {
		if !rr.ok || rr.tp != p {
			continue
		}
		for ; rr.left > 0; rr.left-- {
			var h [16]byte
			if _, err := io.ReadFull(rr.r, h[:]); err != nil {
				return false, fmt.Errorf("%s: %w", rr.name, noEOF(err))
			}
			size, odd := binary.BigEndian.Uint32(h[12:]), false
			if size == oddRecord {
				size, odd = 4, true
			}
			n := int(size)
			from := len(m.buf)
			m.buf = slices.Grow(m.buf, n)[:from+n]
			if _, err := io.ReadFull(rr.r, m.buf[from:]); err != nil {
				return false, fmt.Errorf("%s: %w", rr.name, noEOF(err))
			}
			ats = append(ats, at{int32(binary.BigEndian.Uint32(h[:4])), int64(binary.BigEndian.Uint64(h[4:12])), from, from + n, odd})
		}
		if err := rr.head(); err != nil {
			return false, err
		}
	}
	// Records are decoded only once the group is read: m.buf may move while it grows.
	for _, a := range ats {
		if err := fn(a.mp, a.offset, m.buf[a.from:a.to], a.odd); err != nil {
			return false, err
		}
	}
	return true, nil
}

func (m *runMerger) close() {
	for _, rr := range m.runs {
		rr.f.Close()
	}
	m.runs = nil
}
