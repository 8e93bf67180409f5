package rlmm

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
)

// endOffset is the end offset of metadata partition mp: what a test reads to tell whether a
// write produced anything.
func endOffset(t testing.TB, c *kfake.Cluster, mp int32) int64 {
	t.Helper()
	ends, err := kadm.NewClient(rawClient(t, c)).ListEndOffsets(ctxT(t), proto.TopicName)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := ends.Lookup(proto.TopicName, mp)
	if !ok || o.Err != nil {
		t.Fatalf("end offset of %d: %v", mp, o.Err)
	}
	return o.Offset
}

// wantNotApplied checks that err is a *NotAppliedError for reason, published or refused before
// publishing as said, and that the store keeps the drop of a published one.
func wantNotApplied(t *testing.T, m *Manager, err error, reason error, published bool) *NotAppliedError {
	t.Helper()
	var na *NotAppliedError
	if !errors.As(err, &na) || !errors.Is(err, ErrNotApplied) || !errors.Is(err, reason) {
		t.Fatalf("err = %v, want a *NotAppliedError wrapping %v", err, reason)
	}
	if na.Published != published {
		t.Fatalf("%v: Published = %t, want %t", err, na.Published, published)
	}
	if !published {
		if na.Offset != -1 {
			t.Fatalf("%v: Offset = %d for a record refused before publishing, want -1", err, na.Offset)
		}
		return na
	}
	d, ok, derr := m.View().DroppedAt(na.Partition, na.Offset)
	if derr != nil || !ok || !errors.Is(d.Reason.Err(), reason) || d.Segment != na.Segment.ID {
		t.Fatalf("View().DroppedAt(%d, %d) = %+v, %t, %v; want the drop the error reports", na.Partition, na.Offset, d, ok, derr)
	}
	return na
}

// Every reason the store drops a record reaches the caller that wrote it, through the public
// API: for a partition this manager follows the record is published and its waiter gets the
// drop; for one it leads and has ready, the write is refused before producing.
func TestWriteOutcomes(t *testing.T) {
	c := newCluster(t)
	m := newManager(t, c, t.TempDir())
	// tp0 and tp1 map to metadata partition 2: tp0 led, tp1 followed.
	assignReady(t, m, []proto.TopicIDPartition{tp0}, []proto.TopicIDPartition{tp1})
	ctx := ctxT(t)
	const mp = 2

	// Records no store could apply: refused with ErrInvalidArgument, nothing produced.
	before := endOffset(t, c, mp)
	negative := segment(tp1, -5, 10)
	past := segment(tp1, 100, 150, proto.EpochEntry{Epoch: 3, StartOffset: 100}, proto.EpochEntry{Epoch: 4, StartOffset: 200})
	for name, err := range map[string]error{
		"negative start offset":     m.AddSegment(ctx, negative),
		"epoch past the end":        m.AddSegment(ctx, past),
		"add not COPY_STARTED":      m.AddSegment(ctx, func() *proto.SegmentMetadata { s := segment(tp1, 0, 9); s.State = proto.CopySegmentFinished; return s }()),
		"update to COPY_STARTED":    m.UpdateSegment(ctx, finish(segment(tp1, 0, 9), proto.CopySegmentStarted)),
		"undefined partition state": m.PutPartitionDelete(ctx, &proto.PartitionDeleteMetadata{TopicIDPartition: tp1, State: 9}),
	} {
		if !errors.Is(err, ErrInvalidArgument) || !errors.Is(err, cache.ErrInvalidRecord) {
			t.Errorf("%s: err = %v, want ErrInvalidArgument wrapping cache.ErrInvalidRecord", name, err)
		}
	}
	if after := endOffset(t, c, mp); after != before {
		t.Fatalf("invalid records produced %d records", after-before)
	}

	// A followed partition: published, dropped, reported.
	unknown := segment(tp1, 0, 9)
	na := wantNotApplied(t, m, m.UpdateSegment(ctx, finish(unknown, proto.CopySegmentFinished)), cache.ErrUnknownSegment, true)
	if na.Segment != unknown.SegmentID || na.Partition != mp || na.Offset < before {
		t.Errorf("NotAppliedError = %+v, want segment %s at %d-%d from offset %d on", na, unknown.SegmentID, mp, na.Offset, before)
	}
	s := segment(tp1, 0, 9)
	if err := m.AddSegment(ctx, s); err != nil {
		t.Fatal(err)
	}
	wantNotApplied(t, m, m.UpdateSegment(ctx, finish(s, proto.DeleteSegmentFinished)), cache.ErrInvalidTransition, true)
	if err := m.UpdateSegment(ctx, finish(s, proto.CopySegmentFinished)); err != nil {
		t.Fatal(err)
	}
	// A duplicate add of a segment past COPY_SEGMENT_STARTED.
	wantNotApplied(t, m, m.AddSegment(ctx, s), cache.ErrInvalidTransition, true)
	// The same user partition under another topic name.
	renamed := tp1
	renamed.Topic = "bar"
	wantNotApplied(t, m, m.AddSegment(ctx, segment(renamed, 10, 19)), cache.ErrPartitionMismatch, true)
	// A partition deleted: every later record of it is stale.
	for _, st := range []proto.PartitionDeleteState{proto.DeletePartitionMarked, proto.DeletePartitionStarted, proto.DeletePartitionFinished} {
		if err := m.PutPartitionDelete(ctx, &proto.PartitionDeleteMetadata{TopicIDPartition: tp1, BrokerID: 1, State: st}); err != nil {
			t.Fatal(err)
		}
	}
	wantNotApplied(t, m, m.AddSegment(ctx, segment(tp1, 20, 29)), cache.ErrPartitionDeleted, true)
	wantNotApplied(t, m, m.PutPartitionDelete(ctx, &proto.PartitionDeleteMetadata{TopicIDPartition: tp1, BrokerID: 1, State: proto.DeletePartitionMarked}),
		cache.ErrPartitionDeleted, true)

	// The led, ready partition: the same writes are refused before anything is produced.
	before = endOffset(t, c, mp)
	wantNotApplied(t, m, m.UpdateSegment(ctx, finish(segment(tp0, 0, 9), proto.CopySegmentFinished)), cache.ErrUnknownSegment, false)
	s0 := segment(tp0, 0, 9)
	if err := m.AddSegment(ctx, s0); err != nil {
		t.Fatal(err)
	}
	before++
	wantNotApplied(t, m, m.UpdateSegment(ctx, finish(s0, proto.DeleteSegmentFinished)), cache.ErrInvalidTransition, false)
	renamed0 := tp0
	renamed0.Topic = "bar"
	m.StopPartitions(tp0)
	assignReady(t, m, []proto.TopicIDPartition{tp0, renamed0}, nil)
	wantNotApplied(t, m, m.AddSegment(ctx, segment(renamed0, 10, 19)), cache.ErrPartitionMismatch, false)
	if after := endOffset(t, c, mp); after != before {
		t.Fatalf("refused writes produced %d records", after-before)
	}

	// Every published drop is kept, and listed through the view.
	dropped, err := m.View().Dropped()
	if err != nil || len(dropped) != 6 {
		t.Fatalf("View().Dropped() = %+v, %v; want the 6 published drops", dropped, err)
	}
	if st := statsOf(m, mp); st.Dropped != 6 {
		t.Errorf("Stats().Dropped = %d, want 6", st.Dropped)
	}
}

