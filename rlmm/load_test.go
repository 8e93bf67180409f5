package rlmm

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
)

// TestBulkLoad: a manager starting on an empty store behind a history of segments added,
// finished and deleted, a record that does not apply and a deleted partition, loads it in bulk
// and ends with the store a manager applying it fetch by fetch builds, row for row. Started
// again on that store, it loads nothing and fetches nothing.
func TestBulkLoad(t *testing.T) {
	c := newCluster(t)
	// This one creates the topic.
	each := newManager(t, c, filepath.Join(t.TempDir(), "each"), WithLoadMinRecords(0))
	cl := rawClient(t, c)
	tps := []proto.TopicIDPartition{tp0, tp1, tp3, {TopicID: topicID, Topic: "foo", Partition: 4}}
	for i, tp := range tps {
		mp := proto.MetadataPartition(tp, 5)
		var vals [][]byte
		for j := range 120 {
			s := segment(tp, int64(j)*100, int64(j)*100+99)
			vals = append(vals, encode(t, s))
			if j%3 != 0 {
				vals = append(vals, encode(t, finish(s, proto.CopySegmentFinished)))
			}
			if j%10 == 0 && j%3 != 0 {
				vals = append(vals, encode(t, finish(s, proto.DeleteSegmentStarted)),
					encode(t, finish(s, proto.DeleteSegmentFinished)))
			}
		}
		// An update of a segment nobody added: dropped.
		vals = append(vals, encode(t, finish(segment(tp, 0, 1), proto.CopySegmentFinished)))
		if i == 2 {
			for _, st := range []proto.PartitionDeleteState{proto.DeletePartitionMarked, proto.DeletePartitionStarted, proto.DeletePartitionFinished} {
				vals = append(vals, encode(t, &proto.PartitionDeleteMetadata{TopicIDPartition: tp, BrokerID: 1, EventTimestampMs: 5, State: st}))
			}
		}
		produceRaw(t, cl, mp, vals...)
	}

	core, logs := observer.New(zap.InfoLevel)
	dir := filepath.Join(t.TempDir(), "bulk")
	bulk := newManager(t, c, dir, WithLoadMinRecords(100), WithLogger(zap.New(core)))
	assignReady(t, bulk, tps, nil)
	if logs.FilterMessage("loaded the metadata topic in bulk").Len() != 1 {
		t.Fatalf("the manager did not load in bulk: %v", logs.All())
	}
	assignReady(t, each, tps, nil)
	got, want := dumpOf(t, bulk), dumpOf(t, each)
	if got != want {
		t.Fatalf("the bulk load's store:\n%s\nthe store applied fetch by fetch:\n%s", got, want)
	}
	if !strings.Contains(got, "reason=UnknownSegment") {
		t.Fatalf("no dropped record in the store:\n%s", got)
	}
	if err := bulk.Close(); err != nil {
		t.Fatal(err)
	}

	core, logs = observer.New(zap.InfoLevel)
	again := newManager(t, c, dir, WithLoadMinRecords(1), WithLogger(zap.New(core)))
	assignReady(t, again, tps, nil)
	if n := logs.FilterMessage("loading the metadata topic in bulk").Len(); n != 0 {
		t.Fatalf("a store that holds partitions was loaded in bulk again")
	}
	for _, st := range again.Stats() {
		if st.Fetched != 0 {
			t.Errorf("metadata partition %d: fetched %d records after the load, want 0", st.Partition, st.Fetched)
		}
	}
}

