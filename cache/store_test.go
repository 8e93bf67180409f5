package cache

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"

	"github.com/stratalog/strata/proto"
)

func TestRedeliveryIsNoOp(t *testing.T) {
	s, _ := openMem(t)
	tp := testTP(0)
	entries := []Entry{
		{Partition: 0, Offset: 0, Record: add(segID(tp, 1), 0, 99, 0, 0)},
		{Partition: 1, Offset: 5, Record: add(segID(testTP(1), 1), 0, 99, 0, 0)},
		{Partition: 0, Offset: 1, Record: update(segID(tp, 1), proto.CopySegmentFinished)},
		{Partition: 0, Offset: 4, Record: update(segID(tp, 1), proto.DeleteSegmentStarted)},
	}
	res, err := s.Apply(entries)
	if err != nil || res.Applied != 4 || res.Duplicates != 0 || len(res.Dropped) != 0 {
		t.Fatalf("Apply = %+v, %v; want 4 applied", res, err)
	}
	before := dump(t, s)
	res, err = s.Apply(entries)
	if err != nil || res.Applied != 0 || res.Duplicates != 4 {
		t.Fatalf("re-delivery = %+v, %v; want 4 duplicates", res, err)
	}
	// Within one call too: an entry at or below an earlier one of its partition is a duplicate.
	res, err = s.Apply([]Entry{
		{Partition: 0, Offset: 5, Record: update(segID(tp, 1), proto.DeleteSegmentFinished)},
		{Partition: 0, Offset: 5, Record: update(segID(tp, 1), proto.DeleteSegmentFinished)},
	})
	if err != nil || res.Applied != 1 || res.Duplicates != 1 {
		t.Fatalf("Apply with a repeated offset = %+v, %v; want 1 applied, 1 duplicate", res, err)
	}
	if dump(t, s) == before {
		t.Fatal("the new offset changed nothing")
	}
	offsets, err := s.Offsets()
	if err != nil || !reflect.DeepEqual(offsets, map[int32]int64{0: 6, 1: 6}) {
		t.Fatalf("Offsets = %v, %v; want 0:6 1:6", offsets, err)
	}
	if next, err := s.NextOffset(7); next != 0 || err != nil {
		t.Fatalf("NextOffset of an unseen partition = %d, %v", next, err)
	}
}

func TestApplyRejectsInvalidEntries(t *testing.T) {
	s, _ := openMem(t)
	tp := testTP(0)
	f := newFeed(t, s, 0)
	f.applyOK(add(segID(tp, 1), 0, 9, 0, 0))
	before := dump(t, s)
	for name, e := range map[string]Entry{
		"negative offset":    {Partition: 0, Offset: -1, Record: update(segID(tp, 1), proto.CopySegmentFinished)},
		"negative partition": {Partition: -1, Offset: 9, Record: update(segID(tp, 1), proto.CopySegmentFinished)},
		"nil record":         {Partition: 0, Offset: 9},
		"typed nil record":   {Partition: 0, Offset: 9, Record: (*proto.SegmentMetadataUpdate)(nil)},
	} {
		// The valid entry before it must not be written either.
		_, err := s.Apply([]Entry{{Partition: 0, Offset: 8, Record: update(segID(tp, 1), proto.CopySegmentFinished)}, e})
		if !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("%s: %v, want ErrInvalidEntry", name, err)
		}
	}
	if after := dump(t, s); after != before {
		t.Fatalf("a rejected Apply wrote:\n%s\n---\n%s", before, after)
	}
}

