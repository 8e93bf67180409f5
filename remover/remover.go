// Package remover is KIP-405's RemotePartitionRemover, which Apache Kafka designed and never
// built: for the metadata partitions it owns, it turns each DELETE_PARTITION_MARKED into
// DELETE_PARTITION_STARTED, deletes every remote segment of the user partition (through package
// tier: DELETE_SEGMENT_STARTED, storage delete, DELETE_SEGMENT_FINISHED), and publishes
// DELETE_PARTITION_FINISHED.
//
// The metadata topic is the record of progress: a remover that takes over a metadata partition,
// on this node or another, finds partitions still MARKED or STARTED and finishes them, skipping
// segments already deleted. Repeated markers (a controller failover publishes several) give one
// deletion: a marker of a partition already STARTED is an invalid transition the store drops.
//
// Exactly one remover must own a metadata partition at a time. Either the host broker says which
// it owns (SetOwned, from the metadata partitions it leads: KIP-405's design), or standalone
// removers share them through a Kafka consumer group (JoinGroup), which fails over by itself.
package remover

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rlmm"
	"github.com/stratalog/strata/rsm"
	"github.com/stratalog/strata/tier"
)

// Metadata is what the remover needs of a metadata manager; *rlmm.Manager implements it.
type Metadata interface {
	tier.Metadata
	PutPartitionDelete(ctx context.Context, d *proto.PartitionDeleteMetadata) error
	WatchMetadataPartitions(ctx context.Context, mps ...int32) error
	UnwatchMetadataPartitions(mps ...int32)
	MetadataPartitionReady(mp int32) error
	Changed() <-chan struct{}
	View() rlmm.View
}

// ErrClosed is returned by SetOwned and Own once the remover is closed.
var ErrClosed = errors.New("remover: closed")

// ErrConfig is wrapped by the error New returns for an invalid option; the message names it.
var ErrConfig = errors.New("remover: invalid configuration")

// Defaults.
const (
	DefaultConcurrency = 4
	DefaultMinBackoff  = 500 * time.Millisecond
	DefaultMaxBackoff  = time.Minute
)

// Option configures New: the functional-option interface of every package of Strata.
type Option interface{ apply(*Remover) }

type optionFunc func(*Remover)

func (f optionFunc) apply(r *Remover) { f(r) }

// WithBrokerID sets the broker id the events carry. Default 0.
func WithBrokerID(id int32) Option { return optionFunc(func(r *Remover) { r.brokerID = id }) }

// WithConcurrency bounds the partitions deleted at once (each deletes its segments with tier's
// own bounded concurrency). Default DefaultConcurrency.
// Must be positive.
func WithConcurrency(n int) Option {
	return optionFunc(func(r *Remover) {
		if n <= 0 {
			r.optErrs = append(r.optErrs, fmt.Errorf("%w: WithConcurrency(%d): must be positive", ErrConfig, n))
			return
		}
		r.concurrency = n
	})
}

// WithBackoff sets the first and the longest wait before retrying a partition whose deletion
// failed; each failure doubles the wait. Defaults 500ms and 1 minute. minWait must be
// positive and maxWait at least minWait.
func WithBackoff(minWait, maxWait time.Duration) Option {
	return optionFunc(func(r *Remover) {
		if minWait <= 0 || maxWait < minWait {
			r.optErrs = append(r.optErrs, fmt.Errorf("%w: WithBackoff(%s, %s): want 0 < min <= max", ErrConfig, minWait, maxWait))
			return
		}
		r.minBackoff, r.maxBackoff = minWait, maxWait
	})
}

// WithLogger sets the logger. Default zap.NewNop(); nil means zap.NewNop() too, as in every
// package of Strata.
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(r *Remover) {
		if l == nil {
			l = zap.NewNop()
		}
		r.log = l
	})
}

// WithTierOptions passes options to the tier.Tierer that deletes segments.
func WithTierOptions(opts ...tier.Option) Option {
	return optionFunc(func(r *Remover) { r.tierOpts = append(r.tierOpts, opts...) })
}

