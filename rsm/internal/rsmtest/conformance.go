package rsmtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rsm"
)

// Harness opens a fresh, empty manager for one test; the manager is closed by the test.
// Scratch is a directory for the segment files the test writes.
type Harness struct {
	Open func(t *testing.T) rsm.Manager
	// LogSize is the size of the logs the suite copies; implementations that switch strategy
	// at a size (multipart uploads) run the suite on both sides of it.
	LogSize int64
}

// Run runs the contract of rsm.Manager against h.
func Run(t *testing.T, h Harness) {
	if h.LogSize == 0 {
		h.LogSize = 64 << 10
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"CopyFetch", testCopyFetch},
		{"FetchLogRanges", testFetchLogRanges},
		{"FetchMissing", testFetchMissing},
		{"DeleteIdempotent", testDeleteIdempotent},
		{"DeleteBatch", testDeleteBatch},
		{"RecopyReplaces", testRecopyReplaces},
		{"List", testList},
		{"InvalidArguments", testInvalidArguments},
		{"Concurrent", testConcurrent},
		{"CanceledContext", testCanceledContext},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

func open(t *testing.T, h Harness) rsm.Manager {
	t.Helper()
	m := h.Open(t)
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

// ReadAll reads a stream to its end and closes it; any error fails the test.
func ReadAll(t testing.TB, rc io.ReadCloser, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	b, rerr := io.ReadAll(rc)
	cerr := rc.Close()
	if rerr != nil {
		t.Fatalf("reading the fetched stream: %v", rerr)
	}
	if cerr != nil {
		t.Fatalf("closing the fetched stream: %v", cerr)
	}
	return b
}

// Copy copies s into m and fails the test on error.
func Copy(t testing.TB, m rsm.Manager, s *Segment) {
	t.Helper()
	custom, err := m.Copy(context.Background(), s.Meta, s.Data)
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if custom != nil {
		t.Fatalf("Copy returned custom metadata %x, want none", custom)
	}
}

// CheckStored fetches the log and every index of s from m and compares them with what was
// written.
func CheckStored(t testing.TB, m rsm.Manager, s *Segment) {
	t.Helper()
	ctx := context.Background()
	rc, err := m.FetchLog(ctx, s.Meta, 0, rsm.EndOfLog)
	log := ReadAll(t, rc, err)
	if !bytes.Equal(log, s.Log(t)) {
		t.Fatalf("fetched log: %d bytes differing from the %d copied", len(log), len(s.Log(t)))
	}
	for _, it := range rsm.IndexTypes {
		want, ok := s.Index(it)
		rc, err := m.FetchIndex(ctx, s.Meta, it)
		if !ok {
			if !errors.Is(err, rsm.ErrNotFound) {
				t.Fatalf("FetchIndex(%v) of a segment without one: error %v, want ErrNotFound", it, err)
			}
			continue
		}
		got := ReadAll(t, rc, err)
		if !bytes.Equal(got, want) {
			t.Fatalf("FetchIndex(%v): %d bytes differing from the %d copied", it, len(got), len(want))
		}
	}
}

func testCopyFetch(t *testing.T, h Harness) {
	m := open(t, h)
	tp := Partition("orders", 3)
	for _, txn := range []bool{false, true} {
		t.Run(fmt.Sprintf("txn=%v", txn), func(t *testing.T) {
			s := Write(t, t.TempDir(), Spec{Partition: tp, StartOffset: 1234, LogSize: h.LogSize, Txn: txn, Seed: 1})
			Copy(t, m, s)
			CheckStored(t, m, s)
		})
	}
}

func testFetchLogRanges(t *testing.T, h Harness) {
	m := open(t, h)
	s := Write(t, t.TempDir(), Spec{Partition: Partition("ranges", 0), StartOffset: 0, LogSize: h.LogSize, Seed: 2})
	Copy(t, m, s)
	log := s.Log(t)
	size := int64(len(log))
	for _, r := range []struct{ start, end int64 }{
		{0, rsm.EndOfLog}, {0, size}, {0, 1}, {1, 2}, {10, 4096}, {size / 3, 2 * size / 3},
		{size - 1, rsm.EndOfLog}, {size - 1, size}, {7, 7}, {size / 2, size + 1000},
		{size, rsm.EndOfLog}, {size, size + 10}, {size + 5, rsm.EndOfLog}, {size + 5, size + 9},
	} {
		end := r.end
		if end < 0 || end > size {
			end = size
		}
		start := min(r.start, size)
		want := log[start:max(start, end)]
		rc, err := m.FetchLog(context.Background(), s.Meta, r.start, r.end)
		got := ReadAll(t, rc, err)
		if !bytes.Equal(got, want) {
			t.Errorf("FetchLog(%d, %d): got %d bytes, want %d bytes log[%d:%d]", r.start, r.end, len(got), len(want), start, end)
		}
	}
}

func testFetchMissing(t *testing.T, h Harness) {
	m := open(t, h)
	s := Write(t, t.TempDir(), Spec{Partition: Partition("missing", 1), StartOffset: 50, LogSize: 1000, Seed: 3})
	ctx := context.Background()
	_, err := m.FetchLog(ctx, s.Meta, 0, rsm.EndOfLog)
	checkNotFound(t, "FetchLog", s, err)
	_, err = m.FetchLog(ctx, s.Meta, 10, 20)
	checkNotFound(t, "FetchLog(10, 20)", s, err)
	for _, it := range rsm.IndexTypes {
		_, err := m.FetchIndex(ctx, s.Meta, it)
		checkNotFound(t, "FetchIndex("+it.String()+")", s, err)
	}
}

func checkNotFound(t *testing.T, op string, s *Segment, err error) {
	t.Helper()
	if !errors.Is(err, rsm.ErrNotFound) {
		t.Fatalf("%s of a segment never copied: error %v, want ErrNotFound", op, err)
	}
	var rerr *rsm.Error
	if !errors.As(err, &rerr) {
		t.Fatalf("%s: error %T is not an *rsm.Error", op, err)
	}
	if !strings.Contains(err.Error(), s.Meta.SegmentID.ID.String()) {
		t.Fatalf("%s: error %q does not name the segment %v", op, err, s.Meta.SegmentID.ID)
	}
}

func testDeleteIdempotent(t *testing.T, h Harness) {
	m := open(t, h)
	ctx := context.Background()
	tp := Partition("deletes", 0)
	never := Write(t, t.TempDir(), Spec{Partition: tp, StartOffset: 0, LogSize: 100, Seed: 4})
	if err := m.Delete(ctx, never.Meta); err != nil {
		t.Fatalf("Delete of a segment never copied: %v", err)
	}
	s := Write(t, t.TempDir(), Spec{Partition: tp, StartOffset: 100, LogSize: h.LogSize, Txn: true, Seed: 5})
	keep := Write(t, t.TempDir(), Spec{Partition: tp, StartOffset: 200, LogSize: 1000, Seed: 6})
	Copy(t, m, s)
	Copy(t, m, keep)
	for i := range 2 {
		if err := m.Delete(ctx, s.Meta); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
	}
	_, err := m.FetchLog(ctx, s.Meta, 0, rsm.EndOfLog)
	checkNotFound(t, "FetchLog after Delete", s, err)
	_, err = m.FetchIndex(ctx, s.Meta, rsm.IndexOffset)
	checkNotFound(t, "FetchIndex after Delete", s, err)
	objs := Collect(t, m.List(ctx, tp))
	for _, o := range objs {
		if o.Segment.ID == s.Meta.SegmentID.ID {
			t.Fatalf("List after Delete still has %q", o.Name)
		}
	}
	CheckStored(t, m, keep)
}

func testDeleteBatch(t *testing.T, h Harness) {
	m := open(t, h)
	ctx := context.Background()
	dir := t.TempDir()
	tp := Partition("batch", 0)
	var stored []*Segment
	for i := range 3 {
		s := Write(t, dir, Spec{Partition: tp, StartOffset: int64(i) * 10, LogSize: 1000, Txn: i == 0, Seed: uint64(40 + i)})
		Copy(t, m, s)
		stored = append(stored, s)
	}
	never := Write(t, dir, Spec{Partition: tp, StartOffset: 99, LogSize: 10, Seed: 50})
	errs := rsm.DeleteBatch(ctx, m, []*proto.SegmentMetadata{stored[0].Meta, stored[1].Meta, never.Meta, nil, stored[2].Meta})
	if len(errs) != 5 {
		t.Fatalf("DeleteBatch of 5 returned %d errors", len(errs))
	}
	for i, err := range errs {
		if i == 3 {
			if !errors.Is(err, rsm.ErrPermanent) {
				t.Errorf("DeleteBatch of a nil segment: %v, want ErrPermanent", err)
			}
		} else if err != nil {
			t.Errorf("DeleteBatch, segment %d: %v", i, err)
		}
	}
	for _, s := range stored {
		_, err := m.FetchLog(ctx, s.Meta, 0, rsm.EndOfLog)
		checkNotFound(t, "FetchLog after DeleteBatch", s, err)
	}
	if objs := Collect(t, m.List(ctx, tp)); len(objs) != 0 {
		t.Errorf("after DeleteBatch of every segment, List yields %+v", objs)
	}
}

func testRecopyReplaces(t *testing.T, h Harness) {
	m := open(t, h)
	dir := t.TempDir()
	tp := Partition("recopy", 0)
	first := Write(t, dir, Spec{Partition: tp, StartOffset: 500, LogSize: h.LogSize, Txn: true, Seed: 7})
	second := Write(t, dir, Spec{Partition: tp, StartOffset: 500, LogSize: h.LogSize / 2, Txn: false, Seed: 8})
	second.Meta = first.Meta // the same segment copied again, now without a transaction index
	Copy(t, m, first)
	Copy(t, m, second)
	CheckStored(t, m, second)
	n := 0
	for _, o := range Collect(t, m.List(context.Background(), tp)) {
		if o.Problem != "" {
			t.Errorf("after a second copy, List reports %q: %s", o.Name, o.Problem)
		}
		if o.Type == rsm.FileTransactionIndex {
			t.Errorf("after a copy without a transaction index, %q is still stored", o.Name)
		}
		n++
	}
	if n == 0 {
		t.Fatal("List after two copies is empty")
	}
}

// Collect drains a listing; an error fails the test.
func Collect(t testing.TB, seq func(func(rsm.Object, error) bool)) []rsm.Object {
	t.Helper()
	var out []rsm.Object
	for o, err := range seq {
		if err != nil {
			t.Fatalf("listing: %v", err)
		}
		out = append(out, o)
	}
	return out
}

func testList(t *testing.T, h Harness) {
	m := open(t, h)
	ctx := context.Background()
	dir := t.TempDir()
	a, b := Partition("list-a", 0), Partition("list-a", 1)
	empty := Partition("list-empty", 0)
	segs := []*Segment{
		Write(t, dir, Spec{Partition: a, StartOffset: 0, LogSize: 300, Txn: true, Seed: 10}),
		Write(t, dir, Spec{Partition: a, StartOffset: 100, LogSize: 300, Seed: 11}),
		Write(t, dir, Spec{Partition: b, StartOffset: 7, LogSize: h.LogSize, Seed: 12}),
	}
	for _, s := range segs {
		Copy(t, m, s)
	}
	if objs := Collect(t, m.List(ctx, empty)); len(objs) != 0 {
		t.Fatalf("List of a partition never written: %v", objs)
	}

	byPartition := map[proto.TopicIDPartition]map[proto.UUID][]rsm.Object{}
	for _, o := range Collect(t, m.ListAll(ctx)) {
		if o.Problem != "" || !o.Attributed() {
			t.Fatalf("ListAll after clean copies reports %+v", o)
		}
		p := byPartition[o.Segment.TopicIDPartition]
		if p == nil {
			p = map[proto.UUID][]rsm.Object{}
			byPartition[o.Segment.TopicIDPartition] = p
		}
		p[o.Segment.ID] = append(p[o.Segment.ID], o)
	}
	for _, s := range segs {
		objs := byPartition[s.Meta.SegmentID.TopicIDPartition][s.Meta.SegmentID.ID]
		if len(objs) == 0 {
			t.Fatalf("ListAll misses segment %v", s.Meta.SegmentID.ID)
		}
		var logSize int64 = -1
		for _, o := range objs {
			if o.StartOffset != s.Meta.StartOffset {
				t.Errorf("%q: start offset %d, want %d", o.Name, o.StartOffset, s.Meta.StartOffset)
			}
			if o.Type == rsm.FileLog {
				logSize = o.Size
			}
		}
		if logSize != s.LogSize {
			t.Errorf("segment %v: listed log size %d, want %d", s.Meta.SegmentID.ID, logSize, s.LogSize)
		}
	}
	if len(byPartition) != 2 {
		t.Errorf("ListAll found %d partitions, want 2", len(byPartition))
	}

	listed := Collect(t, m.List(ctx, a))
	names := make([]string, len(listed))
	for i, o := range listed {
		names[i] = o.Name
		if o.Segment.TopicIDPartition != a {
			t.Errorf("List(%v) yields %q of %v", a, o.Name, o.Segment.TopicIDPartition)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("List is not in ascending name order: %q", names)
	}
	if got, want := len(listed), countObjects(byPartition[a]); got != want {
		t.Errorf("List(%v) yields %d objects, ListAll %d", a, got, want)
	}

	// A consumer that stops early must be able to.
	for range m.ListAll(ctx) {
		break
	}
}

func countObjects(m map[proto.UUID][]rsm.Object) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

func testInvalidArguments(t *testing.T, h Harness) {
	m := open(t, h)
	ctx := context.Background()
	good := Write(t, t.TempDir(), Spec{Partition: Partition("valid", 0), StartOffset: 0, LogSize: 100, Seed: 13})
	Copy(t, m, good)
	bad := func(mut func(md *proto.SegmentMetadata)) *proto.SegmentMetadata {
		md := *good.Meta
		mut(&md)
		return &md
	}
	for name, md := range map[string]*proto.SegmentMetadata{
		"nil":            nil,
		"dotdot topic":   bad(func(md *proto.SegmentMetadata) { md.SegmentID.Topic = ".." }),
		"slash topic":    bad(func(md *proto.SegmentMetadata) { md.SegmentID.Topic = "a/../../b" }),
		"empty topic":    bad(func(md *proto.SegmentMetadata) { md.SegmentID.Topic = "" }),
		"zero id":        bad(func(md *proto.SegmentMetadata) { md.SegmentID.ID = proto.ZeroUUID }),
		"zero topic id":  bad(func(md *proto.SegmentMetadata) { md.SegmentID.TopicID = proto.ZeroUUID }),
		"negative start": bad(func(md *proto.SegmentMetadata) { md.StartOffset = -1 }),
		"negative part":  bad(func(md *proto.SegmentMetadata) { md.SegmentID.Partition = -1 }),
	} {
		if _, err := m.Copy(ctx, md, good.Data); !errors.Is(err, rsm.ErrPermanent) {
			t.Errorf("Copy with %s: error %v, want ErrPermanent", name, err)
		}
		if _, err := m.FetchLog(ctx, md, 0, rsm.EndOfLog); !errors.Is(err, rsm.ErrPermanent) {
			t.Errorf("FetchLog with %s: error %v, want ErrPermanent", name, err)
		}
		if _, err := m.FetchIndex(ctx, md, rsm.IndexOffset); !errors.Is(err, rsm.ErrPermanent) {
			t.Errorf("FetchIndex with %s: error %v, want ErrPermanent", name, err)
		}
		if err := m.Delete(ctx, md); !errors.Is(err, rsm.ErrPermanent) {
			t.Errorf("Delete with %s: error %v, want ErrPermanent", name, err)
		}
	}
	for _, r := range []struct{ start, end int64 }{{-1, 10}, {10, 5}} {
		if _, err := m.FetchLog(ctx, good.Meta, r.start, r.end); !errors.Is(err, rsm.ErrPermanent) {
			t.Errorf("FetchLog(%d, %d): error %v, want ErrPermanent", r.start, r.end, err)
		}
	}
	if _, err := m.FetchIndex(ctx, good.Meta, rsm.IndexType(9)); !errors.Is(err, rsm.ErrPermanent) {
		t.Errorf("FetchIndex(IndexType(9)): error %v, want ErrPermanent", err)
	}
	missing := good.Data
	missing.ProducerSnapshotPath = missing.ProducerSnapshotPath + ".gone"
	other := Write(t, t.TempDir(), Spec{Partition: Partition("valid", 0), StartOffset: 100, LogSize: 100, Seed: 14})
	if _, err := m.Copy(ctx, other.Meta, missing); err == nil || !strings.Contains(err.Error(), ".gone") {
		t.Errorf("Copy with a missing producer snapshot: error %v, want one naming the file", err)
	}
	if _, err := m.FetchLog(ctx, other.Meta, 0, rsm.EndOfLog); !errors.Is(err, rsm.ErrNotFound) {
		t.Errorf("after a failed Copy, FetchLog: error %v, want ErrNotFound", err)
	}
	for _, o := range Collect(t, m.List(ctx, other.Meta.SegmentID.TopicIDPartition)) {
		if o.Segment.ID == other.Meta.SegmentID.ID {
			t.Errorf("a failed Copy left %q behind", o.Name)
		}
	}
}

func testConcurrent(t *testing.T, h Harness) {
	m := open(t, h)
	dir := t.TempDir()
	const n = 6
	segs := make([]*Segment, n)
	for i := range segs {
		segs[i] = Write(t, dir, Spec{Partition: Partition("concurrent", int32(i%2)), StartOffset: int64(i) * 100, LogSize: 4096 + int64(i), Seed: uint64(20 + i)})
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, s := range segs {
		wg.Go(func() {
			if _, err := m.Copy(context.Background(), s.Meta, s.Data); err != nil {
				errs[i] = err
				return
			}
			rc, err := m.FetchLog(context.Background(), s.Meta, 0, rsm.EndOfLog)
			if err != nil {
				errs[i] = err
				return
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err == nil && !bytes.Equal(got, s.log) {
				err = fmt.Errorf("segment %d: fetched log differs", i)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

func testCanceledContext(t *testing.T, h Harness) {
	m := open(t, h)
	s := Write(t, t.TempDir(), Spec{Partition: Partition("canceled", 0), StartOffset: 0, LogSize: 100, Seed: 30})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Copy(ctx, s.Meta, s.Data); !errors.Is(err, context.Canceled) {
		t.Errorf("Copy with a canceled context: error %v, want context.Canceled", err)
	}
	Copy(t, m, s)
	if _, err := m.FetchIndex(ctx, s.Meta, rsm.IndexOffset); !errors.Is(err, context.Canceled) {
		t.Errorf("FetchIndex with a canceled context: error %v, want context.Canceled", err)
	}
	if err := m.Delete(ctx, s.Meta); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with a canceled context: error %v, want context.Canceled", err)
	}
	CheckStored(t, m, s)
}

// Read returns ReadAll bound to t, so that a fetch's two results can be passed straight in:
// rsmtest.Read(t)(m.FetchLog(ctx, seg, 0, rsm.EndOfLog)).
func Read(t testing.TB) func(io.ReadCloser, error) []byte {
	return func(rc io.ReadCloser, err error) []byte {
		t.Helper()
		return ReadAll(t, rc, err)
	}
}