func TestDropsAreListedAndAdvance(t *testing.T) {
	s, _ := openMem(t)
	tp := testTP(0)
	f := newFeed(t, s, 3)
	f.applyOK(add(segID(tp, 1), 0, 9, 0, 0))

	d := f.applyDropped(update(segID(tp, 2), proto.CopySegmentFinished))
	if d.Reason != UnknownSegment || d.UserPartition != tp || d.Partition != 3 || d.Offset != 1 ||
		!errors.Is(d.Err, ErrUnknownSegment) || !strings.Contains(d.Err.Error(), "offset 1") {
		t.Errorf("unknown segment: %+v", d)
	}
	d = f.applyDropped(update(segID(testTP(5), 2), proto.CopySegmentFinished))
	if d.Reason != UnknownSegment {
		t.Errorf("update in an unknown partition dropped as %s", d.Reason)
	}
	d = f.applyDropped(&proto.SegmentMetadataSnapshot{SegmentUUID: proto.UUID{1}})
	if d.Reason != UnsupportedRecord || d.UserPartition != (proto.TopicIDPartition{}) {
		t.Errorf("snapshot: %+v", d)
	}
	d = f.applyDropped(update(segID(tp, 1), proto.DeleteSegmentFinished))
	if d.Reason != InvalidTransition || !strings.Contains(d.Err.Error(), "COPY_SEGMENT_STARTED -> DELETE_SEGMENT_FINISHED") {
		t.Errorf("invalid transition: %+v", d)
	}
	// The same user partition from another metadata partition, or under another name.
	other := newFeed(t, s, 4)
	if d := other.applyDropped(update(segID(tp, 1), proto.CopySegmentFinished)); d.Reason != PartitionMismatch {
		t.Errorf("record from metadata partition 4: dropped as %s", d.Reason)
	}
	renamed := segID(tp, 3)
	renamed.Topic = "bar"
	if d := f.applyDropped(add(renamed, 10, 19, 0, 10)); d.Reason != PartitionMismatch {
		t.Errorf("record naming topic bar: dropped as %s", d.Reason)
	}
	if next, _ := s.NextOffset(3); next != f.next {
		t.Errorf("NextOffset = %d, want %d: drops advance the offset", next, f.next)
	}
	segs, _ := s.Segments(tp)
	if len(segs) != 1 || segs[0].State != proto.CopySegmentStarted {
		t.Errorf("Segments = %+v; the drops changed it", segs)
	}
	mustCheck(t, s)
}

func TestSkip(t *testing.T) {
	s, _ := openMem(t)
	f := newFeed(t, s, 2)
	f.applyOK(add(segID(testTP(0), 1), 0, 9, 0, 0))
	if err := s.Skip(2, 0, "again"); !errors.Is(err, ErrOffsetApplied) {
		t.Fatalf("Skip of an applied offset: %v, want ErrOffsetApplied", err)
	}
	if err := s.Skip(2, 1, "undecodable: unknown apiKey 9"); err != nil {
		t.Fatal(err)
	}
	if err := s.Skip(2, 5, "operator"); err != nil {
		t.Fatal(err)
	}
	if next, _ := s.NextOffset(2); next != 6 {
		t.Fatalf("NextOffset after skips = %d, want 6", next)
	}
	skipped, err := s.Skipped()
	if err != nil || len(skipped) != 2 || skipped[0].Offset != 1 || skipped[1].Offset != 5 ||
		skipped[0].Partition != 2 || skipped[0].Reason != "undecodable: unknown apiKey 9" || skipped[0].At.IsZero() {
		t.Fatalf("Skipped = %+v, %v", skipped, err)
	}
	// The skipped offset is applied no more.
	res, _ := s.Apply([]Entry{{Partition: 2, Offset: 5, Record: update(segID(testTP(0), 1), proto.CopySegmentFinished)}})
	if res.Duplicates != 1 {
		t.Fatalf("Apply at a skipped offset = %+v, want a duplicate", res)
	}
	mustCheck(t, s)
}