// Stats counts the remover's work. Pending and InProgress are partitions of owned metadata
// partitions whose deletion is not finished.
type Stats struct {
	Pending    int   // MARKED or STARTED, waiting for a worker or a retry
	InProgress int   // being deleted now
	Done       int64 // deletions this remover finished
	Failures   int64 // attempts that failed (and will be retried)
	LastError  error // the most recent failure, nil once that partition succeeds
}

// Remover deletes the partitions marked for deletion in the metadata partitions it owns. Its
// methods are safe for concurrent use.
type Remover struct {
	meta         Metadata
	tier         *tier.Tierer
	tierOpts     []tier.Option
	optErrs      []error // invalid options, returned by New
	brokerID     int32
	concurrency  int
	minBackoff   time.Duration
	maxBackoff   time.Duration
	log          *zap.Logger
	metReg       prometheus.Registerer // see WithMetrics
	metCollector prometheus.Collector  // registered on metReg; nil without
	groupMetrics atomic.Bool           // a group client reports on metReg (see groupClientMetrics)

	cancel context.CancelFunc
	done   chan struct{} // closed when run and every worker have returned
	wake   chan struct{} // buffered 1: a scan is wanted
	wg     sync.WaitGroup

	// mu guards what follows. It is never held while calling the metadata manager (which has
	// locks of its own) or the tierer, so that no lock order between them exists.
	mu       sync.Mutex
	owned    map[int32]bool
	inFlight map[proto.TopicIDPartition]*work
	retry    map[proto.TopicIDPartition]retryState
	timers   map[*time.Timer]bool
	pending  int
	stats    Stats
	closed   bool
}

type work struct {
	mp     int32
	cancel context.CancelFunc
}

type retryState struct {
	attempts int
	notUntil time.Time
}

// New starts a remover that publishes through meta and deletes from store. It owns nothing
// until SetOwned or JoinGroup.
//
// It returns an error wrapping ErrConfig, naming every invalid option at once, and starts
// nothing then.
func New(meta Metadata, store rsm.Manager, opts ...Option) (*Remover, error) {
	r := &Remover{
		meta: meta, concurrency: DefaultConcurrency, minBackoff: DefaultMinBackoff, maxBackoff: DefaultMaxBackoff,
		log: zap.NewNop(), done: make(chan struct{}), wake: make(chan struct{}, 1),
		owned: map[int32]bool{}, inFlight: map[proto.TopicIDPartition]*work{}, retry: map[proto.TopicIDPartition]retryState{},
		timers: map[*time.Timer]bool{},
	}
	for _, o := range opts {
		if o != nil {
			o.apply(r)
		}
	}
	if err := errors.Join(r.optErrs...); err != nil {
		return nil, err
	}
	tr, err := tier.New(meta, store, append([]tier.Option{tier.WithBrokerID(r.brokerID), tier.WithLogger(r.log)}, r.tierOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("%w: WithTierOptions: %w", ErrConfig, err)
	}
	r.tier = tr
	if err := r.registerMetrics(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(1)
	go r.run(ctx)
	go func() { r.wg.Wait(); close(r.done) }()
	return r, nil
}

// SetOwned makes mps the metadata partitions this remover owns: it starts watching those it
// did not own, and stops work on (and watching of) those it no longer owns. Work stopped
// half-way is finished by the next owner.
func (r *Remover) SetOwned(ctx context.Context, mps []int32) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	want := map[int32]bool{}
	for _, mp := range mps {
		want[mp] = true
	}
	var added, removed []int32
	for mp := range want {
		if !r.owned[mp] {
			added = append(added, mp)
		}
	}
	for mp := range r.owned {
		if !want[mp] {
			removed = append(removed, mp)
		}
	}
	r.mu.Unlock()
	return r.change(ctx, added, removed)
}

// Own adds mps to the metadata partitions owned; Disown removes them. After Close, Own returns
// ErrClosed and Disown does nothing: no partition is left watched.
func (r *Remover) Own(ctx context.Context, mps ...int32) error { return r.change(ctx, mps, nil) }

// Disown stops work on mps and stops watching them.
func (r *Remover) Disown(mps ...int32) { _ = r.change(context.Background(), nil, mps) }

func (r *Remover) change(ctx context.Context, added, removed []int32) error {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		if len(added) > 0 {
			return ErrClosed
		}
		return nil // Close stopped watching everything already
	}
	if len(removed) > 0 {
		r.mu.Lock()
		for _, mp := range removed {
			delete(r.owned, mp)
		}
		for _, w := range r.inFlight {
			if slices.Contains(removed, w.mp) {
				w.cancel()
			}
		}
		r.mu.Unlock()
		r.meta.UnwatchMetadataPartitions(removed...)
		r.log.Info("remover released metadata partitions", zap.Int32s("partitions", removed))
	}
	if len(added) > 0 {
		if err := r.meta.WatchMetadataPartitions(ctx, added...); err != nil {
			return fmt.Errorf("remover: watching metadata partitions %v: %w", added, err)
		}
		r.mu.Lock()
		if r.closed {
			// Close ran while watching began: it did not know of these, so stop them here.
			r.mu.Unlock()
			r.meta.UnwatchMetadataPartitions(added...)
			return ErrClosed
		}
		for _, mp := range added {
			r.owned[mp] = true
		}
		r.mu.Unlock()
		r.log.Info("remover owns metadata partitions", zap.Int32s("partitions", added))
	}
	r.wakeUp()
	return nil
}

