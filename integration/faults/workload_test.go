//go:build faults

package faults

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/remover"
	"github.com/stratalog/strata/rlmm"
	"github.com/stratalog/strata/rsm"
	"github.com/stratalog/strata/rsm/s3"
	"github.com/stratalog/strata/tier"
)

const (
	metadataTopic      = "__remote_log_metadata"
	metadataPartitions = 50
	// consumeWait is the managers' remote.log.metadata.consume.wait.ms.
	consumeWait = 5 * time.Second
	// callDeadline is the deadline the publishers and the marker give each Copy, Delete and mark.
	callDeadline = 8 * time.Second
	// publishers is how many user partitions are tiered at once in each scenario.
	publishers = 3
	// doomedSegments is how many segments the partition the remover deletes holds.
	doomedSegments = 24
	// offsetsPerSegment is how many offsets each tiered segment holds.
	offsetsPerSegment = 100
)

// suite is what every scenario shares.
type suite struct {
	env    env
	c      *cluster
	proxy  *faultProxy
	prefix string // the run's S3 key prefix
	files  rsm.SegmentData
	size   int32
	strata string // the strata command, built for the run
	log    *zap.Logger
}

// managerOptions are the options of every metadata manager of the suite: the topic at RF 3 and
// min ISR 2, writes bounded by consumeWait.
func (s *suite) managerOptions(dir, clientID string) []rlmm.Option {
	return []rlmm.Option{
		rlmm.WithBootstrapServers(s.env.brokers...),
		rlmm.WithClientID(clientID),
		rlmm.WithCacheDir(dir),
		rlmm.WithMetadataPartitions(metadataPartitions),
		rlmm.WithReplicationFactor(3),
		rlmm.WithMinISR(2),
		rlmm.WithConsumeWait(consumeWait),
		rlmm.WithInitRetry(100*time.Millisecond, time.Minute),
		rlmm.WithLogger(s.log.Named(clientID)),
	}
}

func (s *suite) newManager(t testing.TB, dir, clientID string) *rlmm.Manager {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, err := newManagerCtx(ctx, s, dir, clientID)
	if err != nil {
		t.Fatalf("open a metadata manager: %v", err)
	}
	return m
}

func newManagerCtx(ctx context.Context, s *suite, dir, clientID string) (*rlmm.Manager, error) {
	return rlmm.New(ctx, s.managerOptions(dir, clientID)...)
}

// storeConfig is the S3 store of the run at endpoint: the fault proxy, or the server itself.
func (s *suite) storeConfig(endpoint string) s3.Config {
	return s3.Config{
		Bucket: s.env.bucket, Prefix: s.prefix, Region: s.env.region, Endpoint: endpoint, PathStyle: true,
		AccessKeyID: s.env.accessKey, SecretAccessKey: s3.Secret(s.env.secretKey),
	}
}

func (s *suite) newStore(t testing.TB) *s3.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := s3.New(ctx, s.storeConfig(s.proxy.URL), s3.WithLogger(s.log.Named("s3")))
	if err != nil {
		t.Fatalf("open the S3 store: %v", err)
	}
	return st
}

// writeSegmentFiles writes the files of the segment every copy uploads: a 16 KiB log and small
// indexes of random bytes (storage does not read them).
func writeSegmentFiles(dir string) (rsm.SegmentData, int32, error) {
	write := func(name string, n int) (string, error) {
		b := make([]byte, n)
		rand.Read(b)
		p := filepath.Join(dir, name)
		return p, os.WriteFile(p, b, 0o644)
	}
	var d rsm.SegmentData
	var err error
	for _, f := range []struct {
		path *string
		name string
		n    int
	}{
		{&d.LogPath, "00000000000000000000.log", 16 << 10},
		{&d.OffsetIndexPath, "00000000000000000000.index", 800},
		{&d.TimeIndexPath, "00000000000000000000.timeindex", 1200},
		{&d.ProducerSnapshotPath, "00000000000000000000.snapshot", 60},
	} {
		if *f.path, err = write(f.name, f.n); err != nil {
			return d, 0, err
		}
	}
	d.LeaderEpochCheckpoint = []byte("0\n1\n0 0\n")
	return d, 16 << 10, nil
}

// newSegment is the COPY_SEGMENT_STARTED metadata of the segment of tp holding
// [start, start+offsetsPerSegment).
func newSegment(tp proto.TopicIDPartition, start int64, size int32, broker int32) *proto.SegmentMetadata {
	now := time.Now().UnixMilli()
	return &proto.SegmentMetadata{
		SegmentID:          proto.SegmentID{TopicIDPartition: tp, ID: proto.NewUUID()},
		StartOffset:        start,
		EndOffset:          start + offsetsPerSegment - 1,
		BrokerID:           broker,
		MaxTimestampMs:     now,
		EventTimestampMs:   now,
		LeaderEpochs:       []proto.EpochEntry{{Epoch: 0, StartOffset: start}},
		SegmentSizeInBytes: size,
		State:              proto.CopySegmentStarted,
		TxnIndexEmpty:      true,
	}
}