func TestResetPartition(t *testing.T) {
	s, _ := openMem(t)
	a, b := newFeed(t, s, 0), newFeed(t, s, 1)
	a.applyOK(copied(segID(testTP(0), 1), 0, 9, 0, 0)...)
	a.applyOK(partDelete(testTP(2), proto.DeletePartitionMarked))
	b.applyOK(copied(segID(testTP(1), 1), 0, 9, 0, 0)...)
	if err := s.ResetPartition(0, 1000); err != nil {
		t.Fatal(err)
	}
	for _, tp := range []proto.TopicIDPartition{testTP(0), testTP(2)} {
		if _, err := s.Segments(tp); !errors.Is(err, ErrNotFound) {
			t.Errorf("Segments(%s) after reset: %v, want ErrNotFound", tp, err)
		}
	}
	wantSegmentFor(t, s, testTP(1), 0, 5, 1)
	offsets, _ := s.Offsets()
	if !reflect.DeepEqual(offsets, map[int32]int64{0: 1000, 1: 2}) {
		t.Errorf("Offsets after reset = %v", offsets)
	}
	mustCheck(t, s)
}

func TestReopenAndClose(t *testing.T) {
	s, fs := openMem(t)
	f := newFeed(t, s, 0)
	f.applyOK(copied(segID(testTP(0), 1), 0, 9, 0, 0)...)
	before := dump(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
	if _, err := s.Segments(testTP(0)); !errors.Is(err, ErrClosed) {
		t.Errorf("query after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Apply([]Entry{{Partition: 0, Offset: 9, Record: partDelete(testTP(0), 0)}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Close: %v, want ErrClosed", err)
	}
	s = openOn(t, fs)
	if after := dump(t, s); after != before {
		t.Fatalf("reopened:\n%s\nwant\n%s", after, before)
	}
}

func TestOpenRefusesOtherFormats(t *testing.T) {
	fs := vfs.NewMem()
	write := func(dir string, cmp *pebble.Comparer, format byte) {
		t.Helper()
		db, err := pebble.Open(dir, &pebble.Options{FS: fs, Comparer: cmp, Logger: pebbleLogger{l: zap.NewNop().Sugar(), d: &damage{log: zap.NewNop()}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Set(formatKey0, []byte{format}, pebble.Sync); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// A store of the first key layout: Pebble's own comparer, format 1.
	write("v1", pebble.DefaultComparer, 1)
	if _, err := Open("v1", WithFS(fs)); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "remove the directory") {
		t.Fatalf("Open of a store under Pebble's default comparer: %v, want ErrFormat", err)
	}
	write("next", comparer, storeFormat+1)
	if _, err := Open("next", WithFS(fs)); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "remove the directory") {
		t.Fatalf("Open of format %d: %v, want ErrFormat", storeFormat+1, err)
	}
	if _, err := Open("other", WithFS(fs), WithBlockCacheSize(0)); err == nil {
		t.Fatal("Open with a zero block cache succeeded")
	}
}

// TestCheckFindsCorruption breaks the rows of a healthy store one way at a time and expects
// Check to name the broken row.
func TestCheckFindsCorruption(t *testing.T) {
	tp := testTP(0)
	p := prefixOf(tp)
	id := func(n byte) proto.UUID { return segID(tp, n).ID }
	for _, c := range []struct {
		name    string
		corrupt func(b *pebble.Batch)
		want    string // in the error
	}{
		{"counts", func(b *pebble.Batch) {
			b.Set(p.partitionKey(), encodePart(nil, &partRow{name: "foo", counts: [3]int64{0, 1, 0}, bytes: 1024}), nil)
		}, "partition " + p.String()},
		{"unreferenced row lost", func(b *pebble.Batch) { b.Delete(p.unrefKey(0, id(2)), nil) }, "segment " + p.String()},
		{"referenced row lost", func(b *pebble.Batch) { b.Delete(p.refKey(0, 0), nil) }, "greatest referenced start offset 0, but nothing is referenced there"},
		{"referenced row names a copying segment", func(b *pebble.Batch) {
			m := add(segID(tp, 2), 10, 19, 0, 10)
			b.Set(p.refKey(0, 10), encodeRef(nil, m), nil)
		}, "COPY_SEGMENT_STARTED"},
		{"referenced copy differs", func(b *pebble.Batch) {
			m := add(segID(tp, 1), 0, 9, 0, 0)
			m.State, m.BrokerID = proto.CopySegmentFinished, 42
			b.Set(p.refKey(0, 0), encodeRef(nil, m), nil)
		}, "differs from the segment's row"},
		{"segment lost", func(b *pebble.Batch) { b.Delete(p.segmentKey(id(2)), nil) }, "unreferenced " + p.String()},
		{"highest offset lowered", func(b *pebble.Batch) {
			row := partRow{name: "foo", counts: [3]int64{1, 1, 0}, bytes: 2048,
				hasCur: true, curRow: epochRow{hasHighest: true, highest: 5, hasLast: true}}
			b.Set(p.partitionKey(), encodePart(nil, &row), nil)
		}, "highest offset is 5"},
		{"epoch row of the current epoch", func(b *pebble.Batch) {
			b.Set(p.epochKey(0), encodeEpoch(nil, &epochRow{hasHighest: true, highest: 9, hasLast: true}), nil)
		}, "an epoch row, but the partition row's current epoch is 0"},
		{"value version", func(b *pebble.Batch) { b.Set(p.segmentKey(id(1)), []byte{9}, nil) }, "value version 9"},
		{"stray key", func(b *pebble.Batch) { b.Set([]byte{0x7f, 1}, nil, nil) }, "unknown key tag"},
		{"partition row lost", func(b *pebble.Batch) { b.Delete(p.partitionKey(), nil) }, "no partition row precedes it"},
		{"format row lost", func(b *pebble.Batch) { b.Delete(formatKey0, nil) }, "format: missing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, _ := openMem(t)
			f := newFeed(t, s, 0)
			f.applyOK(copied(segID(tp, 1), 0, 9, 0, 0)...)
			f.applyOK(add(segID(tp, 2), 10, 19, 0, 10))
			mustCheck(t, s)
			b := s.db.NewBatch()
			c.corrupt(b)
			if err := b.Commit(pebble.Sync); err != nil {
				t.Fatal(err)
			}
			err := s.Check()
			var ce *CorruptError
			if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Check = %v; want a CorruptError mentioning %q", err, c.want)
			}
		})
	}
}

func TestValueEncoding(t *testing.T) {
	segs := []proto.SegmentMetadata{
		{StartOffset: 0, EndOffset: 0, LeaderEpochs: []proto.EpochEntry{{Epoch: 0, StartOffset: 0}}, CustomMetadata: nil},
		{StartOffset: 5, EndOffset: math.MaxInt64, BrokerID: -1, MaxTimestampMs: -1, EventTimestampMs: math.MinInt64,
			SegmentSizeInBytes: math.MaxInt32, LeaderEpochs: []proto.EpochEntry{{Epoch: -3, StartOffset: -9}, {Epoch: math.MaxInt32, StartOffset: math.MaxInt64}},
			CustomMetadata: []byte{}, State: proto.DeleteSegmentStarted, TxnIndexEmpty: true},
		{StartOffset: 100, EndOffset: 200, LeaderEpochs: []proto.EpochEntry{{Epoch: 1, StartOffset: 100}}, CustomMetadata: []byte("abc"), State: proto.CopySegmentFinished},
	}
	for i, m := range segs {
		m.SegmentID = segID(testTP(int32(i)), byte(i))
		m.SegmentID.Topic = []string{"", "foo", "ünïcode"}[i]
		p := prefixOf(m.SegmentID.TopicIDPartition)
		enc := encodeSegment(nil, &m)
		got, err := decodeSegment(enc, p, m.SegmentID.ID)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Errorf("segment round trip: %+v, %v; want %+v", got, err, m)
		}
		ref := encodeRef(nil, &m)
		if got, err := decodeRef(ref, p); err != nil || !reflect.DeepEqual(got, m) {
			t.Errorf("referenced row round trip: %+v, %v; want %+v", got, err, m)
		}
		for n := 0; n < len(enc); n++ {
			if _, err := decodeSegment(enc[:n], p, m.SegmentID.ID); err == nil {
				t.Errorf("segment value cut to %d of %d bytes decoded", n, len(enc))
			}
		}
		if _, err := decodeSegment(append(enc, 0), p, m.SegmentID.ID); err == nil {
			t.Errorf("segment value with a trailing byte decoded")
		}
	}
	parts := []partRow{{}, {name: "topic-with-ünïcode", mp: 49, hasDelete: true, delState: proto.DeletePartitionStarted, counts: [3]int64{1, 1 << 40, 3}, bytes: -5}}
	for _, row := range parts {
		got, err := decodePart(encodePart(nil, &row))
		if err != nil || got != row {
			t.Errorf("partition round trip: %+v, %v; want %+v", got, err, row)
		}
	}
	for _, row := range []epochRow{{}, {hasHighest: true, highest: -1}, {hasHighest: true, highest: 7, hasLast: true, last: math.MinInt64}} {
		got, err := decodeEpoch(encodeEpoch(nil, &row))
		if err != nil || got != row {
			t.Errorf("epoch round trip: %+v, %v; want %+v", got, err, row)
		}
	}
}