// Owned returns the metadata partitions owned, ascending.
func (r *Remover) Owned() []int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.owned))
}

// Stats returns the remover's counters.
func (r *Remover) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Pending, s.InProgress = r.pending, len(r.inFlight)
	return s
}

// Close stops the remover: work in progress is cancelled (the next owner finishes it) and
// every goroutine it started has ended when Close returns. It stops watching what it owned.
// It returns nil; a second Close does nothing and returns nil. Own, SetOwned after Close
// return ErrClosed; Disown does nothing.
func (r *Remover) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	for t := range r.timers {
		t.Stop()
	}
	owned := slices.Collect(maps.Keys(r.owned))
	r.mu.Unlock()
	r.unregisterMetrics()
	r.cancel()
	<-r.done
	r.meta.UnwatchMetadataPartitions(owned...)
	return nil
}

func (r *Remover) wakeUp() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// quiet is how long the loop lets applied records settle before scanning again, so that a
// burst of records costs one scan, not one per batch.
const quiet = 50 * time.Millisecond

func (r *Remover) run(ctx context.Context) {
	defer r.wg.Done()
	for {
		changed := r.meta.Changed()
		r.scan(ctx)
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-changed:
			select {
			case <-ctx.Done():
				return
			case <-time.After(quiet):
			}
		}
	}
}