// holdProduces makes c hold every produce request until release is called: the broker has the
// record, or not, but the producer learns nothing. Other requests run meanwhile.
func holdProduces(c *kfake.Cluster) (release func()) {
	ch := make(chan struct{})
	var once sync.Once
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		select {
		case <-ch:
		default:
			c.SleepControl(func() { <-ch })
		}
		return nil, nil, false
	})
	return func() { once.Do(func() { close(ch) }) }
}

// A write returns by its caller's deadline even while the producer waits for the broker, and
// says that its record may still reach the topic; that record does arrive once the broker
// answers. A write that waited for the acknowledgement synchronously (the earlier ProduceSync)
// returns only when the broker answers: franz-go cannot fail a record an idempotent producer
// has sent.
func TestWriteReturnsByItsDeadlineWhileProduceHangs(t *testing.T) {
	c := newCluster(t)
	m := newManager(t, c, t.TempDir())
	assignReady(t, m, []proto.TopicIDPartition{tp0}, nil)
	release := holdProduces(c)
	defer release()

	s := segment(tp0, 0, 9)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- m.AddSegment(ctx, s) }()
	var err error
	select {
	case err = <-errc:
	case <-time.After(10 * time.Second):
		release()
		<-errc
		t.Fatal("the write did not return within 10s of its 300ms deadline: it waits for the broker")
	}
	took := time.Since(start)
	var inc *IncompleteError
	if !errors.As(err, &inc) || !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v after %s, want an *IncompleteError for the caller's deadline", err, took)
	}
	if inc.Published || inc.Offset != -1 || inc.Partition != 2 {
		t.Errorf("IncompleteError = %+v, want not published, offset -1, partition 2", inc)
	}
	if took > 5*time.Second {
		t.Errorf("the write returned %s after its 300ms deadline", took)
	}

	// The consume wait bounds a write whose caller set no deadline, the same way.
	m2 := newManager(t, c, t.TempDir(), WithConsumeWait(300*time.Millisecond))
	assignReady(t, m2, []proto.TopicIDPartition{tp3}, nil)
	err = m2.AddSegment(context.Background(), segment(tp3, 0, 9))
	if !errors.As(err, &inc) || !errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || inc.Published {
		t.Fatalf("err = %v, want an unpublished *IncompleteError for the consume wait", err)
	}

	// Once the broker answers, the record lands and is applied: "may still reach the topic".
	release()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, ok, err := m.View().Segment(s.SegmentID); err == nil && ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the record of the incomplete write never arrived")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A record the broker acknowledged but the manager could not apply in time: the write says it
// is published, and where.
func TestWriteIncompleteAfterPublishing(t *testing.T) {
	c := newCluster(t)
	m := newManager(t, c, t.TempDir())
	assignReady(t, m, []proto.TopicIDPartition{tp0}, nil)
	before := endOffset(t, c, 2)
	stop := failFetches(c)
	defer stop()
	// Long enough for the acknowledgement even on a loaded machine; the record is never applied,
	// since every fetch fails.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := m.AddSegment(ctx, segment(tp0, 0, 9))
	var inc *IncompleteError
	if !errors.As(err, &inc) || !errors.Is(err, ErrTimeout) || !inc.Published || inc.Partition != 2 || inc.Offset != before {
		t.Fatalf("err = %v (%+v), want a published *IncompleteError at 2@%d", err, inc, before)
	}
}