// Keys order as their numbers do, negative ones included, referenced rows' start offsets
// descending: floor lookups and epoch ranges rely on it.
func TestKeyOrder(t *testing.T) {
	p := prefixOf(testTP(0))
	values := []int64{math.MaxInt64, 1 << 40, 2, 1, 0, -1, -2, -1 << 40, math.MinInt64}
	type ref struct {
		epoch int32
		start int64
	}
	var keys [][]byte
	var want []ref
	for _, epoch := range []int32{math.MinInt32, -1, 0, 1, math.MaxInt32} {
		for _, v := range values {
			keys = append(keys, p.refKey(epoch, v))
			want = append(want, ref{epoch, v})
		}
	}
	if !slices.IsSortedFunc(keys, bytes.Compare) {
		t.Fatal("referenced keys do not sort by epoch, then start offset descending")
	}
	for i, k := range keys {
		pk, err := parseKey(k)
		if err != nil || pk.prefix != p || pk.kind != kindRef || (ref{pk.epoch, pk.offset}) != want[i] {
			t.Fatalf("parseKey(%x) = %+v, %v; want %+v", k, pk, err, want[i])
		}
		if n := comparer.Split(k); n != refPrefixLen || !bytes.Equal(k[:n], p.refEpoch(want[i].epoch)) {
			t.Fatalf("Split(%s) = %d, want the %d bytes up to the epoch", formatKey(k), n, refPrefixLen)
		}
	}
	neg, pos := prefixOf(testTP(-1)), prefixOf(testTP(0))
	if bytes.Compare(neg[:], pos[:]) >= 0 || neg.partition() != -1 {
		t.Fatal("partition -1 does not sort before partition 0")
	}
	if successor([]byte{1, 0xff}) == nil || !bytes.Equal(successor([]byte{1, 0xff}), []byte{2}) || successor([]byte{0xff}) != nil {
		t.Fatal("successor")
	}
}

