package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rlmm"
	"github.com/stratalog/strata/rsm"
)

// writer publishes by applying each record to the fixture's store at the next offset, as a
// manager does once its record is read back; it records what it published.
type writer struct {
	f         *fixture
	mu        sync.Mutex
	published []string
	fail      error // every publish fails with it when set
}

func (w *writer) publish(r proto.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail != nil {
		return w.fail
	}
	res, err := w.f.store.Apply([]cache.Entry{{Partition: 0, Offset: w.f.next, Record: r}})
	if err != nil {
		return err
	}
	w.f.next++
	if len(res.Dropped) > 0 {
		return res.Dropped[0].Err
	}
	switch r := r.(type) {
	case *proto.SegmentMetadataUpdate:
		w.published = append(w.published, fmt.Sprintf("seg%d %s", r.SegmentID.ID[15], r.State))
	case *proto.PartitionDeleteMetadata:
		w.published = append(w.published, fmt.Sprintf("%s-%d %s", r.TopicIDPartition.Topic, r.TopicIDPartition.Partition, r.State))
	default:
		w.published = append(w.published, r.String())
	}
	return nil
}

func (w *writer) AddSegment(_ context.Context, md *proto.SegmentMetadata) error { return w.publish(md) }
func (w *writer) UpdateSegment(_ context.Context, u *proto.SegmentMetadataUpdate) error {
	return w.publish(u)
}
func (w *writer) PutPartitionDelete(_ context.Context, d *proto.PartitionDeleteMetadata) error {
	return w.publish(d)
}
func (w *writer) SegmentFor(tp proto.TopicIDPartition, epoch int32, offset int64) (proto.SegmentMetadata, bool, error) {
	return w.f.store.SegmentFor(tp, epoch, offset)
}
func (w *writer) WatchMetadataPartitions(context.Context, ...int32) error { return nil }
func (w *writer) UnwatchMetadataPartitions(...int32)                      {}
func (w *writer) MetadataPartitionReady(int32) error                      { return nil }
func (w *writer) Changed() <-chan struct{}                                { return make(chan struct{}) }
func (w *writer) View() rlmm.View                                         { return w.f.store }

