package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/goleak"

	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rlmm"
	"github.com/stratalog/strata/rsm"
	"github.com/stratalog/strata/rsm/local"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	now   = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	topic = proto.UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	tp0   = proto.TopicIDPartition{TopicID: topic, Topic: "orders", Partition: 0}
	tp1   = proto.TopicIDPartition{TopicID: topic, Topic: "orders", Partition: 1}
)

// segID returns a segment id whose last byte is n, so that tests name segments by number.
func segID(tp proto.TopicIDPartition, n byte) proto.SegmentID {
	return proto.SegmentID{TopicIDPartition: tp, ID: proto.UUID{0xaa, 15: n}}
}

// fixture is a store fed at consecutive offsets of metadata partition 0, and a local storage.
type fixture struct {
	t     *testing.T
	store *cache.Store
	next  int64
	dir   string
	rs    *local.Store
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s, err := cache.Open("db", cache.WithFS(vfs.NewMem()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	dir := t.TempDir()
	rs, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, store: s, dir: dir, rs: rs}
}

func (f *fixture) apply(recs ...proto.Record) {
	f.t.Helper()
	for _, r := range recs {
		res, err := f.store.Apply([]cache.Entry{{Partition: 0, Offset: f.next, Record: r}})
		if err != nil {
			f.t.Fatal(err)
		}
		if len(res.Dropped) > 0 {
			f.t.Fatalf("record %v dropped: %v", r, res.Dropped[0].Err)
		}
		f.next++
	}
}

// applyDropped applies records the store is expected to drop.
func (f *fixture) applyDropped(recs ...proto.Record) {
	f.t.Helper()
	for _, r := range recs {
		res, err := f.store.Apply([]cache.Entry{{Partition: 0, Offset: f.next, Record: r}})
		if err != nil {
			f.t.Fatal(err)
		}
		if len(res.Dropped) != 1 {
			f.t.Fatalf("record %v applied, want it dropped", r)
		}
		f.next++
	}
}

// seg describes a segment of tp: number n, offsets start-end, in leader epoch epoch.
func seg(tp proto.TopicIDPartition, n byte, start, end int64, epoch int32) *proto.SegmentMetadata {
	return &proto.SegmentMetadata{SegmentID: segID(tp, n), StartOffset: start, EndOffset: end,
		MaxTimestampMs: now.Add(time.Duration(end) * time.Second).UnixMilli(), EventTimestampMs: now.Add(-2 * time.Hour).UnixMilli(),
		LeaderEpochs: []proto.EpochEntry{{Epoch: epoch, StartOffset: start}}, SegmentSizeInBytes: 100, State: proto.CopySegmentStarted, TxnIndexEmpty: true}
}

func update(s *proto.SegmentMetadata, state proto.SegmentState, at time.Time) *proto.SegmentMetadataUpdate {
	return &proto.SegmentMetadataUpdate{SegmentID: s.SegmentID, EventTimestampMs: at.UnixMilli(), State: state}
}

// finished applies the segment's add and its COPY_SEGMENT_FINISHED, and uploads it.
func (f *fixture) finished(s *proto.SegmentMetadata) {
	f.t.Helper()
	f.apply(s, update(s, proto.CopySegmentFinished, now.Add(-time.Hour)))
	f.upload(s)
}

func (f *fixture) upload(s *proto.SegmentMetadata) {
	f.t.Helper()
	dir := f.t.TempDir()
	base := filepath.Join(dir, fmt.Sprintf("%020d", s.StartOffset))
	d := rsm.SegmentData{LogPath: base + ".log", OffsetIndexPath: base + ".index", TimeIndexPath: base + ".timeindex",
		ProducerSnapshotPath: base + ".snapshot", LeaderEpochCheckpoint: []byte("0\n1\n0 0\n")}
	for _, p := range []string{d.LogPath, d.OffsetIndexPath, d.TimeIndexPath, d.ProducerSnapshotPath} {
		if err := os.WriteFile(p, []byte("data"), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
	if _, err := f.rs.Copy(context.Background(), s, d); err != nil {
		f.t.Fatal(err)
	}
}

// objectsOf lists the names of the stored objects of segment s.
func (f *fixture) objectsOf(id proto.SegmentID) []string {
	f.t.Helper()
	var names []string
	for o, err := range f.rs.List(context.Background(), id.TopicIDPartition) {
		if err != nil {
			f.t.Fatal(err)
		}
		if o.Segment.ID == id.ID {
			names = append(names, o.Name)
		}
	}
	return names
}

// summary renders anomalies one a line as "kind partition segment-number|object", so that a
// table case states what it expects in a line each.
func summary(found []Anomaly) []string {
	out := []string{}
	for _, a := range found {
		what := "-"
		switch {
		case a.Object != nil:
			what = filepath.Base(a.Object.Name)
		case a.Segment != nil:
			what = fmt.Sprintf("seg%d", a.Segment.SegmentID.ID[15])
		case a.Offset >= 0:
			what = fmt.Sprintf("mp%d@%d", a.MetadataPartition, a.Offset)
		}
		p := "-"
		if a.Partition != (proto.TopicIDPartition{}) {
			p = fmt.Sprintf("%s-%d", a.Partition.Topic, a.Partition.Partition)
		}
		out = append(out, fmt.Sprintf("%s %s %s", a.Kind, p, what))
	}
	return out
}

func TestFind(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(f *fixture)
		storage bool
		halts   []*rlmm.HaltError
		want    []string
	}{
		{name: "clean: contiguous finished segments, all uploaded", storage: true, setup: func(f *fixture) {
			f.finished(seg(tp0, 1, 0, 99, 0))
			f.finished(seg(tp0, 2, 100, 199, 1))
		}, want: []string{}},
		{name: "stuck copy older than the threshold", setup: func(f *fixture) {
			f.apply(seg(tp0, 1, 0, 99, 0))
		}, want: []string{"stuck-copy orders-0 seg1"}},
		{name: "a copy younger than the threshold is not stuck", setup: func(f *fixture) {
			s := seg(tp0, 1, 0, 99, 0)
			s.EventTimestampMs = now.Add(-time.Minute).UnixMilli()
			f.apply(s)
		}, want: []string{}},
		{name: "stuck delete", setup: func(f *fixture) {
			s := seg(tp0, 1, 0, 99, 0)
			f.apply(s, update(s, proto.CopySegmentFinished, now.Add(-3*time.Hour)), update(s, proto.DeleteSegmentStarted, now.Add(-2*time.Hour)))
		}, want: []string{"stuck-delete orders-0 seg1"}},
		{name: "gap between finished segments", setup: func(f *fixture) {
			f.apply(seg(tp0, 1, 0, 99, 0), update(seg(tp0, 1, 0, 99, 0), proto.CopySegmentFinished, now))
			f.apply(seg(tp0, 2, 150, 199, 0), update(seg(tp0, 2, 150, 199, 0), proto.CopySegmentFinished, now))
		}, want: []string{"gap orders-0 seg2"}},
		{name: "overlap from a new leader's upload", setup: func(f *fixture) {
			f.apply(seg(tp0, 1, 0, 99, 0), update(seg(tp0, 1, 0, 99, 0), proto.CopySegmentFinished, now))
			f.apply(seg(tp0, 2, 50, 149, 1), update(seg(tp0, 2, 50, 149, 1), proto.CopySegmentFinished, now))
		}, want: []string{"overlap orders-0 seg2"}},
		{name: "a segment inside a longer one overlaps and hides no gap after it", setup: func(f *fixture) {
			for _, s := range []*proto.SegmentMetadata{seg(tp0, 1, 0, 199, 0), seg(tp0, 2, 50, 99, 1), seg(tp0, 3, 250, 299, 1)} {
				f.apply(s, update(s, proto.CopySegmentFinished, now))
			}
		}, want: []string{"overlap orders-0 seg2", "gap orders-0 seg3"}},
		{name: "finished segment whose log is missing", storage: true, setup: func(f *fixture) {
			s := seg(tp0, 1, 0, 99, 0)
			f.finished(s)
			for _, n := range f.objectsOf(s.SegmentID) {
				if strings.HasSuffix(n, ".log") {
					if err := os.Remove(filepath.Join(f.dir, n)); err != nil {
						f.t.Fatal(err)
					}
				}
			}
		}, want: []string{"missing-objects orders-0 seg1"}},
		{name: "missing objects are not looked for without storage", setup: func(f *fixture) {
			s := seg(tp0, 1, 0, 99, 0)
			f.apply(s, update(s, proto.CopySegmentFinished, now))
		}, want: []string{}},
		{name: "orphan: objects of a segment the metadata does not know", storage: true, setup: func(f *fixture) {
			f.finished(seg(tp0, 1, 0, 99, 0))
			f.upload(seg(tp0, 9, 100, 199, 0))
		}, want: []string{
			"orphan orders-0 00000000000000000100-qgAAAAAAAAAAAAAAAAAACQ.index",
			"orphan orders-0 00000000000000000100-qgAAAAAAAAAAAAAAAAAACQ.leader_epoch_checkpoint",
			"orphan orders-0 00000000000000000100-qgAAAAAAAAAAAAAAAAAACQ.log",
			"orphan orders-0 00000000000000000100-qgAAAAAAAAAAAAAAAAAACQ.snapshot",
			"orphan orders-0 00000000000000000100-qgAAAAAAAAAAAAAAAAAACQ.timeindex",
		}},
		{name: "stray file", storage: true, setup: func(f *fixture) {
			if err := os.WriteFile(filepath.Join(f.rs.Root(), "notes.txt"), []byte("x"), 0o644); err != nil {
				f.t.Fatal(err)
			}
		}, want: []string{"stray-object - notes.txt"}},
		{name: "unfinished partition deletion", setup: func(f *fixture) {
			f.apply(seg(tp1, 1, 0, 99, 0), &proto.PartitionDeleteMetadata{TopicIDPartition: tp1, State: proto.DeletePartitionMarked})
			f.apply(&proto.PartitionDeleteMetadata{TopicIDPartition: tp1, State: proto.DeletePartitionStarted})
		}, want: []string{"stuck-copy orders-1 seg1", "unfinished-partition orders-1 -"}},
		{name: "halted metadata partition", halts: []*rlmm.HaltError{{Partition: 3, Offset: 17, Cause: errors.New("unknown apiKey 9")}},
			setup: func(f *fixture) {}, want: []string{"halted-partition - mp3@17"}},
		{name: "skipped record", setup: func(f *fixture) {
			if err := f.store.Skip(4, 8, "undecodable"); err != nil {
				f.t.Fatal(err)
			}
		}, want: []string{"skipped-record - mp4@8"}},
		{name: "dropped records: an update of an unknown segment, a delete finished without starting, a duplicate add", setup: func(f *fixture) {
			s := seg(tp0, 1, 0, 99, 0)
			f.apply(s, update(s, proto.CopySegmentFinished, now))
			f.applyDropped(update(seg(tp0, 2, 100, 199, 0), proto.CopySegmentFinished, now))
			t3 := seg(tp0, 3, 100, 199, 0)
			t3.EventTimestampMs = now.UnixMilli()
			f.apply(t3)
			f.applyDropped(update(t3, proto.DeleteSegmentFinished, now), s)
		}, want: []string{"dropped-record orders-0 mp0@2", "dropped-record orders-0 mp0@4", "dropped-record orders-0 mp0@5"}},
		{name: "repeated deletion markers are no anomaly, a late segment of a deleted partition is", setup: func(f *fixture) {
			marked := &proto.PartitionDeleteMetadata{TopicIDPartition: tp1, State: proto.DeletePartitionMarked}
			f.apply(marked, &proto.PartitionDeleteMetadata{TopicIDPartition: tp1, State: proto.DeletePartitionStarted})
			f.applyDropped(marked) // while the deletion runs: STARTED -> MARKED
			f.apply(&proto.PartitionDeleteMetadata{TopicIDPartition: tp1, State: proto.DeletePartitionFinished})
			f.applyDropped(marked)                // after it finished
			f.applyDropped(seg(tp1, 1, 0, 99, 0)) // an old leader's copy, after it finished
		}, want: []string{"dropped-record orders-1 mp0@5"}},
		{name: "order: partitions, then storage, then the topic", storage: true,
			halts: []*rlmm.HaltError{{Partition: 1, Offset: 2, Cause: errors.New("bad")}},
			setup: func(f *fixture) {
				f.apply(seg(tp1, 1, 0, 99, 0))
				f.apply(seg(tp0, 2, 0, 99, 0))
				f.upload(seg(tp0, 3, 0, 9, 0))
				if err := f.store.Skip(0, f.next, "test"); err != nil {
					f.t.Fatal(err)
				}
			}, want: []string{"stuck-copy orders-0 seg2", "stuck-copy orders-1 seg1",
				"orphan orders-0 00000000000000000000-qgAAAAAAAAAAAAAAAAAAAw.index",
				"orphan orders-0 00000000000000000000-qgAAAAAAAAAAAAAAAAAAAw.leader_epoch_checkpoint",
				"orphan orders-0 00000000000000000000-qgAAAAAAAAAAAAAAAAAAAw.log",
				"orphan orders-0 00000000000000000000-qgAAAAAAAAAAAAAAAAAAAw.snapshot",
				"orphan orders-0 00000000000000000000-qgAAAAAAAAAAAAAAAAAAAw.timeindex",
				"halted-partition - mp1@2", "skipped-record - mp0@2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.setup(f)
			var st rsm.Manager
			if tc.storage {
				st = f.rs
			}
			found, err := Find(context.Background(), f.store, st, Options{StuckAfter: time.Hour, Now: now, Halts: tc.halts})
			if err != nil {
				t.Fatal(err)
			}
			if got := summary(found); !slices.Equal(got, tc.want) {
				t.Fatalf("found\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
			for _, a := range found {
				if a.Detail == "" {
					t.Errorf("%s has no detail", a.Kind)
				}
			}
		})
	}
}

func TestFindRefusesNegativeThreshold(t *testing.T) {
	f := newFixture(t)
	if _, err := Find(context.Background(), f.store, nil, Options{StuckAfter: -time.Second}); err == nil {
		t.Fatal("a negative stuck-after was accepted")
	}
	if _, err := Plan(nil, PlanOptions{OrphanAge: -time.Second}); err == nil {
		t.Fatal("a negative orphan age was accepted")
	}
}