// TestQueriesDuringApply runs readers while the writer applies; each Apply adds and finishes
// whole groups of segments and deletes whole groups, so a reader that ever sees a segment
// not COPY_SEGMENT_FINISHED, or a count that is not a multiple of the group, has seen part of
// an Apply.
func TestQueriesDuringApply(t *testing.T) {
	s, _ := openMem(t)
	const group, size = 5, 100
	tps := []proto.TopicIDPartition{testTP(0), testTP(1), testTP(2)}
	steps := 200
	if raceEnabled || testing.Short() {
		steps = 60
	}
	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				infos, err := s.Partitions()
				if err != nil {
					report(err)
					return
				}
				for _, in := range infos {
					c := in.Segments
					if c.CopyStarted != 0 || c.DeleteStarted != 0 || c.CopyFinished%group != 0 || in.Bytes != c.CopyFinished*size {
						report(fmt.Errorf("Partitions saw part of an Apply: %+v", in))
						return
					}
				}
				for _, tp := range tps {
					segs, err := s.Segments(tp)
					if errors.Is(err, ErrNotFound) {
						continue
					}
					if err != nil {
						report(err)
						return
					}
					for _, m := range segs {
						if m.State != proto.CopySegmentFinished {
							report(fmt.Errorf("Segments saw a segment in %s", m.State))
							return
						}
						if got, ok, err := s.SegmentFor(tp, 0, m.StartOffset); err == nil && ok && got.State != proto.CopySegmentFinished {
							report(fmt.Errorf("SegmentFor returned a segment in %s", got.State))
							return
						}
					}
				}
			}
		}()
	}
	var offset int64
	for step := 0; step < steps; step++ {
		var entries []Entry
		push := func(r proto.Record) {
			entries = append(entries, Entry{Partition: 0, Offset: offset, Record: r})
			offset++
		}
		for i, tp := range tps {
			base := int64(step * group)
			for j := int64(0); j < group; j++ {
				id := proto.SegmentID{TopicIDPartition: tp, ID: proto.UUID{0: byte(i), 1: byte(step >> 8), 2: byte(step), 3: byte(j)}}
				m := add(id, (base+j)*10, (base+j)*10+9, 0, (base+j)*10)
				m.SegmentSizeInBytes = size
				push(m)
				push(update(id, proto.CopySegmentFinished))
				if step%3 == 2 { // delete the group of two steps ago
					old := proto.SegmentID{TopicIDPartition: tp, ID: proto.UUID{0: byte(i), 1: byte((step - 2) >> 8), 2: byte(step - 2), 3: byte(j)}}
					push(update(old, proto.DeleteSegmentStarted))
					push(update(old, proto.DeleteSegmentFinished))
				}
			}
		}
		if res, err := s.Apply(entries); err != nil || len(res.Dropped) != 0 {
			t.Fatalf("step %d: %+v, %v", step, res, err)
		}
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	mustCheck(t, s)
}

