// Package tier is the broker-side work that combines metadata and storage: the part of Kafka's
// RemoteLogManager a Go broker would otherwise write itself. Copy tiers a closed segment
// (COPY_SEGMENT_STARTED, upload, COPY_SEGMENT_FINISHED, with cleanup when the upload fails);
// Delete removes segments (DELETE_SEGMENT_STARTED, delete, DELETE_SEGMENT_FINISHED); Fetch
// streams a segment's bytes for an offset.
//
// Every step is an event in the metadata topic before or after a storage call, so a crash
// between any two steps leaves a state an operator's tool can see and finish: a segment stuck
// in COPY_SEGMENT_STARTED or DELETE_SEGMENT_STARTED, which Delete finishes.
//
// tier decides nothing about what to tier or when; that is the broker's policy.
package tier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rsm"
)

// Metadata is what tier needs of a metadata manager; *rlmm.Manager implements it. Each write
// returns once the event is in the metadata topic and applied locally.
type Metadata interface {
	AddSegment(ctx context.Context, md *proto.SegmentMetadata) error
	UpdateSegment(ctx context.Context, u *proto.SegmentMetadataUpdate) error
	SegmentFor(tp proto.TopicIDPartition, epoch int32, offset int64) (proto.SegmentMetadata, bool, error)
}

// ErrNoSegment: Fetch found no COPY_SEGMENT_FINISHED segment holding the offset.
var ErrNoSegment = errors.New("tier: no remote segment holds the offset")

// DefaultConcurrency bounds how many segments Delete works on at once.
const DefaultConcurrency = 16

// Tierer runs the workflows for one broker. It is safe for concurrent use.
type Tierer struct {
	meta        Metadata
	store       rsm.Manager
	brokerID    int32
	concurrency int
	now         func() time.Time
	log         *zap.Logger
	met         *metrics // nil without WithMetrics
	optErrs     []error  // invalid options, returned by New
}

// ErrConfig is wrapped by the error New returns for an invalid option; the message names it.
var ErrConfig = errors.New("tier: invalid configuration")

// Option configures New.
type Option interface{ apply(*Tierer) }

type optionFunc func(*Tierer)

func (f optionFunc) apply(t *Tierer) { f(t) }

// WithBrokerID sets the broker id the events carry. Default 0.
func WithBrokerID(id int32) Option { return optionFunc(func(t *Tierer) { t.brokerID = id }) }

// WithConcurrency bounds the segments Delete works on at once. Default DefaultConcurrency.
// Must be positive.
func WithConcurrency(n int) Option {
	return optionFunc(func(t *Tierer) {
		if n <= 0 {
			t.optErrs = append(t.optErrs, fmt.Errorf("%w: WithConcurrency(%d): must be positive", ErrConfig, n))
			return
		}
		t.concurrency = n
	})
}

// WithClock sets the clock of the events' timestamps. Default time.Now. Must not be nil.
func WithClock(now func() time.Time) Option {
	return optionFunc(func(t *Tierer) {
		if now == nil {
			t.optErrs = append(t.optErrs, fmt.Errorf("%w: WithClock(nil)", ErrConfig))
			return
		}
		t.now = now
	})
}

// WithLogger sets the logger. Default zap.NewNop(); nil means zap.NewNop() too, as in every
// package of Strata.
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(t *Tierer) {
		if l == nil {
			l = zap.NewNop()
		}
		t.log = l
	})
}

// New returns a Tierer publishing through meta and storing in store, or an error wrapping
// ErrConfig that names every invalid option at once.
func New(meta Metadata, store rsm.Manager, opts ...Option) (*Tierer, error) {
	t := &Tierer{meta: meta, store: store, concurrency: DefaultConcurrency, now: time.Now, log: zap.NewNop()}
	for _, o := range opts {
		if o != nil {
			o.apply(t)
		}
	}
	if err := errors.Join(t.optErrs...); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Tierer) update(ctx context.Context, id proto.SegmentID, state proto.SegmentState, custom []byte) error {
	return t.meta.UpdateSegment(ctx, &proto.SegmentMetadataUpdate{
		SegmentID: id, BrokerID: t.brokerID, EventTimestampMs: t.now().UnixMilli(), CustomMetadata: custom, State: state,
	})
}

