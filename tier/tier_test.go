package tier

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rlmm"
	"github.com/stratalog/strata/rsm"
	"github.com/stratalog/strata/rsm/local"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var tp = proto.TopicIDPartition{TopicID: proto.NewUUID(), Topic: "orders", Partition: 0}

type env struct {
	meta  *rlmm.Manager
	store *local.Store
	dir   string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := rlmm.New(ctx, rlmm.WithBootstrapServers(c.ListenAddrs()...), rlmm.WithCacheDir(t.TempDir()),
		rlmm.WithMetadataPartitions(3), rlmm.WithReplicationFactor(1), rlmm.WithMinISR(1), rlmm.WithLogger(zap.NewNop()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.AssignPartitions(ctx, []proto.TopicIDPartition{tp}, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitReady(ctx, tp); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &env{meta: m, store: st, dir: dir}
}

// segmentFiles writes the files of a closed segment whose log holds logBytes.
func segmentFiles(t *testing.T, logBytes []byte) rsm.SegmentData {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return rsm.SegmentData{
		LogPath:               write("00000000000000000000.log", logBytes),
		OffsetIndexPath:       write("00000000000000000000.index", []byte("offset-index")),
		TimeIndexPath:         write("00000000000000000000.timeindex", []byte("time-index")),
		ProducerSnapshotPath:  write("00000000000000000000.snapshot", []byte("snapshot")),
		LeaderEpochCheckpoint: []byte("0\n1\n0 0\n"),
	}
}

func newSegment(start, end int64) *proto.SegmentMetadata {
	return &proto.SegmentMetadata{
		SegmentID: proto.SegmentID{TopicIDPartition: tp, ID: proto.NewUUID()}, StartOffset: start, EndOffset: end,
		MaxTimestampMs: 1, LeaderEpochs: []proto.EpochEntry{{Epoch: 0, StartOffset: start}}, SegmentSizeInBytes: 100,
		State: proto.CopySegmentStarted, TxnIndexEmpty: true,
	}
}

func storedObjects(t *testing.T, s rsm.Manager) []rsm.Object {
	t.Helper()
	var out []rsm.Object
	for o, err := range s.List(context.Background(), tp) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, o)
	}
	return out
}

func TestCopyThenFetch(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tr := mustNew(t, e.meta, e.store, WithBrokerID(7))
	logBytes := bytes.Repeat([]byte("record-bytes "), 100)
	done, err := tr.Copy(ctx, newSegment(0, 99), segmentFiles(t, logBytes))
	if err != nil {
		t.Fatal(err)
	}
	if done.State != proto.CopySegmentFinished || done.BrokerID != 7 {
		t.Fatalf("copied segment: %+v", done)
	}
	got, ok, err := e.meta.Segment(done.SegmentID)
	if err != nil || !ok || got.State != proto.CopySegmentFinished {
		t.Fatalf("metadata after copy: %v %v %v", got, ok, err)
	}
	rc, seg, err := tr.Fetch(ctx, tp, 0, 50, 13)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(b, logBytes[13:]) || seg.SegmentID != done.SegmentID {
		t.Fatalf("fetched %d bytes, err %v", len(b), err)
	}
	if _, _, err := tr.Fetch(ctx, tp, 0, 100, 0); !errors.Is(err, ErrNoSegment) {
		t.Fatalf("fetch past the segment: %v", err)
	}
}

// failingStore fails the named operation; the rest pass through.
type failingStore struct {
	rsm.Manager
	mu        sync.Mutex
	failCopy  bool
	failIDs   map[proto.UUID]bool // Delete of these fails
	partCopy  bool                // on a failing copy, write the data first
	deletions int
}

var errInjected = errors.New("injected storage failure")

func (f *failingStore) Copy(ctx context.Context, seg *proto.SegmentMetadata, data rsm.SegmentData) ([]byte, error) {
	if f.failCopy {
		if f.partCopy {
			f.Manager.Copy(ctx, seg, data)
		}
		return nil, errInjected
	}
	return f.Manager.Copy(ctx, seg, data)
}

func (f *failingStore) Delete(ctx context.Context, seg *proto.SegmentMetadata) error {
	f.mu.Lock()
	f.deletions++
	fail := f.failIDs[seg.SegmentID.ID]
	f.mu.Unlock()
	if fail {
		return errInjected
	}
	return f.Manager.Delete(ctx, seg)
}

func TestFailedUploadIsCleanedUp(t *testing.T) {
	e := newEnv(t)
	fs := &failingStore{Manager: e.store, failCopy: true, partCopy: true}
	tr := mustNew(t, e.meta, fs)
	seg := newSegment(0, 99)
	_, err := tr.Copy(context.Background(), seg, segmentFiles(t, []byte("data")))
	if !errors.Is(err, errInjected) {
		t.Fatalf("err = %v, want the upload's error", err)
	}
	if objs := storedObjects(t, e.store); len(objs) != 0 {
		t.Fatalf("objects left after a failed upload: %v", objs)
	}
	// The segment went DELETE_SEGMENT_STARTED then DELETE_SEGMENT_FINISHED: it is gone.
	if _, ok, _ := e.meta.Segment(seg.SegmentID); ok {
		t.Fatal("segment still listed after cleanup")
	}
	if segs, _ := e.meta.Segments(tp); len(segs) != 0 {
		t.Fatalf("segments = %v", segs)
	}
}

// stallingStore's uploads and deletes wait until their context ends.
type stallingStore struct{ rsm.Manager }

func (s stallingStore) Copy(ctx context.Context, seg *proto.SegmentMetadata, data rsm.SegmentData) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (s stallingStore) Delete(ctx context.Context, seg *proto.SegmentMetadata) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestCopyReturnsByTheDeadline: an upload that stalls until the caller's deadline ends the copy
// there, with no cleanup past it (a cleanup under a context without the deadline would stall
// in Delete forever); the segment stays COPY_SEGMENT_STARTED, and Delete, as repair runs it,
// removes it.
func TestCopyReturnsByTheDeadline(t *testing.T) {
	e := newEnv(t)
	tr := mustNew(t, e.meta, stallingStore{e.store})
	seg := newSegment(0, 99)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := tr.Copy(ctx, seg, segmentFiles(t, []byte("data")))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "COPY_SEGMENT_STARTED") {
			t.Fatalf("err = %v, want the deadline, saying the segment stays COPY_SEGMENT_STARTED", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Copy still running 30s after its deadline")
	}
	stuck, ok, err := e.meta.Segment(seg.SegmentID)
	if err != nil || !ok || stuck.State != proto.CopySegmentStarted {
		t.Fatalf("segment after a copy that ran out of time: %v %v %v, want COPY_SEGMENT_STARTED", stuck, ok, err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer dcancel()
	if err := mustNew(t, e.meta, e.store).Delete(dctx, []proto.SegmentMetadata{stuck}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := e.meta.Segment(seg.SegmentID); ok {
		t.Fatal("segment still present after Delete")
	}
}

// flakyMeta fails the update to one state, once.
type flakyMeta struct {
	Metadata
	failAdd   bool
	failState proto.SegmentState
	fail      bool
}

func (f *flakyMeta) AddSegment(ctx context.Context, md *proto.SegmentMetadata) error {
	if f.failAdd {
		return errInjected
	}
	return f.Metadata.AddSegment(ctx, md)
}

func (f *flakyMeta) UpdateSegment(ctx context.Context, u *proto.SegmentMetadataUpdate) error {
	if f.fail && u.State == f.failState {
		f.fail = false
		return errInjected
	}
	return f.Metadata.UpdateSegment(ctx, u)
}

// TestCrashBetweenSteps fails each metadata step of a copy in turn and checks what is left is a
// state Delete (what repair runs) finishes, with nothing left in storage.
func TestCrashBetweenSteps(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	// The add fails: nothing was published, nothing stored.
	tr := mustNew(t, &flakyMeta{Metadata: e.meta, failAdd: true}, e.store)
	seg := newSegment(0, 9)
	if _, err := tr.Copy(ctx, seg, segmentFiles(t, []byte("a"))); !errors.Is(err, errInjected) {
		t.Fatalf("add failure: %v", err)
	}
	if objs := storedObjects(t, e.store); len(objs) != 0 {
		t.Fatalf("stored after a failed add: %v", objs)
	}

	// The finish fails: the data is stored and the segment stays COPY_SEGMENT_STARTED.
	tr = mustNew(t, &flakyMeta{Metadata: e.meta, failState: proto.CopySegmentFinished, fail: true}, e.store)
	seg = newSegment(10, 19)
	if _, err := tr.Copy(ctx, seg, segmentFiles(t, []byte("b"))); !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "repaired") {
		t.Fatalf("finish failure: %v", err)
	}
	stuck, ok, _ := e.meta.Segment(seg.SegmentID)
	if !ok || stuck.State != proto.CopySegmentStarted || len(storedObjects(t, e.store)) == 0 {
		t.Fatalf("after a failed finish: %v %v", stuck, ok)
	}
	// Deleting from DELETE_SEGMENT_STARTED's publish failing leaves it COPY_SEGMENT_STARTED;
	// a failing DELETE_SEGMENT_FINISHED leaves it DELETE_SEGMENT_STARTED with no data.
	tr = mustNew(t, &flakyMeta{Metadata: e.meta, failState: proto.DeleteSegmentFinished, fail: true}, e.store)
	if err := tr.Delete(ctx, []proto.SegmentMetadata{stuck}); err == nil {
		t.Fatal("delete with a failing finish succeeded")
	}
	half, ok, _ := e.meta.Segment(seg.SegmentID)
	if !ok || half.State != proto.DeleteSegmentStarted || len(storedObjects(t, e.store)) != 0 {
		t.Fatalf("after a failed delete finish: %v %v", half, ok)
	}
	// Running Delete again, as repair does, finishes it.
	if err := mustNew(t, e.meta, e.store).Delete(ctx, []proto.SegmentMetadata{half}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := e.meta.Segment(seg.SegmentID); ok {
		t.Fatal("segment still present after repair")
	}
}

func TestDeleteManyWithFailures(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tr := mustNew(t, e.meta, e.store, WithConcurrency(4))
	var segs []proto.SegmentMetadata
	for i := int64(0); i < 40; i++ {
		s, err := tr.Copy(ctx, newSegment(i*10, i*10+9), segmentFiles(t, []byte("x")))
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, *s)
	}
	fs := &failingStore{Manager: e.store, failIDs: map[proto.UUID]bool{segs[3].SegmentID.ID: true, segs[17].SegmentID.ID: true}}
	err := mustNew(t, e.meta, fs, WithConcurrency(4)).Delete(ctx, segs)
	var de *DeleteErrors
	if !errors.As(err, &de) || de.Deleted != 38 || len(de.Failed) != 2 || !errors.Is(err, errInjected) {
		t.Fatalf("err = %v", err)
	}
	left, _ := e.meta.Segments(tp)
	if len(left) != 2 || left[0].State != proto.DeleteSegmentStarted || left[1].State != proto.DeleteSegmentStarted {
		t.Fatalf("left = %v", left)
	}
	if err := tr.Delete(ctx, left); err != nil {
		t.Fatal(err)
	}
	if left, _ := e.meta.Segments(tp); len(left) != 0 {
		t.Fatalf("left after retry: %v", left)
	}
	if objs := storedObjects(t, e.store); len(objs) != 0 {
		t.Fatalf("objects left: %v", objs)
	}
}

// mustNew is New for a test whose options are valid.
func mustNew(t testing.TB, meta Metadata, store rsm.Manager, opts ...Option) *Tierer {
	t.Helper()
	tr, err := New(meta, store, opts...)
	if err != nil {
		t.Fatalf("tier.New: %v", err)
	}
	return tr
}

// Invalid options are all reported at once.
func TestNewRefusesInvalidOptions(t *testing.T) {
	tr, err := New(nil, nil, WithConcurrency(-1), WithClock(nil), WithBrokerID(1))
	if tr != nil || !errors.Is(err, ErrConfig) {
		t.Fatalf("New = %v, %v; want ErrConfig", tr, err)
	}
	for _, want := range []string{"WithConcurrency(-1)", "WithClock(nil)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