// The comparer keeps Pebble's rules for a Split over every kind of key the store writes, and
// the separators and successors it makes for index blocks stay within them.
func TestComparer(t *testing.T) {
	p := prefixOf(testTP(3))
	var id proto.UUID
	id[0], id[15] = 0x7f, 0xff
	q := prefixOf(testTP(4))
	suffixes := [][]byte{
		p.refKey(4, math.MaxInt64)[refPrefixLen:], p.refKey(4, 7)[refPrefixLen:],
		p.refKey(4, 0)[refPrefixLen:], p.refKey(4, math.MinInt64)[refPrefixLen:],
	}
	// Every key but a referenced row's is its own prefix. Over any two keys, comparing them must
	// agree with comparing their prefixes, then their suffixes (Pebble's rules for a Split).
	keys := [][]byte{
		formatKey0, offsetKey(0), skippedKey(1, 2), p[:], p.partitionKey(), p.segmentKey(id), p.epochKey(4),
		p.refEpoch(4), p.unrefKey(4, id), p.upper(), q.partitionKey(), q.refEpoch(4), successor(p.refEpoch(4)),
		comparer.ImmediateSuccessor(nil, p.refEpoch(4)),
	}
	for _, k := range keys {
		if comparer.Split(k) != len(k) {
			t.Errorf("Split(%s) = %d, want the whole key", formatKey(k), comparer.Split(k))
		}
	}
	for _, e := range []int32{-1, 4, 5} {
		for _, s := range suffixes {
			keys = append(keys, append(p.refEpoch(e), s...), append(q.refEpoch(e), s...))
		}
	}
	for _, a := range keys {
		for _, b := range keys {
			ap, bp := comparer.Split(a), comparer.Split(b)
			want := bytes.Compare(a[:ap], b[:bp])
			if want == 0 {
				want = bytes.Compare(a[ap:], b[bp:])
			}
			if got := comparer.Compare(a, b); got != want {
				t.Fatalf("Compare(%x, %x) = %d, but by prefix then suffix %d", a, b, got, want)
			}
		}
	}
	for _, n := range []int{refPrefixLen - 1, refPrefixLen, refPrefixLen + 1, refKeyLen - 1, refKeyLen, refKeyLen + 1} {
		k := append(p.refKey(4, 0x0102030405), 0)[:n]
		if splitSafe(k) != (n <= refPrefixLen || n == refKeyLen) {
			t.Errorf("splitSafe of a referenced key cut to %d bytes = %t", n, splitSafe(k))
		}
	}
	// The prefix after an epoch's is above every row of the epoch and below the next epoch's;
	// after any other key, the key and a zero byte.
	for _, e := range []int32{-1, 4} {
		next := comparer.ImmediateSuccessor(nil, p.refEpoch(e))
		if comparer.Split(next) != len(next) || bytes.Compare(next, p.refKey(e, math.MinInt64)) <= 0 || bytes.Compare(next, p.refEpoch(e+1)) >= 0 {
			t.Errorf("ImmediateSuccessor(epoch %d's prefix) = %x", e, next)
		}
	}
	if next := comparer.ImmediateSuccessor(nil, p.partitionKey()); !bytes.Equal(next, append(p.partitionKey(), 0)) {
		t.Errorf("ImmediateSuccessor(partition key) = %x", next)
	}
	a, b := p.refKey(4, 900), p.refKey(4, 100)
	for _, k := range [][]byte{comparer.Separator(nil, a, b), comparer.Successor(nil, a)} {
		if !splitSafe(k) || bytes.Compare(k, a) < 0 {
			t.Errorf("index key %x for %x: unsafe or below it", k, a)
		}
	}
}