// TestBulkLoadCloseAnytime: a manager closed 10 to 100 ms after its assignment, during its bulk
// load or after it, closes cleanly, and the next manager on the store ends with everything the
// topic holds. (cache's TestLoaderFinishCancelled stops a load in the middle of its writing.)
func TestBulkLoadCloseAnytime(t *testing.T) {
	c := newCluster(t)
	tps := []proto.TopicIDPartition{tp0, tp1, tp3}
	each := fillAndApply(t, c, tps, 400)
	want := dumpOf(t, each)
	// Not within the first milliseconds, while the history is being fetched: franz-go's
	// Client.Close reads the fetch session's id unsynchronized with a fetch response that
	// writes it (kgo v1.22.2, client.go close and source.go bumpEpoch), which -race reports.
	// The load's writing starts only once everything is fetched.
	for _, wait := range []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 100 * time.Millisecond} {
		dir := filepath.Join(t.TempDir(), "bulk")
		m := newManager(t, c, dir, WithLoadMinRecords(1))
		if err := m.AssignPartitions(ctxT(t), tps, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(wait)
		if err := m.Close(); err != nil {
			t.Fatalf("Close %v into the load: %v", wait, err)
		}
		m = newManager(t, c, dir, WithLoadMinRecords(1))
		assignReady(t, m, tps, nil)
		got := dumpOf(t, m)
		if got != want {
			t.Fatalf("closed %v into the load, then started again: the store differs:\n%s\nwant:\n%s", wait, got, want)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// failLoadFS fails the creation of every file of a bulk load.
type failLoadFS struct{ vfs.FS }

func (f failLoadFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if strings.Contains(name, "load.tmp") {
		return nil, errors.New("injected: no room for the load")
	}
	return f.FS.Create(name, category)
}

// TestBulkLoadFailsOver: a bulk load that cannot write its runs is abandoned, its metadata
// partitions are read again from where it started and applied fetch by fetch, and the store
// ends as if no load had been tried.
func TestBulkLoadFailsOver(t *testing.T) {
	c := newCluster(t)
	tps := []proto.TopicIDPartition{tp0, tp3}
	each := fillAndApply(t, c, tps, 300)
	core, logs := observer.New(zap.WarnLevel)
	m := newManager(t, c, filepath.Join(t.TempDir(), "bulk"), WithLoadMinRecords(1), WithLogger(zap.New(core)),
		WithCacheOptions(cache.WithFS(failLoadFS{vfs.Default})))
	assignReady(t, m, tps, nil)
	if logs.FilterMessage("the bulk load failed; applying the metadata topic fetch by fetch from where it started").Len() != 1 {
		t.Fatalf("no warning that the load failed: %v", logs.All())
	}
	got, want := dumpOf(t, m), dumpOf(t, each)
	if got != want {
		t.Fatalf("after a failed load:\n%s\nwant:\n%s", got, want)
	}
}

// TestBulkLoadFailsOverPastAHalt: a metadata partition halted at a record that does not decode
// while a bulk load runs is halted past what is applied when the load fails: it is read again
// from what is applied, and halts again at the same record, with everything before it applied.
func TestBulkLoadFailsOverPastAHalt(t *testing.T) {
	c := newCluster(t)
	each := newManager(t, c, filepath.Join(t.TempDir(), "each"), WithLoadMinRecords(0))
	cl := rawClient(t, c)
	mp := proto.MetadataPartition(tp3, 5)
	var vals [][]byte
	for j := range 200 {
		s := segment(tp3, int64(j)*100, int64(j)*100+99)
		vals = append(vals, encode(t, s), encode(t, finish(s, proto.CopySegmentFinished)))
	}
	vals = append(vals, []byte{0xff, 0xff})
	produceRaw(t, cl, mp, vals...)
	halted := func(m *Manager) *HaltError {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			for _, st := range m.Stats() {
				// Halted with everything before the record applied: during the load it
				// halts first with nothing applied.
				if st.Partition == mp && st.Halt != nil && st.Applied == st.Halt.Offset {
					return st.Halt
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("metadata partition %d never halted with all before the halt applied: %+v", mp, m.Stats())
		return nil
	}
	if err := each.AssignPartitions(ctxT(t), []proto.TopicIDPartition{tp3}, nil); err != nil {
		t.Fatal(err)
	}
	want := halted(each)
	m := newManager(t, c, filepath.Join(t.TempDir(), "bulk"), WithLoadMinRecords(1),
		WithCacheOptions(cache.WithFS(failLoadFS{vfs.Default})))
	if err := m.AssignPartitions(ctxT(t), []proto.TopicIDPartition{tp3}, nil); err != nil {
		t.Fatal(err)
	}
	got := halted(m)
	if got.Offset != want.Offset || got.Offset != 400 {
		t.Fatalf("halted at offset %d, want %d (as a manager applying fetch by fetch halts)", got.Offset, want.Offset)
	}
	gotDump, wantDump := dumpOf(t, m), dumpOf(t, each)
	if gotDump != wantDump {
		t.Fatalf("after a failed load past a halt:\n%s\nwant:\n%s", gotDump, wantDump)
	}
}

// dumpOf is the manager's store as View().Dump prints it.
func dumpOf(t *testing.T, m *Manager) string {
	t.Helper()
	var b bytes.Buffer
	if err := m.View().Dump(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// fillAndApply writes n segments, added and finished, of each of tps to the metadata topic of c,
// and returns a manager that applied them fetch by fetch and is ready.
func fillAndApply(t *testing.T, c *kfake.Cluster, tps []proto.TopicIDPartition, n int) *Manager {
	t.Helper()
	// This one creates the topic.
	each := newManager(t, c, filepath.Join(t.TempDir(), "each"), WithLoadMinRecords(0))
	cl := rawClient(t, c)
	for _, tp := range tps {
		var vals [][]byte
		for j := range n {
			s := segment(tp, int64(j)*100, int64(j)*100+99)
			vals = append(vals, encode(t, s), encode(t, finish(s, proto.CopySegmentFinished)))
		}
		produceRaw(t, cl, proto.MetadataPartition(tp, 5), vals...)
	}
	assignReady(t, each, tps, nil)
	return each
}