// Copy tiers one closed segment: it publishes seg (which must be COPY_SEGMENT_STARTED, with a
// fresh segment id), uploads data, and publishes COPY_SEGMENT_FINISHED with the custom metadata
// the storage returned. It returns the segment as finished.
//
// When the upload fails, Copy cleans up as Kafka's RemoteLogManager does: it publishes
// DELETE_SEGMENT_STARTED, deletes whatever was uploaded, publishes DELETE_SEGMENT_FINISHED, and
// returns the upload's error (joined with any cleanup error). When publishing the finish fails,
// the segment stays COPY_SEGMENT_STARTED with its data stored: an operator's repair deletes it.
//
// Copy returns by ctx's deadline: the cleanup runs within it too. An upload that failed because
// ctx ended (its deadline passed, or the caller gave up) is not cleaned up, since no time is
// left: the segment stays COPY_SEGMENT_STARTED, as after a crash, until Delete (which repair and
// the broker's retention run) removes it.
func (t *Tierer) Copy(ctx context.Context, seg *proto.SegmentMetadata, data rsm.SegmentData) (_ *proto.SegmentMetadata, err error) {
	defer func() {
		if err != nil {
			t.met.copyFailed(seg.SegmentID.TopicIDPartition)
		}
	}()
	if seg.State != proto.CopySegmentStarted {
		return nil, fmt.Errorf("tier: copy of segment %s: state %s, want COPY_SEGMENT_STARTED", seg.SegmentID.ID, seg.State)
	}
	md := *seg
	md.BrokerID = t.brokerID
	md.EventTimestampMs = t.now().UnixMilli()
	if err := t.meta.AddSegment(ctx, &md); err != nil {
		return nil, fmt.Errorf("tier: copy of %s: publishing COPY_SEGMENT_STARTED: %w", seg.SegmentID, err)
	}
	t.met.copyStarted(md.SegmentID.TopicIDPartition)
	custom, upErr := t.store.Copy(ctx, &md, data)
	if upErr != nil {
		if ctx.Err() != nil {
			t.log.Warn("segment upload failed at the caller's deadline; the segment stays COPY_SEGMENT_STARTED until deleted",
				zap.Stringer("segment", md.SegmentID), zap.Error(upErr))
			return nil, fmt.Errorf("tier: copy of %s: upload: %w (no time was left to clean up: the segment stays COPY_SEGMENT_STARTED until deleted)",
				md.SegmentID, upErr)
		}
		t.log.Warn("segment upload failed; cleaning up", zap.Stringer("segment", md.SegmentID), zap.Error(upErr))
		cleanErr := t.deleteOne(ctx, &md)
		if cleanErr != nil {
			return nil, errors.Join(fmt.Errorf("tier: copy of %s: upload: %w", md.SegmentID, upErr),
				fmt.Errorf("tier: cleaning up after the failed upload: %w", cleanErr))
		}
		return nil, fmt.Errorf("tier: copy of %s: upload: %w", md.SegmentID, upErr)
	}
	if err := t.update(ctx, md.SegmentID, proto.CopySegmentFinished, custom); err != nil {
		return nil, fmt.Errorf("tier: copy of %s: uploaded, but publishing COPY_SEGMENT_FINISHED failed (the segment stays COPY_SEGMENT_STARTED until repaired): %w", md.SegmentID, err)
	}
	md.State = proto.CopySegmentFinished
	md.CustomMetadata = custom
	t.met.copyFinished(md.SegmentID.TopicIDPartition, md.SegmentSizeInBytes)
	return &md, nil
}

// deleteOne runs the three steps of deleting one segment.
func (t *Tierer) deleteOne(ctx context.Context, seg *proto.SegmentMetadata) (err error) {
	defer func() {
		if err != nil {
			t.met.deleteFailed(seg.SegmentID.TopicIDPartition)
		}
	}()
	if seg.State != proto.DeleteSegmentStarted {
		if err := t.update(ctx, seg.SegmentID, proto.DeleteSegmentStarted, nil); err != nil {
			return fmt.Errorf("publishing DELETE_SEGMENT_STARTED for %s: %w", seg.SegmentID, err)
		}
	}
	t.met.deleteStarted(seg.SegmentID.TopicIDPartition, 1)
	if err := t.store.Delete(ctx, seg); err != nil {
		return fmt.Errorf("deleting %s from storage: %w", seg.SegmentID, err)
	}
	if err := t.update(ctx, seg.SegmentID, proto.DeleteSegmentFinished, nil); err != nil {
		return fmt.Errorf("publishing DELETE_SEGMENT_FINISHED for %s: %w", seg.SegmentID, err)
	}
	return nil
}

// SegmentError is one segment Delete could not finish.
type SegmentError struct {
	Segment proto.SegmentID
	Err     error
}

func (e *SegmentError) Error() string { return "tier: " + e.Segment.String() + ": " + e.Err.Error() }
func (e *SegmentError) Unwrap() error { return e.Err }

// DeleteErrors lists the segments a Delete could not finish; the others were deleted. Its
// Unwrap gives each *SegmentError, so errors.Is and errors.As see every cause.
type DeleteErrors struct {
	Deleted int
	Failed  []*SegmentError
}