// The writer's txn is reused from Apply to Apply, and keeps nothing of an Apply's records after
// it, whether the Apply committed or failed: no partition, no slot still filled.
func TestApplyKeepsNoRecords(t *testing.T) {
	s, _ := openMem(t)
	tp := testTP(0)
	var entries []Entry
	for i, r := range append(copied(segID(tp, 1), 0, 9, 0, 0), add(segID(tp, 2), 10, 19, 0, 10)) {
		entries = append(entries, Entry{Partition: 0, Offset: int64(i), Record: r})
	}
	if _, err := s.Apply(entries); err != nil {
		t.Fatal(err)
	}
	empty := func(when string) {
		t.Helper()
		tx := s.tx
		if len(tx.parts) != 0 || len(tx.offsets) != 0 || tx.metas.n != 0 || tx.segSlots.n != 0 {
			t.Fatalf("%s: the txn still holds %d partitions, %d offsets, %d segments", when, len(tx.parts), len(tx.offsets), tx.metas.n)
		}
		for _, c := range tx.metas.chunks {
			for i := range c {
				if !reflect.ValueOf(c[i]).IsZero() {
					t.Fatalf("%s: a metadata slot still holds segment %s", when, c[i].SegmentID)
				}
			}
		}
		for _, pt := range tx.spare {
			if len(pt.segs)+len(pt.epochs)+len(pt.refs)+len(pt.unrefs) != 0 || pt.row != nil {
				t.Fatalf("%s: a spare partition still holds slots", when)
			}
		}
	}
	empty("after a commit")
	if len(s.tx.spare) == 0 {
		t.Fatal("no partition kept for reuse")
	}
	// A segment row that does not decode makes the next Apply fail after it filled slots.
	p := prefixOf(tp)
	if err := s.db.Set(p.segmentKey(segID(tp, 3).ID), []byte{valueVersion, 0xff}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	_, err := s.Apply([]Entry{
		{Partition: 0, Offset: 3, Record: update(segID(tp, 2), proto.CopySegmentFinished)},
		{Partition: 0, Offset: 4, Record: update(segID(tp, 3), proto.CopySegmentFinished)},
	})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Apply over a corrupt segment row: %v, want ErrCorrupt", err)
	}
	empty("after a failed Apply")
	// The failed Apply changed nothing, and the next one starts clean.
	if _, err := s.Apply([]Entry{{Partition: 0, Offset: 3, Record: update(segID(tp, 2), proto.CopySegmentFinished)}}); err != nil {
		t.Fatal(err)
	}
	if m, ok, err := s.SegmentFor(tp, 0, 15); err != nil || !ok || m.SegmentID != segID(tp, 2) {
		t.Fatalf("SegmentFor after the retry = %v, %t, %v", m.SegmentID, ok, err)
	}
}