// copier tiers one user partition's segments in order, as a broker's copy task does: the next
// segment starts after the highest offset copied, and a failed copy is tried again.
type copier struct {
	tp     proto.TopicIDPartition
	meta   recMeta
	tierer *tier.Tierer
	broker int32
	files  rsm.SegmentData
	size   int32
	next   int64
	copied int
}

// copyNext tiers the next segment once. After a failure it reads the state the segment's
// records would have set, as rlmm.IncompleteError advises: a write that did not learn its
// outcome may still be applied, and a segment that finished after all is not copied twice.
// incompleteWait bounds how long a copier waits for the fate of a write that returned
// incomplete: longer than the longest fault a scenario injects (a 12 s stop) and the cluster's
// failover after it.
const incompleteWait = 30 * time.Second

func (c *copier) copyNext() error {
	ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
	defer cancel()
	seg := newSegment(c.tp, c.next, c.size, c.broker)
	err := c.meta.rec.time(ctx, "Copy", c.tp, func() error {
		_, err := c.tierer.Copy(ctx, seg, c.files)
		return err
	})
	if err != nil {
		finished := func() bool {
			md, ok, rerr := c.meta.Segment(seg.SegmentID)
			return rerr == nil && ok && md.State == proto.CopySegmentFinished
		}
		// A write that did not learn its outcome in time may still reach the topic: a broker
		// stopped for longer than the consume wait keeps it in the producer until it is back.
		// A careful caller waits for its fate before copying the same offsets again, or the
		// late record finishes a copy beside the new one (an overlap).
		var inc *rlmm.IncompleteError
		wait := 500 * time.Millisecond
		if errors.As(err, &inc) {
			wait = incompleteWait
		}
		for deadline := time.Now().Add(wait); !finished(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				return err
			}
		}
	}
	c.next += offsetsPerSegment
	c.copied++
	return nil
}