// scan starts a worker for each partition of an owned, ready metadata partition that is MARKED
// or STARTED and not being deleted or waiting to retry, as far as the concurrency allows.
func (r *Remover) scan(ctx context.Context) {
	r.mu.Lock()
	owned := slices.Collect(maps.Keys(r.owned))
	r.mu.Unlock()
	var ready []int32
	for _, mp := range owned {
		if r.meta.MetadataPartitionReady(mp) == nil {
			ready = append(ready, mp)
		}
	}
	if len(ready) == 0 {
		r.setPending(0)
		return
	}
	infos, err := r.meta.View().Partitions()
	if err != nil {
		r.log.Error("remover: listing partitions", zap.Error(err))
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	pending := 0
	for _, info := range infos {
		if !slices.Contains(ready, info.MetadataPartition) || !info.HasDeleteState || info.DeleteState == proto.DeletePartitionFinished {
			continue
		}
		tp := info.Partition
		if _, busy := r.inFlight[tp]; busy {
			continue
		}
		if rs, ok := r.retry[tp]; ok && now.Before(rs.notUntil) {
			pending++
			continue
		}
		if len(r.inFlight) >= r.concurrency || r.closed {
			pending++
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		r.inFlight[tp] = &work{mp: info.MetadataPartition, cancel: cancel}
		r.wg.Add(1)
		go r.worker(wctx, cancel, tp)
	}
	r.pending = pending
}

func (r *Remover) setPending(n int) {
	r.mu.Lock()
	r.pending = n
	r.mu.Unlock()
}

func (r *Remover) worker(ctx context.Context, cancel context.CancelFunc, tp proto.TopicIDPartition) {
	defer r.wg.Done()
	defer cancel()
	err := r.deletePartition(ctx, tp)
	r.mu.Lock()
	delete(r.inFlight, tp)
	switch {
	case err == nil:
		delete(r.retry, tp)
		r.stats.Done++
		if r.stats.LastError != nil && errors.Is(r.stats.LastError, errOf(tp)) {
			r.stats.LastError = nil
		}
	case ctx.Err() != nil:
		// Cancelled: the partition was disowned or the remover is closing; the next owner
		// resumes from what the topic says.
	default:
		rs := r.retry[tp]
		rs.attempts++
		wait := min(r.minBackoff<<min(rs.attempts-1, 20), r.maxBackoff)
		rs.notUntil = time.Now().Add(wait)
		r.retry[tp] = rs
		r.stats.Failures++
		r.stats.LastError = &PartitionError{Partition: tp, Attempts: rs.attempts, Err: err}
		r.log.Error("remover: deleting partition failed; will retry", zap.Stringer("partition", tp),
			zap.Int("attempts", rs.attempts), zap.Duration("retry.in", wait), zap.Error(err))
		if !r.closed {
			var t *time.Timer
			t = time.AfterFunc(wait, func() {
				r.mu.Lock()
				delete(r.timers, t)
				r.mu.Unlock()
				r.wakeUp()
			})
			r.timers[t] = true
		}
	}
	r.mu.Unlock()
	r.wakeUp()
}

// PartitionError is a failed attempt to delete one partition; the remover retries it with
// backoff, and Stats.LastError keeps the latest.
type PartitionError struct {
	Partition proto.TopicIDPartition
	Attempts  int
	Err       error
}

func (e *PartitionError) Error() string {
	return fmt.Sprintf("remover: deleting partition %s failed %d times, latest: %v", e.Partition, e.Attempts, e.Err)
}

func (e *PartitionError) Unwrap() error { return e.Err }

// Is matches another *PartitionError of the same partition, so a success can clear its error.
func (e *PartitionError) Is(target error) bool {
	t, ok := target.(*PartitionError)
	return ok && t.Partition == e.Partition
}

func errOf(tp proto.TopicIDPartition) error { return &PartitionError{Partition: tp} }

func (r *Remover) deletePartition(ctx context.Context, tp proto.TopicIDPartition) error {
	return FinishPartition(ctx, r.meta, r.tier, r.brokerID, tp, r.log)
}

// FinishPartition takes tp from its current delete state to DELETE_PARTITION_FINISHED:
// DELETE_PARTITION_STARTED if it is MARKED, every remaining segment deleted through t, then
// DELETE_PARTITION_FINISHED. Each step is idempotent, so running it again after a failure, or
// on another node, resumes the work. A partition with no delete state, or already gone, is left
// alone. The remover runs it for the partitions it owns; an operator's repair runs it directly.
func FinishPartition(ctx context.Context, meta Metadata, t *tier.Tierer, brokerID int32, tp proto.TopicIDPartition, log *zap.Logger) error {
	store := meta.View()
	state, ok, err := store.PartitionDeleteState(tp)
	if err != nil {
		if errors.Is(err, rlmm.ErrNotFound) {
			return nil // finished meanwhile
		}
		return err
	}
	if !ok || state == proto.DeletePartitionFinished {
		return nil
	}
	put := func(state proto.PartitionDeleteState) error {
		err := meta.PutPartitionDelete(ctx, &proto.PartitionDeleteMetadata{
			TopicIDPartition: tp, BrokerID: brokerID, EventTimestampMs: time.Now().UnixMilli(), State: state,
		})
		if err != nil {
			return fmt.Errorf("publishing %s for %s: %w", state, tp, err)
		}
		return nil
	}
	if state == proto.DeletePartitionMarked {
		if err := put(proto.DeletePartitionStarted); err != nil {
			return err
		}
		log.Info("deleting partition", zap.Stringer("partition", tp))
	}
	segs, err := store.Segments(tp)
	if err != nil && !errors.Is(err, rlmm.ErrNotFound) {
		return fmt.Errorf("listing segments of %s: %w", tp, err)
	}
	if len(segs) > 0 {
		if err := t.Delete(ctx, segs); err != nil {
			return err
		}
	}
	if err := put(proto.DeletePartitionFinished); err != nil {
		return err
	}
	log.Info("partition deleted", zap.Stringer("partition", tp), zap.Int("segments", len(segs)))
	return nil
}