func TestPlan(t *testing.T) {
	obj := func(age time.Duration) *rsm.Object {
		o := &rsm.Object{Name: "kafka-tiered-storage/x/00000000000000000000-qgAAAAAAAAAAAAAAAAAACQ.log", Segment: segID(tp0, 9)}
		if age > 0 {
			o.Modified = now.Add(-age)
		}
		return o
	}
	for _, tc := range []struct {
		a       Anomaly
		storage bool
		want    Action
	}{
		{Anomaly{Kind: StuckCopy, Segment: seg(tp0, 1, 0, 9, 0)}, true, DeleteSegment},
		{Anomaly{Kind: StuckCopy, Segment: seg(tp0, 1, 0, 9, 0)}, false, Manual},
		{Anomaly{Kind: StuckDelete, Segment: seg(tp0, 1, 0, 9, 0)}, true, DeleteSegment},
		{Anomaly{Kind: StuckDelete, Segment: seg(tp0, 1, 0, 9, 0)}, false, Manual},
		{Anomaly{Kind: PartitionDelete, Partition: tp1}, true, FinishPartition},
		{Anomaly{Kind: PartitionDelete, Partition: tp1}, false, Manual},
		{Anomaly{Kind: Orphan, Object: obj(48 * time.Hour)}, true, DeleteOrphan},
		{Anomaly{Kind: Orphan, Object: obj(time.Hour)}, true, Wait},
		{Anomaly{Kind: Orphan, Object: obj(0)}, true, Wait},
		{Anomaly{Kind: Stray, Object: &rsm.Object{Name: "notes.txt"}}, true, Manual},
		{Anomaly{Kind: Gap, Segment: seg(tp0, 1, 0, 9, 0)}, true, Manual},
		{Anomaly{Kind: Overlap, Segment: seg(tp0, 1, 0, 9, 0)}, true, Manual},
		{Anomaly{Kind: MissingObjects, Segment: seg(tp0, 1, 0, 9, 0)}, true, Manual},
		{Anomaly{Kind: Halted, MetadataPartition: 1, Offset: 5}, true, Manual},
		{Anomaly{Kind: Skipped, MetadataPartition: 1, Offset: 5}, true, Manual},
		{Anomaly{Kind: Dropped, MetadataPartition: 1, Offset: 6}, true, Manual},
	} {
		plan, err := Plan([]Anomaly{tc.a}, PlanOptions{Storage: tc.storage, OrphanAge: 24 * time.Hour, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if len(plan) != 1 || plan[0].Action != tc.want || plan[0].Detail == "" || plan[0].Target == "" {
			t.Errorf("%s (storage %v): plan %+v, want action %s", tc.a.Kind, tc.storage, plan, tc.want)
		}
	}
}

func TestExecute(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup builds the state verify saw and returns its anomalies; between returns what
		// happens after verify and before execute.
		setup     func(f *fixture) []Anomaly
		between   func(f *fixture, w *writer)
		want      Outcome
		published []string
		// kept and gone are segments whose objects must remain, or be gone, afterwards.
		kept, gone []proto.SegmentID
	}{
		{name: "stuck copy: deleted through the events",
			setup: func(f *fixture) []Anomaly {
				s := seg(tp0, 1, 0, 99, 0)
				f.apply(s)
				f.upload(s)
				return []Anomaly{{Kind: StuckCopy, Partition: tp0, Segment: s}}
			},
			want: Done, published: []string{"seg1 DELETE_SEGMENT_STARTED", "seg1 DELETE_SEGMENT_FINISHED"}, gone: []proto.SegmentID{segID(tp0, 1)}},
		{name: "stuck delete: finished",
			setup: func(f *fixture) []Anomaly {
				s := seg(tp0, 1, 0, 99, 0)
				f.apply(s, update(s, proto.CopySegmentFinished, now), update(s, proto.DeleteSegmentStarted, now))
				f.upload(s)
				cur := *s
				cur.State = proto.DeleteSegmentStarted
				return []Anomaly{{Kind: StuckDelete, Partition: tp0, Segment: &cur}}
			},
			want: Done, published: []string{"seg1 DELETE_SEGMENT_FINISHED"}, gone: []proto.SegmentID{segID(tp0, 1)}},
		{name: "refused: the stuck copy finished after verify, its data is live",
			setup: func(f *fixture) []Anomaly {
				s := seg(tp0, 1, 0, 99, 0)
				f.apply(s)
				f.upload(s)
				return []Anomaly{{Kind: StuckCopy, Partition: tp0, Segment: s}}
			},
			between: func(f *fixture, _ *writer) { f.apply(update(seg(tp0, 1, 0, 99, 0), proto.CopySegmentFinished, now)) },
			want:    Refused, kept: []proto.SegmentID{segID(tp0, 1)}},
		{name: "refused: the stuck segment is gone already",
			setup: func(f *fixture) []Anomaly {
				s := seg(tp0, 1, 0, 99, 0)
				f.apply(s)
				return []Anomaly{{Kind: StuckCopy, Partition: tp0, Segment: s}}
			},
			between: func(f *fixture, _ *writer) {
				s := seg(tp0, 1, 0, 99, 0)
				f.apply(update(s, proto.DeleteSegmentStarted, now), update(s, proto.DeleteSegmentFinished, now))
			},
			want: Refused},
		{name: "orphan: deleted",
			setup: func(f *fixture) []Anomaly {
				s := seg(tp0, 9, 0, 99, 0)
				f.upload(s)
				return []Anomaly{{Kind: Orphan, Partition: tp0, Object: &rsm.Object{Name: "x", Segment: s.SegmentID, StartOffset: 0, Modified: now.Add(-48 * time.Hour)}}}
			},
			want: Done, gone: []proto.SegmentID{segID(tp0, 9)}},
		{name: "refused: the orphan's segment is known now, a copy in flight",
			setup: func(f *fixture) []Anomaly {
				s := seg(tp0, 9, 0, 99, 0)
				f.upload(s)
				return []Anomaly{{Kind: Orphan, Partition: tp0, Object: &rsm.Object{Name: "x", Segment: s.SegmentID, StartOffset: 0, Modified: now.Add(-48 * time.Hour)}}}
			},
			between: func(f *fixture, _ *writer) { f.apply(seg(tp0, 9, 0, 99, 0)) },
			want:    Refused, kept: []proto.SegmentID{segID(tp0, 9)}},
		{name: "unfinished partition: finished as the remover does",
			setup: func(f *fixture) []Anomaly {
				s := seg(tp1, 1, 0, 99, 0)
				f.finished(s)
				f.apply(&proto.PartitionDeleteMetadata{TopicIDPartition: tp1, State: proto.DeletePartitionMarked})
				return []Anomaly{{Kind: PartitionDelete, Partition: tp1}}
			},
			want: Done, published: []string{"orders-1 DELETE_PARTITION_STARTED", "seg1 DELETE_SEGMENT_STARTED", "seg1 DELETE_SEGMENT_FINISHED", "orders-1 DELETE_PARTITION_FINISHED"},
			gone: []proto.SegmentID{segID(tp1, 1)}},
		{name: "failed: the events cannot be published, nothing is deleted",
			setup: func(f *fixture) []Anomaly {
				s := seg(tp0, 1, 0, 99, 0)
				f.apply(s)
				f.upload(s)
				return []Anomaly{{Kind: StuckCopy, Partition: tp0, Segment: s}}
			},
			between: func(_ *fixture, w *writer) { w.fail = errors.New("broker unreachable") },
			want:    Failed, kept: []proto.SegmentID{segID(tp0, 1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			found := tc.setup(f)
			plan, err := Plan(found, PlanOptions{Storage: true, OrphanAge: 24 * time.Hour, Now: now})
			if err != nil {
				t.Fatal(err)
			}
			w := &writer{f: f}
			if tc.between != nil {
				tc.between(f, w)
			}
			failed := Execute(context.Background(), w, f.store, f.rs, plan, ExecuteOptions{BrokerID: -1})
			s := plan[0]
			if s.Result != tc.want || (failed > 0) != (tc.want == Failed) {
				t.Fatalf("result %q (why %q, err %v), %d failed; want %q", s.Result, s.Why, s.Err, failed, tc.want)
			}
			if tc.want == Refused && s.Why == "" || tc.want == Failed && s.Err == nil {
				t.Fatalf("step %+v says no reason", s)
			}
			if got := w.published; !slices.Equal(got, tc.published) {
				t.Fatalf("published %q, want %q", got, tc.published)
			}
			for _, id := range tc.kept {
				if len(f.objectsOf(id)) == 0 {
					t.Errorf("the objects of %s were deleted", id.ID)
				}
			}
			for _, id := range tc.gone {
				if names := f.objectsOf(id); len(names) != 0 {
					t.Errorf("objects of %s left: %s", id.ID, strings.Join(names, ", "))
				}
			}
		})
	}
}

func TestExecuteWithoutStorageFails(t *testing.T) {
	f := newFixture(t)
	plan := []Step{{Action: DeleteOrphan, Anomaly: Anomaly{Kind: Orphan, Object: &rsm.Object{Segment: segID(tp0, 1)}}}}
	if failed := Execute(context.Background(), &writer{f: f}, f.store, nil, plan, ExecuteOptions{}); failed != 1 || plan[0].Result != Failed {
		t.Fatalf("%d failed, result %q", failed, plan[0].Result)
	}
}