// deleteOldest deletes the partition's oldest segment once more than keep are left, as
// retention does.
func (c *copier) deleteOldest(keep int) error {
	segs, err := c.meta.Segments(c.tp)
	if err != nil || len(segs) <= keep {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
	defer cancel()
	return c.meta.rec.time(ctx, "Delete", c.tp, func() error { return c.tierer.Delete(ctx, segs[:1]) })
}

// workload is a scenario's traffic: publishers tiering their partitions through one manager,
// and a partition the remover deletes through another.
type workload struct {
	s       *suite
	rec     *recorder
	pubMeta recMeta
	remMeta recMeta
	store   *s3.Store
	tierer  *tier.Tierer
	pubs    []*copier
	doomed  proto.TopicIDPartition
	rem     *remover.Remover
	marked  []proto.TopicIDPartition

	stop chan struct{}
	wg   sync.WaitGroup

	mu          sync.Mutex
	faultEnds   []faultEnd
	publishErrs []error
}

// newWorkload opens the managers and the store, and tiers doomedSegments segments of the
// partition to be deleted. withRemover starts a remover in this process owning every metadata
// partition; without it the scenario deletes the partition another way.
func newWorkload(t *testing.T, s *suite, name string, withRemover bool) *workload {
	t.Helper()
	w := &workload{s: s, rec: &recorder{}, stop: make(chan struct{})}
	pubMgr := s.newManager(t, t.TempDir(), "faults-publisher")
	remMgr := s.newManager(t, t.TempDir(), "faults-remover")
	w.store = s.newStore(t)
	w.pubMeta = recMeta{Manager: pubMgr, rec: w.rec, consumeWait: consumeWait}
	w.remMeta = recMeta{Manager: remMgr, rec: w.rec, consumeWait: consumeWait}
	t.Cleanup(func() {
		if w.rem != nil {
			w.rem.Close()
		}
		pubMgr.Close()
		remMgr.Close()
		w.store.Close()
	})
	tr, err := tier.New(w.pubMeta, w.store, tier.WithBrokerID(1), tier.WithLogger(s.log.Named("tier")))
	if err != nil {
		t.Fatal(err)
	}
	w.tierer = tr

	topicID := proto.NewUUID()
	var leaders []proto.TopicIDPartition
	for i := range publishers {
		tp := proto.TopicIDPartition{TopicID: topicID, Topic: "faults-" + name, Partition: int32(i)}
		leaders = append(leaders, tp)
		w.pubs = append(w.pubs, &copier{tp: tp, meta: w.pubMeta, tierer: w.tierer, broker: 1, files: s.files, size: s.size})
	}
	w.doomed = proto.TopicIDPartition{TopicID: topicID, Topic: "faults-" + name, Partition: publishers}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := pubMgr.AssignPartitions(ctx, append(leaders, w.doomed), nil); err != nil {
		t.Fatalf("assign: %v", err)
	}
	if err := pubMgr.WaitReady(ctx, append(leaders, w.doomed)...); err != nil {
		t.Fatalf("wait ready: %v", err)
	}
	seed := &copier{tp: w.doomed, meta: w.pubMeta, tierer: w.tierer, broker: 1, files: s.files, size: s.size}
	for seed.copied < doomedSegments {
		if err := seed.copyNext(); err != nil {
			t.Fatalf("tier segment %d of %s before the fault: %v", seed.copied, w.doomed, err)
		}
	}
	if withRemover {
		var err error
		w.rem, err = remover.New(w.remMeta, w.store, remover.WithBrokerID(2), remover.WithBackoff(200*time.Millisecond, 2*time.Second),
			remover.WithLogger(s.log.Named("remover")))
		if err != nil {
			t.Fatal(err)
		}
		all := make([]int32, metadataPartitions)
		for i := range all {
			all[i] = int32(i)
		}
		if err := w.rem.SetOwned(ctx, all); err != nil {
			t.Fatalf("remover: %v", err)
		}
	}
	return w
}

// start runs the publishers until finish: each tiers its partition's next segment, and deletes
// its oldest once it holds more than four.
func (w *workload) start() {
	for _, p := range w.pubs {
		w.wg.Go(func() {
			for {
				select {
				case <-w.stop:
					return
				default:
				}
				if err := p.copyNext(); err != nil {
					w.publishErr(fmt.Errorf("copy %s at %d: %w", p.tp, p.next, err))
					time.Sleep(200 * time.Millisecond)
					continue
				}
				if p.copied%3 == 0 {
					if err := p.deleteOldest(4); err != nil {
						w.publishErr(fmt.Errorf("delete the oldest segment of %s: %w", p.tp, err))
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

func (w *workload) publishErr(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.publishErrs = append(w.publishErrs, err)
}

// faultEnd is the end of one fault: recovery is measured from at until a Copy of each of tps
// succeeds, or was measured directly (took).
type faultEnd struct {
	at   time.Time
	tps  []string
	took time.Duration
}

// faultEnded records that a fault ended now; the publishers' partitions, and tps, recover from it.
func (w *workload) faultEnded(tps ...proto.TopicIDPartition) {
	all := w.pubTPs()
	for _, tp := range tps {
		all = append(all, tp.String())
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.faultEnds = append(w.faultEnds, faultEnd{at: time.Now(), tps: all})
}

// recoveredIn records a fault whose time to recover the scenario measured itself.
func (w *workload) recoveredIn(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.faultEnds = append(w.faultEnds, faultEnd{took: d})
}

// mark marks the doomed partition for deletion, trying again until a mark is acknowledged.
func (w *workload) mark(t testing.TB) {
	t.Helper()
	w.marked = append(w.marked, w.doomed)
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
		err := w.pubMeta.PutPartitionDelete(ctx, &proto.PartitionDeleteMetadata{
			TopicIDPartition: w.doomed, BrokerID: 1, EventTimestampMs: time.Now().UnixMilli(), State: proto.DeletePartitionMarked,
		})
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("mark %s for deletion: %v", w.doomed, err)
		}
	}
}

// finish stops the publishers once each has tiered a segment after the last fault, and waits
// until the remover has finished the marked partition.
func (w *workload) finish(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !w.recovered() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	close(w.stop)
	w.wg.Wait()
	if w.rem == nil {
		return
	}
	for time.Now().Before(deadline) {
		if w.rem.Stats().Done >= 1 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("the remover did not finish %s within a minute of the faults: %+v", w.doomed, w.rem.Stats())
}

// recovered reports whether every publisher has tiered a segment since the last fault ended.
func (w *workload) recovered() bool {
	_, ok := recoveryTime(w.rec.snapshot(), w.ends())
	return ok
}

func (w *workload) ends() []faultEnd {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]faultEnd(nil), w.faultEnds...)
}

func (w *workload) pubTPs() []string {
	var out []string
	for _, p := range w.pubs {
		out = append(out, p.tp.String())
	}
	return out
}

// recoveryTime is the longest time to recover over the faults that ended: from a fault's end
// to the moment every one of its partitions had a Copy succeed that started after it; false
// while some partition has had none.
func recoveryTime(calls []call, ends []faultEnd) (time.Duration, bool) {
	var worst time.Duration
	for _, end := range ends {
		if end.at.IsZero() {
			worst = max(worst, end.took)
			continue
		}
		for _, tp := range end.tps {
			var first time.Time
			for _, c := range calls {
				if c.Op == "Copy" && c.TP == tp && c.Err == "" && !c.Start.Before(end.at) {
					if done := c.Start.Add(c.Dur); first.IsZero() || done.Before(first) {
						first = done
					}
				}
			}
			if first.IsZero() {
				return 0, false
			}
			worst = max(worst, first.Sub(end.at))
		}
	}
	return worst, true
}

// doomedGone reports whether m's store no longer holds the partition's deletion state.
func doomedGone(m *rlmm.Manager, tp proto.TopicIDPartition) bool {
	_, ok, err := m.View().PartitionDeleteState(tp)
	return errors.Is(err, rlmm.ErrNotFound) || err == nil && !ok
}