// A new store is created in the Pebble format the store pins, not in whatever Pebble's newest is:
// when a Pebble upgrade brings a newer format this test fails, so that moving to it (and giving
// up opening the store with the earlier Pebble) is a decision, not a side effect.
func TestPebbleFormatPinned(t *testing.T) {
	s, fs := openMem(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	desc, err := pebble.Peek("db", fs)
	if err != nil || !desc.Exists {
		t.Fatalf("Peek: %+v, %v", desc, err)
	}
	if desc.FormatMajorVersion != pebble.FormatValueSeparation {
		t.Errorf("new store in Pebble format %s, want %s", desc.FormatMajorVersion, pebble.FormatValueSeparation)
	}
	if pebble.FormatNewest != pebbleFormat {
		t.Errorf("Pebble's newest format is %s, the store pins %s: decide whether to move to it (stores written in it cannot be opened by this Pebble's predecessors)",
			pebble.FormatNewest, pebbleFormat)
	}
}

// TestMemTableSize checks that WithMemTableSize reaches Pebble, with room for two memtables in
// its cache on top of the blocks, and that sizes Pebble cannot use are refused.
func TestMemTableSize(t *testing.T) {
	o, err := buildOptions([]Option{WithMemTableSize(4 << 20), WithBlockCacheSize(1 << 20)})
	if err != nil {
		t.Fatal(err)
	}
	po := pebbleOptions(o, &damage{log: o.log})
	if po.MemTableSize != 4<<20 || po.CacheSize != 1<<20+2*(4<<20) {
		t.Fatalf("memtables of %d bytes, cache of %d; want 4 MiB and 9 MiB", po.MemTableSize, po.CacheSize)
	}
	if o, _ := buildOptions(nil); o.memTableSize != DefaultMemTableSize {
		t.Fatalf("default memtable size %d, want %d", o.memTableSize, DefaultMemTableSize)
	}
	for _, n := range []int64{0, 1<<20 - 1, 4 << 30} {
		if _, err := Open("db", WithFS(vfs.NewMem()), WithMemTableSize(n)); err == nil || !strings.Contains(err.Error(), "memtable size") {
			t.Fatalf("Open with memtables of %d bytes: %v, want an error naming the memtable size", n, err)
		}
	}
	s, err := Open("db", WithFS(vfs.NewMem()), WithMemTableSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestL0Compaction checks the L0 settings reach Pebble, and that Pebble keeps them as it fills
// in its defaults: a cold load's CPU depends on them (see l0CompactionThreshold).
func TestL0Compaction(t *testing.T) {
	o, err := buildOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	po := pebbleOptions(o, &damage{log: o.log})
	po.EnsureDefaults()
	if po.L0CompactionThreshold != 16 || po.L0StopWritesThreshold != 64 {
		t.Fatalf("L0 compaction at %d sublevels, writes stop at %d; want 16 and 64", po.L0CompactionThreshold, po.L0StopWritesThreshold)
	}
	if po.TargetFileSizes[0] != 8<<20 || po.TargetFileSizes[1] != 16<<20 {
		t.Fatalf("target file sizes %d, %d; want 8 MiB in L0, doubling below", po.TargetFileSizes[0], po.TargetFileSizes[1])
	}
}
