package rlmm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/proto"
)

// rawClient is a plain producer to the metadata topic, for writing what a manager would not.
func rawClient(t testing.TB, c *kfake.Cluster) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func produceRaw(t testing.TB, cl *kgo.Client, mp int32, vals ...[]byte) {
	t.Helper()
	var recs []*kgo.Record
	for _, v := range vals {
		recs = append(recs, &kgo.Record{Topic: proto.TopicName, Partition: mp, Value: v})
	}
	if err := cl.ProduceSync(ctxT(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func encode(t testing.TB, r proto.Record) []byte {
	t.Helper()
	b, err := proto.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func assignReady(t testing.TB, m *Manager, leaders, followers []proto.TopicIDPartition) {
	t.Helper()
	ctx := ctxT(t)
	if err := m.AssignPartitions(ctx, leaders, followers); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitReady(ctx, append(append([]proto.TopicIDPartition{}, leaders...), followers...)...); err != nil {
		t.Fatal(err)
	}
}

func statsOf(m *Manager, mp int32) PartitionStats {
	for _, s := range m.Stats() {
		if s.Partition == mp {
			return s
		}
	}
	return PartitionStats{Partition: -1}
}

// TestNewPartitionUpdates follows Kafka's testNewPartitionUpdates: segments of two partitions,
// one led and one followed, are readable once the partitions are assigned.
func TestNewPartitionUpdates(t *testing.T) {
	c := newCluster(t)
	m := newManager(t, c, t.TempDir())
	ctx := ctxT(t)
	assignReady(t, m, []proto.TopicIDPartition{tp0}, []proto.TopicIDPartition{tp3})
	a, b := segment(tp0, 0, 100), segment(tp3, 0, 200)
	for _, s := range []*proto.SegmentMetadata{a, b} {
		if err := m.AddSegment(ctx, s); err != nil {
			t.Fatal(err)
		}
		if err := m.UpdateSegment(ctx, finish(s, proto.CopySegmentFinished)); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []*proto.SegmentMetadata{a, b} {
		got, ok, err := m.SegmentFor(s.SegmentID.TopicIDPartition, 0, 0)
		if err != nil || !ok || got.SegmentID != s.SegmentID {
			t.Fatalf("%s: %v %v %v", s.SegmentID.TopicIDPartition, got, ok, err)
		}
	}
}

// TestMultipleSubscriptions: a partition assigned later to a metadata partition already being
// consumed becomes ready without disturbing the first; stopping one leaves the other readable.
func TestMultipleSubscriptions(t *testing.T) {
	c := newCluster(t)
	m := newManager(t, c, t.TempDir())
	ctx := ctxT(t)
	assignReady(t, m, []proto.TopicIDPartition{tp0}, nil)
	s1 := segment(tp1, 0, 10)
	// tp1 shares metadata partition 2 with tp0, so its write is accepted before tp1 is assigned.
	if err := m.AddSegment(ctx, s1); err != nil {
		t.Fatal(err)
	}
	assignReady(t, m, nil, []proto.TopicIDPartition{tp1})
	if segs, err := m.Segments(tp1); err != nil || len(segs) != 1 {
		t.Fatalf("Segments(tp1) = %v %v", segs, err)
	}
	if err := m.AddSegment(ctx, segment(tp3, 0, 10)); !errors.Is(err, ErrNotAssigned) {
		t.Fatalf("tp3 before assignment: %v", err)
	}
	assignReady(t, m, []proto.TopicIDPartition{tp3}, nil)
	if err := m.AddSegment(ctx, segment(tp3, 0, 10)); err != nil {
		t.Fatal(err)
	}
	m.StopPartitions(tp0)
	if _, err := m.Segments(tp0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stopped tp0: %v", err)
	}
	if segs, err := m.Segments(tp1); err != nil || len(segs) != 1 {
		t.Fatalf("tp1 after stopping tp0: %v %v", segs, err)
	}
	m.StopPartitions(tp1, tp3)
	if err := m.AddSegment(ctx, segment(tp0, 20, 30)); !errors.Is(err, ErrNotAssigned) {
		t.Fatalf("after stopping every partition of metadata partition 2: %v", err)
	}
}

// TestRemoteLogSizeByEpoch follows Kafka's remote log size tests: the size of an epoch counts
// every segment of that epoch not yet DELETE_SEGMENT_FINISHED, copying ones included.
func TestRemoteLogSizeByEpoch(t *testing.T) {
	c := newCluster(t)
	m := newManager(t, c, t.TempDir())
	ctx := ctxT(t)
	assignReady(t, m, []proto.TopicIDPartition{tp0}, nil)
	s0 := segment(tp0, 0, 99, proto.EpochEntry{Epoch: 0, StartOffset: 0})
	s1 := segment(tp0, 100, 199, proto.EpochEntry{Epoch: 0, StartOffset: 100}, proto.EpochEntry{Epoch: 1, StartOffset: 150})
	s2 := segment(tp0, 200, 299, proto.EpochEntry{Epoch: 1, StartOffset: 200})
	for _, s := range []*proto.SegmentMetadata{s0, s1, s2} {
		if err := m.AddSegment(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []*proto.SegmentMetadata{s0, s1} {
		if err := m.UpdateSegment(ctx, finish(s, proto.CopySegmentFinished)); err != nil {
			t.Fatal(err)
		}
	}
	want := map[int32]int64{0: int64(s0.SegmentSizeInBytes + s1.SegmentSizeInBytes), 1: int64(s1.SegmentSizeInBytes + s2.SegmentSizeInBytes), 7: 0}
	for epoch, w := range want {
		if got, err := m.RemoteLogSizeForEpoch(tp0, epoch); err != nil || got != w {
			t.Fatalf("epoch %d: size %d %v, want %d", epoch, got, err, w)
		}
	}
	for _, st := range []proto.SegmentState{proto.DeleteSegmentStarted, proto.DeleteSegmentFinished} {
		if err := m.UpdateSegment(ctx, finish(s0, st)); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := m.RemoteLogSizeForEpoch(tp0, 0); got != int64(s1.SegmentSizeInBytes) {
		t.Fatalf("epoch 0 after deleting s0: %d", got)
	}
	if total, _ := m.RemoteLogSize(tp0); total != int64(s1.SegmentSizeInBytes+s2.SegmentSizeInBytes) {
		t.Fatalf("total = %d", total)
	}
}

// TestRestartReadsOnlyTheTail: a manager restarted on its store fetches only the records
// published while it was away, and answers at once from what it had.
func TestRestartReadsOnlyTheTail(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	ctx := ctxT(t)
	m := newManager(t, c, dir)
	assignReady(t, m, []proto.TopicIDPartition{tp0}, nil)
	var segs []*proto.SegmentMetadata
	for i := int64(0); i < 20; i++ {
		s := segment(tp0, i*100, i*100+99)
		segs = append(segs, s)
		if err := m.AddSegment(ctx, s); err != nil {
			t.Fatal(err)
		}
		if err := m.UpdateSegment(ctx, finish(s, proto.CopySegmentFinished)); err != nil {
			t.Fatal(err)
		}
	}
	m.Close()

	// While it is away, another broker publishes 3 more records.
	raw := rawClient(t, c)
	extra := segment(tp0, 2000, 2099)
	produceRaw(t, raw, 2, encode(t, extra), encode(t, finish(extra, proto.CopySegmentFinished)), encode(t, finish(segs[0], proto.DeleteSegmentStarted)))

	m2 := newManager(t, c, dir)
	assignReady(t, m2, []proto.TopicIDPartition{tp0}, nil)
	st := statsOf(m2, 2)
	if st.ResumedAt != 40 || st.Fetched != 3 || st.Applied != 43 {
		t.Fatalf("after restart: %+v, want resumed at 40, 3 fetched, applied 43", st)
	}
	all, err := m2.Segments(tp0)
	if err != nil || len(all) != 21 || all[0].State != proto.DeleteSegmentStarted {
		t.Fatalf("Segments after restart: %d %v", len(all), err)
	}
	if got, ok, _ := m2.SegmentFor(tp0, 0, 2050); !ok || got.SegmentID != extra.SegmentID {
		t.Fatalf("new segment not found after restart")
	}
}

// TestRebuildAfterExpiredOffsets: records deleted by retention while the manager was away make
// it rebuild that metadata partition from the log start, so its state is what the topic now
// holds, never a silent mix.
func TestRebuildAfterExpiredOffsets(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	ctx := ctxT(t)
	m := newManager(t, c, dir)
	assignReady(t, m, []proto.TopicIDPartition{tp0}, nil)
	old := segment(tp0, 0, 99)
	if err := m.AddSegment(ctx, old); err != nil {
		t.Fatal(err)
	}
	m.Close()

	raw := rawClient(t, c)
	kept := segment(tp0, 100, 199)
	produceRaw(t, raw, 2, encode(t, finish(old, proto.CopySegmentFinished)), encode(t, kept), encode(t, finish(kept, proto.CopySegmentFinished)))
	// Offsets 0 and 1 (old's add and finish) expire.
	adm := kadm.NewClient(raw)
	o := kadm.Offsets{}
	o.Add(kadm.Offset{Topic: proto.TopicName, Partition: 2, At: 2})
	if _, err := adm.DeleteRecords(ctx, o); err != nil {
		t.Fatal(err)
	}

	m2 := newManager(t, c, dir)
	assignReady(t, m2, []proto.TopicIDPartition{tp0}, nil)
	st := statsOf(m2, 2)
	if st.Rebuilds != 1 || st.ResumedAt != 2 {
		t.Fatalf("stats %+v: want one rebuild resuming at the log start 2", st)
	}
	all, err := m2.Segments(tp0)
	if err != nil || len(all) != 1 || all[0].SegmentID != kept.SegmentID {
		t.Fatalf("after rebuild: %v %v, want only the kept segment", all, err)
	}
	if err := m2.View().Check(); err != nil {
		t.Fatal(err)
	}
}

// TestPoisonRecordHaltsOnlyItsPartition: a record that does not decode stops its metadata
// partition with an error naming the offset; other metadata partitions keep working; skipping
// it resumes.
func TestPoisonRecordHaltsOnlyItsPartition(t *testing.T) {
	c := newCluster(t)
	m := newManager(t, c, t.TempDir())
	ctx := ctxT(t)
	assignReady(t, m, []proto.TopicIDPartition{tp0}, []proto.TopicIDPartition{tp3})
	raw := rawClient(t, c)
	good := segment(tp0, 0, 10)
	produceRaw(t, raw, 2, encode(t, good), []byte{0x01, 0x09, 0x00}, encode(t, finish(good, proto.CopySegmentFinished)))

	var halt *HaltError
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := m.Ready(tp0)
		if errors.As(err, &halt) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tp0 never halted: %v", err)
		}
		m.WaitReady(ctxWithin(t, 200*time.Millisecond), tp0)
	}
	if halt.Partition != 2 || halt.Offset != 1 || !errors.Is(halt, proto.ErrUnknownAPIKey) || !errors.Is(halt, ErrNotReady) {
		t.Fatalf("halt = %v", halt)
	}
	if _, err := m.Segments(tp0); !errors.As(err, &halt) {
		t.Fatalf("read of halted partition: %v", err)
	}
	if err := m.AddSegment(ctx, segment(tp0, 11, 20)); !errors.As(err, &halt) {
		t.Fatalf("write to halted partition: %v", err)
	}
	// Metadata partition 4 is unaffected.
	if err := m.AddSegment(ctx, segment(tp3, 0, 10)); err != nil {
		t.Fatal(err)
	}
	if err := m.Skip(2, 0, "wrong offset"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("skip at the wrong offset: %v", err)
	}
	if err := m.Skip(2, 1, "garbage written by a test"); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitReady(ctx, tp0); err != nil {
		t.Fatal(err)
	}
	// The finish after the bad record is applied.
	if err := m.UpdateSegment(ctx, finish(good, proto.DeleteSegmentStarted)); err != nil {
		t.Fatal(err)
	}
	got, ok, err := m.Segment(good.SegmentID)
	if err != nil || !ok || got.State != proto.DeleteSegmentStarted {
		t.Fatalf("segment after skip: %v %v %v", got, ok, err)
	}
	skipped, err := m.View().Skipped()
	if err != nil || len(skipped) != 1 || skipped[0].Offset != 1 || skipped[0].Partition != 2 {
		t.Fatalf("Skipped = %v %v", skipped, err)
	}
}

func ctxWithin(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestSkipBadRecordsOption(t *testing.T) {
	c := newCluster(t)
	m := newManager(t, c, t.TempDir(), WithSkipBadRecords(true))
	ctx := ctxT(t)
	assignReady(t, m, []proto.TopicIDPartition{tp0}, nil)
	raw := rawClient(t, c)
	produceRaw(t, raw, 2, []byte("not a record"), nil)
	if err := m.AddSegment(ctx, segment(tp0, 0, 10)); err != nil {
		t.Fatal(err)
	}
	if st := statsOf(m, 2); st.Skipped != 2 || st.Halt != nil {
		t.Fatalf("stats = %+v", st)
	}
	if skipped, _ := m.View().Skipped(); len(skipped) != 2 {
		t.Fatalf("skips recorded: %v", skipped)
	}
}

// TestConcurrentPublishersAndLeaderMoves: many goroutines publish while the metadata
// partitions' leaders move between brokers; every publish completes, and the store holds each.
func TestConcurrentPublishersAndLeaderMoves(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(3))
	m := newManager(t, c, t.TempDir())
	ctx := ctxT(t)
	assignReady(t, m, []proto.TopicIDPartition{tp0, tp1, tp3}, nil)

	// The mover moves the leaders of the metadata partitions in use (2 and 4) round the three
	// brokers until the writers are done; every move must succeed, and enough of them must
	// happen while the writers run for the test to be about leader moves at all.
	stop := make(chan struct{})
	var mover sync.WaitGroup
	var moves atomic.Int64
	var lastNode atomic.Int32
	moveErr := make(chan error, 1)
	mover.Add(1)
	go func() {
		defer mover.Done()
		for i := int32(1); ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			for _, mp := range []int32{2, 4} {
				if err := c.MoveTopicPartition(proto.TopicName, mp, i%3); err != nil {
					moveErr <- fmt.Errorf("moving the leader of %s-%d to broker %d: %w", proto.TopicName, mp, i%3, err)
					return
				}
			}
			lastNode.Store(i % 3)
			moves.Add(1)
		}
	}()
	const writers, each = 8, 25
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			tp := []proto.TopicIDPartition{tp0, tp1, tp3}[w%3]
			for i := 0; i < each; i++ {
				s := segment(tp, int64(w*1000+i*10), int64(w*1000+i*10+9))
				if err := m.AddSegment(ctx, s); err != nil {
					errs <- fmt.Errorf("writer %d add %d: %w", w, i, err)
					return
				}
				if err := m.UpdateSegment(ctx, finish(s, proto.CopySegmentFinished)); err != nil {
					errs <- fmt.Errorf("writer %d finish %d: %w", w, i, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	during := moves.Load()
	close(stop)
	mover.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	select {
	case err := <-moveErr:
		t.Fatal(err)
	default:
	}
	if during < 2 {
		t.Fatalf("only %d leader moves happened while the writers ran", during)
	}
	// The moves took effect: the leaders are where the last one put them.
	details, err := kadm.NewClient(rawClient(t, c)).ListTopics(ctx, proto.TopicName)
	if err != nil {
		t.Fatal(err)
	}
	for _, mp := range []int32{2, 4} {
		if got := details[proto.TopicName].Partitions[mp].Leader; got != lastNode.Load() {
			t.Fatalf("the leader of %s-%d is broker %d, the last move was to %d", proto.TopicName, mp, got, lastNode.Load())
		}
	}
	t.Logf("%d leader moves while the writers ran", during)
	total := 0
	for _, tp := range []proto.TopicIDPartition{tp0, tp1, tp3} {
		segs, err := m.Segments(tp)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range segs {
			if s.State != proto.CopySegmentFinished {
				t.Fatalf("segment %s in %s", s.SegmentID.ID, s.State)
			}
		}
		total += len(segs)
	}
	if total != writers*each {
		t.Fatalf("store holds %d segments, want %d", total, writers*each)
	}
}

// TestPublishTimesOut: when the loop cannot apply (every fetch fails), a publish fails with
// ErrTimeout after the consume wait instead of hanging.
func TestPublishTimesOut(t *testing.T) {
	c := newCluster(t)
	m := newManager(t, c, t.TempDir(), WithConsumeWait(500*time.Millisecond))
	assignReady(t, m, []proto.TopicIDPartition{tp0}, nil)
	defer failFetches(c)()
	err := m.AddSegment(ctxT(t), segment(tp0, 0, 10))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
}

func TestTopicPartitionCountMismatch(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(3, proto.TopicName))
	_, err := New(ctxT(t), WithBootstrapServers(c.ListenAddrs()...), WithCacheDir(t.TempDir()), WithMetadataPartitions(5))
	if !errors.Is(err, ErrTopicMismatch) {
		t.Fatalf("err = %v, want ErrTopicMismatch", err)
	}
}

func TestInitializationGivesUp(t *testing.T) {
	start := time.Now()
	_, err := New(ctxT(t), WithBootstrapServers("127.0.0.1:1"), WithCacheDir(t.TempDir()),
		WithInitRetry(50*time.Millisecond, 500*time.Millisecond))
	if !errors.Is(err, ErrInitTimeout) || time.Since(start) > 20*time.Second {
		t.Fatalf("err = %v after %s", err, time.Since(start))
	}
}

func TestCloseFailsWaitingCalls(t *testing.T) {
	c := newCluster(t)
	m := newManager(t, c, t.TempDir())
	assignReady(t, m, []proto.TopicIDPartition{tp0}, nil)
	m.Close()
	if err := m.AddSegment(ctxT(t), segment(tp0, 0, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	// Assigning after Close fails at once, not after retrying the closed client until ctx ends.
	if err := m.AssignPartitions(ctxWithin(t, 5*time.Second), []proto.TopicIDPartition{tp1}, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("assign after Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestRebuildWhileRunning: records expire while the manager cannot fetch (a long broker
// outage); when fetching resumes below the log start, the partition is rebuilt from the log
// start rather than left with a silent hole.
func TestRebuildWhileRunning(t *testing.T) {
	c := newCluster(t)
	m := newManager(t, c, t.TempDir())
	ctx := ctxT(t)
	assignReady(t, m, []proto.TopicIDPartition{tp0}, nil)
	old := segment(tp0, 0, 99)
	if err := m.AddSegment(ctx, old); err != nil {
		t.Fatal(err)
	}
	// Every fetch now fails with a retriable error, as when the partition has no leader.
	resume := failFetches(c)
	raw := rawClient(t, c)
	kept := segment(tp0, 100, 199)
	produceRaw(t, raw, 2, encode(t, finish(old, proto.CopySegmentFinished)), encode(t, kept), encode(t, finish(kept, proto.CopySegmentFinished)))
	o := kadm.Offsets{}
	o.Add(kadm.Offset{Topic: proto.TopicName, Partition: 2, At: 2}) // old's finish, at offset 1, expires unread
	if _, err := kadm.NewClient(raw).DeleteRecords(ctx, o); err != nil {
		t.Fatal(err)
	}
	resume()
	for {
		ch := m.Changed()
		if st := statsOf(m, 2); st.Applied == 4 {
			if st.Rebuilds != 1 {
				t.Fatalf("stats = %+v, want one rebuild", st)
			}
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("never caught up: %+v", statsOf(m, 2))
		}
	}
	all, err := m.Segments(tp0)
	if err != nil || len(all) != 1 || all[0].SegmentID != kept.SegmentID || all[0].State != proto.CopySegmentFinished {
		t.Fatalf("after rebuild: %v %v", all, err)
	}
}

// failFetches makes every fetch from c fail with NOT_LEADER_OR_FOLLOWER, a retriable error
// under which the consumer never advances, until the returned function is called.
func failFetches(c *kfake.Cluster) (stop func()) {
	var stopped atomic.Bool
	c.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if stopped.Load() {
			c.DropControl()
			return nil, nil, false
		}
		c.KeepControl()
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		for _, rt := range req.(*kmsg.FetchRequest).Topics {
			st := kmsg.NewFetchResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, 6
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return func() { stopped.Store(true) }
}