func (e *DeleteErrors) Error() string {
	msg := fmt.Sprintf("tier: %d of %d segments not deleted", len(e.Failed), len(e.Failed)+e.Deleted)
	if len(e.Failed) > 0 {
		msg += "; first: " + e.Failed[0].Error()
	}
	return msg
}

func (e *DeleteErrors) Unwrap() []error {
	out := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		out[i] = f
	}
	return out
}

// Delete deletes segs, each in any state but DELETE_SEGMENT_FINISHED: it publishes
// DELETE_SEGMENT_STARTED (unless the segment already is), deletes the data, and publishes
// DELETE_SEGMENT_FINISHED, for at most the configured number of segments at once. Storage
// deletes go in batches where the storage supports them (rsm.BatchDeleter). A segment that
// fails does not stop the others; the result is nil or a *DeleteErrors.
func (t *Tierer) Delete(ctx context.Context, segs []proto.SegmentMetadata) error {
	var (
		mu     sync.Mutex
		failed []*SegmentError
	)
	fail := func(id proto.SegmentID, err error) {
		mu.Lock()
		failed = append(failed, &SegmentError{Segment: id, Err: err})
		mu.Unlock()
		t.met.deleteFailed(id.TopicIDPartition)
	}
	t.met.deleteLag(segs)
	for start := 0; start < len(segs); start += t.concurrency * 32 {
		chunk := segs[start:min(start+t.concurrency*32, len(segs))]
		// Step 1: DELETE_SEGMENT_STARTED for every segment of the chunk.
		started := make([]bool, len(chunk))
		t.parallel(len(chunk), func(i int) {
			if chunk[i].State == proto.DeleteSegmentStarted {
				started[i] = true
				return
			}
			if err := t.update(ctx, chunk[i].SegmentID, proto.DeleteSegmentStarted, nil); err != nil {
				fail(chunk[i].SegmentID, fmt.Errorf("publishing DELETE_SEGMENT_STARTED: %w", err))
				return
			}
			started[i] = true
		})
		// Step 2: delete the data, in as few requests as the storage allows.
		var batch []*proto.SegmentMetadata
		var idx []int
		for i := range chunk {
			if started[i] {
				batch = append(batch, &chunk[i])
				idx = append(idx, i)
			}
		}
		for _, s := range batch {
			t.met.deleteStarted(s.SegmentID.TopicIDPartition, 1)
		}
		errs := rsm.DeleteBatch(ctx, t.store, batch)
		// Step 3: DELETE_SEGMENT_FINISHED for those whose data is gone.
		t.parallel(len(batch), func(k int) {
			id := chunk[idx[k]].SegmentID
			if errs[k] != nil {
				fail(id, fmt.Errorf("deleting from storage (the segment stays DELETE_SEGMENT_STARTED): %w", errs[k]))
				return
			}
			if err := t.update(ctx, id, proto.DeleteSegmentFinished, nil); err != nil {
				fail(id, fmt.Errorf("publishing DELETE_SEGMENT_FINISHED: %w", err))
				return
			}
			t.met.deleted(batch[k])
		})
	}
	if len(failed) == 0 {
		return nil
	}
	return &DeleteErrors{Deleted: len(segs) - len(failed), Failed: failed}
}

// parallel runs fn(0..n-1) on at most t.concurrency goroutines and waits for them all.
func (t *Tierer) parallel(n int, fn func(int)) {
	sem := make(chan struct{}, t.concurrency)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}(i)
	}
	wg.Wait()
}

// Fetch finds the COPY_SEGMENT_FINISHED segment holding offset in leader epoch epoch and
// returns its log bytes from position to the end, with the segment. position is a byte
// position in the segment's log, as the broker finds it from the segment's offset index.
// ErrNoSegment when no segment holds the offset. The caller closes the stream.
func (t *Tierer) Fetch(ctx context.Context, tp proto.TopicIDPartition, epoch int32, offset, position int64) (_ io.ReadCloser, _ proto.SegmentMetadata, err error) {
	defer func() { t.met.fetchDone(tp, err) }()
	seg, ok, err := t.meta.SegmentFor(tp, epoch, offset)
	if err != nil {
		return nil, seg, fmt.Errorf("tier: fetch %s epoch %d offset %d: %w", tp, epoch, offset, err)
	}
	if !ok {
		return nil, seg, fmt.Errorf("%w: %s epoch %d offset %d", ErrNoSegment, tp, epoch, offset)
	}
	rc, err := t.store.FetchLog(ctx, &seg, position, rsm.EndOfLog)
	if err != nil {
		return nil, seg, fmt.Errorf("tier: fetch %s offset %d from segment %s: %w", tp, offset, seg.SegmentID.ID, err)
	}
	return t.met.counting(tp, rc), seg, nil
}
