package remover

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/stratalog/strata/internal/testwait"
	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rlmm"
	"github.com/stratalog/strata/rsm"
	"github.com/stratalog/strata/rsm/local"
	"github.com/stratalog/strata/tier"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const numMeta = 4

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newCluster(t testing.TB) *kfake.Cluster {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(numMeta, proto.TopicName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// newNode starts a metadata manager, as one broker of the cluster has.
func newNode(t testing.TB, c *kfake.Cluster) *rlmm.Manager {
	t.Helper()
	m, err := rlmm.New(ctxT(t), rlmm.WithBootstrapServers(c.ListenAddrs()...), rlmm.WithCacheDir(t.TempDir()),
		rlmm.WithMetadataPartitions(numMeta), rlmm.WithReplicationFactor(1), rlmm.WithMinISR(1), rlmm.WithLogger(zap.NewNop()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func newStorage(t testing.TB) *local.Store {
	s, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// seed tiers n segments of tp through m and returns them.
func seed(t testing.TB, m *rlmm.Manager, store rsm.Manager, tp proto.TopicIDPartition, n int) {
	t.Helper()
	ctx := ctxT(t)
	mp := proto.MetadataPartition(tp, numMeta)
	if err := m.WatchMetadataPartitions(ctx, mp); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	data := rsm.SegmentData{LeaderEpochCheckpoint: []byte("0\n0\n")}
	for name, p := range map[string]*string{"log": &data.LogPath, "index": &data.OffsetIndexPath, "timeindex": &data.TimeIndexPath, "snapshot": &data.ProducerSnapshotPath} {
		*p = filepath.Join(dir, "0."+name)
		os.WriteFile(*p, []byte(name), 0o644)
	}
	tr, err := tier.New(m, store)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		start := int64(i) * 100
		seg := &proto.SegmentMetadata{SegmentID: proto.SegmentID{TopicIDPartition: tp, ID: proto.NewUUID()}, StartOffset: start, EndOffset: start + 99,
			LeaderEpochs: []proto.EpochEntry{{Epoch: 0, StartOffset: start}}, SegmentSizeInBytes: 10, State: proto.CopySegmentStarted, TxnIndexEmpty: true}
		if _, err := tr.Copy(ctx, seg, data); err != nil {
			t.Fatal(err)
		}
	}
}

func mark(t testing.TB, m *rlmm.Manager, tp proto.TopicIDPartition, times int) {
	t.Helper()
	for i := 0; i < times; i++ {
		if err := m.PutPartitionDelete(ctxT(t), &proto.PartitionDeleteMetadata{TopicIDPartition: tp, BrokerID: 9, EventTimestampMs: 1, State: proto.DeletePartitionMarked}); err != nil {
			t.Fatal(err)
		}
	}
}

// events reads every record of the metadata topic that concerns tp, in order.
func events(t testing.TB, c *kfake.Cluster, tp proto.TopicIDPartition) []proto.Record {
	t.Helper()
	mp := proto.MetadataPartition(tp, numMeta)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{proto.TopicName: {mp: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctxT(t), proto.TopicName)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup(proto.TopicName, mp)
	var out []proto.Record
	for next := int64(0); next < end.Offset; {
		fs := cl.PollFetches(ctxT(t))
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			next = r.Offset + 1
			rec, err := proto.Decode(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := proto.UserPartition(rec); ok && got == tp {
				out = append(out, rec)
			}
		})
	}
	return out
}

func countDeleteStates(recs []proto.Record) map[proto.PartitionDeleteState]int {
	n := map[proto.PartitionDeleteState]int{}
	for _, r := range recs {
		if d, ok := r.(*proto.PartitionDeleteMetadata); ok {
			n[d.State]++
		}
	}
	return n
}

// waitGone waits until m's store no longer knows tp: DELETE_PARTITION_FINISHED was applied.
func waitGone(t testing.TB, m *rlmm.Manager, tp proto.TopicIDPartition) {
	t.Helper()
	ctx := ctxT(t)
	mp := proto.MetadataPartition(tp, numMeta)
	for {
		ch := m.Changed()
		// Only a store that has read its metadata partition can say the partition is gone.
		if m.MetadataPartitionReady(mp) == nil {
			if _, _, err := m.View().PartitionDeleteState(tp); errors.Is(err, rlmm.ErrNotFound) {
				return
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			st, _, err := m.View().PartitionDeleteState(tp)
			t.Fatalf("partition %s never finished deleting: state %s, %v", tp, st, err)
		}
	}
}

func objectsOf(t testing.TB, s rsm.Manager, tp proto.TopicIDPartition) int {
	t.Helper()
	n := 0
	for _, err := range s.List(context.Background(), tp) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

func newTP(p int32) proto.TopicIDPartition {
	return proto.TopicIDPartition{TopicID: proto.NewUUID(), Topic: fmt.Sprintf("t%d", p), Partition: p}
}

func TestDuplicateMarkersDeleteOnce(t *testing.T) {
	c := newCluster(t)
	node := newNode(t, c)
	store := newStorage(t)
	tp := newTP(0)
	keep := newTP(1)
	seed(t, node, store, tp, 5)
	seed(t, node, store, keep, 3)
	mark(t, node, tp, 3)

	r := mustNew(t, node, store, WithLogger(zap.NewNop()))
	defer r.Close()
	all := []int32{0, 1, 2, 3}
	if err := r.SetOwned(ctxT(t), all); err != nil {
		t.Fatal(err)
	}
	waitGone(t, node, tp)
	n := countDeleteStates(events(t, c, tp))
	if n[proto.DeletePartitionMarked] != 3 || n[proto.DeletePartitionStarted] != 1 || n[proto.DeletePartitionFinished] != 1 {
		t.Fatalf("delete events = %v", n)
	}
	if objectsOf(t, store, tp) != 0 {
		t.Fatal("objects of the deleted partition left in storage")
	}
	if objectsOf(t, store, keep) == 0 {
		t.Fatal("objects of another partition were deleted")
	}
	// The deletion is counted when the remover's write of DELETE_PARTITION_FINISHED returns,
	// a moment after the node applied it.
	testwait.For(t, 30*time.Second, func() bool { return r.Stats().InProgress == 0 },
		func() string { return fmt.Sprintf("remover stats %+v, want nothing in progress", r.Stats()) })
	if s := r.Stats(); s.Done != 1 || s.InProgress != 0 {
		t.Fatalf("stats = %+v", s)
	}
}

// TestInstancesShareWork: three removers split the metadata partitions; every marked
// partition is deleted exactly once.
func TestInstancesShareWork(t *testing.T) {
	c := newCluster(t)
	store := newStorage(t)
	writer := newNode(t, c)
	var tps []proto.TopicIDPartition
	for i := int32(0); i < 8; i++ {
		tp := newTP(i)
		tps = append(tps, tp)
		seed(t, writer, store, tp, 2)
		mark(t, writer, tp, 2)
	}
	owners := [][]int32{{0}, {1, 2}, {3}}
	var removers []*Remover
	for _, mps := range owners {
		n := newNode(t, c)
		r := mustNew(t, n, store)
		defer r.Close()
		if err := r.SetOwned(ctxT(t), mps); err != nil {
			t.Fatal(err)
		}
		removers = append(removers, r)
	}
	for _, tp := range tps {
		waitGone(t, writer, tp)
		if n := countDeleteStates(events(t, c, tp)); n[proto.DeletePartitionStarted] != 1 || n[proto.DeletePartitionFinished] != 1 {
			t.Fatalf("%s: delete events %v", tp, n)
		}
		if objectsOf(t, store, tp) != 0 {
			t.Fatalf("%s: objects left", tp)
		}
	}
	var done int64
	for _, r := range removers {
		done += r.Stats().Done
	}
	if done != int64(len(tps)) {
		t.Fatalf("removers finished %d deletions, want %d", done, len(tps))
	}
}

// TestGroupSharesAndFailsOver: removers in a consumer group split the metadata partitions;
// when one leaves, the others take its partitions and finish what it left.
func TestGroupSharesAndFailsOver(t *testing.T) {
	c := newCluster(t)
	store := newStorage(t)
	writer := newNode(t, c)
	group := "g-" + proto.NewUUID().String()
	var rs []*Remover
	var gs []*Group
	for i := 0; i < 2; i++ {
		r := mustNew(t, newNode(t, c), store)
		g, err := JoinGroup(r, group, kgo.SeedBrokers(c.ListenAddrs()...))
		if err != nil {
			t.Fatal(err)
		}
		rs, gs = append(rs, r), append(gs, g)
	}
	// Wait until the group has handed out all four metadata partitions.
	testwait.For(t, 30*time.Second, func() bool { return len(rs[0].Owned())+len(rs[1].Owned()) == numMeta },
		func() string { return fmt.Sprintf("owned: %v and %v", rs[0].Owned(), rs[1].Owned()) })
	// The first member leaves; the second takes everything.
	gs[0].Close()
	rs[0].Close()
	testwait.For(t, 30*time.Second, func() bool { return len(rs[1].Owned()) == numMeta },
		func() string { return fmt.Sprintf("after failover the survivor owns %v", rs[1].Owned()) })
	var tps []proto.TopicIDPartition
	for i := int32(0); i < 6; i++ {
		tp := newTP(i)
		tps = append(tps, tp)
		seed(t, writer, store, tp, 2)
		mark(t, writer, tp, 1)
	}
	for _, tp := range tps {
		waitGone(t, writer, tp)
	}
	gs[1].Close()
	rs[1].Close()
	if err := gs[1].Err(); err != nil {
		t.Fatal(err)
	}
}

// crashAfter lets the first n mutating calls through and fails every later one, as a process
// that dies after its n-th step.
type crashAfter struct {
	steps atomic.Int64
	limit int64
}

var errCrash = errors.New("simulated crash")

func (c *crashAfter) step() error {
	if c.steps.Add(1) > c.limit {
		return errCrash
	}
	return nil
}

type crashMeta struct {
	*rlmm.Manager
	c *crashAfter
}

func (m *crashMeta) UpdateSegment(ctx context.Context, u *proto.SegmentMetadataUpdate) error {
	if err := m.c.step(); err != nil {
		return err
	}
	return m.Manager.UpdateSegment(ctx, u)
}

func (m *crashMeta) PutPartitionDelete(ctx context.Context, d *proto.PartitionDeleteMetadata) error {
	if err := m.c.step(); err != nil {
		return err
	}
	return m.Manager.PutPartitionDelete(ctx, d)
}

type crashStore struct {
	rsm.Manager
	c *crashAfter
}

func (s *crashStore) Delete(ctx context.Context, seg *proto.SegmentMetadata) error {
	if err := s.c.step(); err != nil {
		return err
	}
	return s.Manager.Delete(ctx, seg)
}

// TestCrashAfterEveryStepConverges kills the remover after each step of a deletion in turn
// (STARTED, each segment's three steps, FINISHED); a remover on another node then finishes it,
// and every run ends the same: no objects, the partition gone, FINISHED as the last event.
func TestCrashAfterEveryStepConverges(t *testing.T) {
	const segments = 3
	totalSteps := 1 + 3*segments + 1
	for limit := 0; limit <= totalSteps; limit++ {
		t.Run(fmt.Sprintf("after_%d_steps", limit), func(t *testing.T) {
			c := newCluster(t)
			store := newStorage(t)
			nodeA, nodeB := newNode(t, c), newNode(t, c)
			tp := newTP(0)
			seed(t, nodeA, store, tp, segments)
			mark(t, nodeA, tp, 1)
			mp := proto.MetadataPartition(tp, numMeta)

			crash := &crashAfter{limit: int64(limit)}
			a := mustNew(t, &crashMeta{nodeA, crash}, &crashStore{store, crash}, WithTierOptions(tier.WithConcurrency(1)), WithBackoff(time.Hour, time.Hour))
			if err := a.Own(ctxT(t), mp); err != nil {
				t.Fatal(err)
			}
			// Let A run until it has crashed (or finished, when the limit is past the end).
			testwait.For(t, 30*time.Second, func() bool { return crash.steps.Load() > int64(limit) || int(crash.steps.Load()) >= totalSteps },
				func() string { return fmt.Sprintf("remover A made %d steps", crash.steps.Load()) })
			testwait.For(t, 30*time.Second, func() bool { return a.Stats().InProgress == 0 },
				func() string { return fmt.Sprintf("remover A still at work: %+v", a.Stats()) })
			a.Close()

			b := mustNew(t, nodeB, store)
			defer b.Close()
			if err := b.Own(ctxT(t), mp); err != nil {
				t.Fatal(err)
			}
			waitGone(t, nodeB, tp)
			if n := objectsOf(t, store, tp); n != 0 {
				t.Fatalf("%d objects left", n)
			}
			evs := events(t, c, tp)
			last, ok := evs[len(evs)-1].(*proto.PartitionDeleteMetadata)
			if !ok || last.State != proto.DeletePartitionFinished {
				t.Fatalf("last event = %v", evs[len(evs)-1])
			}
			if n := countDeleteStates(evs); n[proto.DeletePartitionFinished] != 1 || n[proto.DeletePartitionStarted] != 1 {
				t.Fatalf("delete events = %v", n)
			}
		})
	}
}

// TestStorageKeepsRefusing: a storage that fails every delete leaves the partition STARTED,
// counts failures with backoff (no busy loop), and says why in Stats.
func TestStorageKeepsRefusing(t *testing.T) {
	c := newCluster(t)
	node := newNode(t, c)
	store := newStorage(t)
	tp := newTP(0)
	seed(t, node, store, tp, 2)
	mark(t, node, tp, 1)
	never := &crashAfter{limit: 0}
	r := mustNew(t, node, &crashStore{store, never}, WithBackoff(20*time.Millisecond, 40*time.Millisecond))
	defer r.Close()
	if err := r.Own(ctxT(t), proto.MetadataPartition(tp, numMeta)); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 20*time.Second, func() bool { return r.Stats().Failures >= 3 }, func() string { return fmt.Sprintf("stats = %+v", r.Stats()) })
	s := r.Stats()
	var pe *PartitionError
	if !errors.As(s.LastError, &pe) || pe.Partition != tp || !errors.Is(s.LastError, errCrash) {
		t.Fatalf("LastError = %v", s.LastError)
	}
	// Retries back off: of the next three failures, the second and third each come at least the
	// minimum backoff after the one before, however fast the machine, so they take 40ms or more.
	// Retrying without backoff would make them within a millisecond or so.
	start, from := time.Now(), s.Failures
	testwait.For(t, 20*time.Second, func() bool { return r.Stats().Failures >= from+3 }, func() string { return fmt.Sprintf("stats = %+v", r.Stats()) })
	if took := time.Since(start); took < 2*20*time.Millisecond {
		t.Fatalf("3 more failures within %s: retrying without the 20ms backoff", took)
	}
	if st, _, _ := node.View().PartitionDeleteState(tp); st != proto.DeletePartitionStarted {
		t.Fatalf("state = %s", st)
	}
}

// After Close, Own fails with ErrClosed and leaves nothing watched, Disown does nothing, and a
// second Close returns nil.
func TestOwnAfterClose(t *testing.T) {
	c := newCluster(t)
	m := newNode(t, c)
	r := mustNew(t, m, newStorage(t))
	if err := r.Own(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Own(ctxT(t), 2); !errors.Is(err, ErrClosed) {
		t.Errorf("Own after Close: %v, want ErrClosed", err)
	}
	if err := r.SetOwned(ctxT(t), []int32{3}); !errors.Is(err, ErrClosed) {
		t.Errorf("SetOwned after Close: %v, want ErrClosed", err)
	}
	r.Disown(1)
	for mp := int32(0); mp < numMeta; mp++ {
		if err := m.MetadataPartitionReady(mp); !errors.Is(err, rlmm.ErrNotFound) {
			t.Errorf("metadata partition %d after Close: %v, want not watched", mp, err)
		}
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
}

// mustNew is New for a test whose options are valid.
func mustNew(t testing.TB, meta Metadata, store rsm.Manager, opts ...Option) *Remover {
	t.Helper()
	r, err := New(meta, store, opts...)
	if err != nil {
		t.Fatalf("remover.New: %v", err)
	}
	return r
}

// Invalid options are all reported at once, and nothing is started.
func TestNewRefusesInvalidOptions(t *testing.T) {
	c := newCluster(t)
	r, err := New(newNode(t, c), newStorage(t), WithConcurrency(0), WithBackoff(time.Second, time.Millisecond))
	if r != nil || !errors.Is(err, ErrConfig) {
		t.Fatalf("New = %v, %v; want ErrConfig", r, err)
	}
	for _, want := range []string{"WithConcurrency(0)", "WithBackoff(1s, 1ms)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
