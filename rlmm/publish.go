package rlmm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
)

// AddSegment publishes the metadata of a segment whose copy to remote storage is starting
// (Kafka's addRemoteLogSegmentMetadata). md.State must be COPY_SEGMENT_STARTED. It returns once
// this manager has applied the record; see publish for every outcome.
func (m *Manager) AddSegment(ctx context.Context, md *proto.SegmentMetadata) error {
	if md == nil {
		return fmt.Errorf("%w: nil segment metadata", ErrInvalidArgument)
	}
	return m.publish(ctx, md.SegmentID.TopicIDPartition, md)
}

// UpdateSegment publishes a segment's move to a new state (Kafka's
// updateRemoteLogSegmentMetadata): any state but COPY_SEGMENT_STARTED. It returns once this
// manager has applied the record; see publish for every outcome.
func (m *Manager) UpdateSegment(ctx context.Context, u *proto.SegmentMetadataUpdate) error {
	if u == nil {
		return fmt.Errorf("%w: nil segment update", ErrInvalidArgument)
	}
	return m.publish(ctx, u.SegmentID.TopicIDPartition, u)
}

// PutPartitionDelete publishes a user partition's move through deletion (Kafka's
// putRemotePartitionDeleteMetadata). It returns once this manager has applied the record; see
// publish for every outcome.
func (m *Manager) PutPartitionDelete(ctx context.Context, d *proto.PartitionDeleteMetadata) error {
	if d == nil {
		return fmt.Errorf("%w: nil partition-delete metadata", ErrInvalidArgument)
	}
	return m.publish(ctx, d.TopicIDPartition, d)
}

// produced is what the producer's promise reports.
type produced struct {
	offset int64
	err    error
}

// publish produces r to tp's metadata partition and waits until the consumer loop has applied
// it. A write returns by the earlier of ctx's deadline and the consume wait, with one of:
//
//   - nil: the record is in the topic (acks=all, idempotent) and this manager's store applied it;
//   - an error wrapping ErrInvalidArgument (and cache.ErrInvalidRecord): no store could apply
//     the record; nothing was produced;
//   - a *NotAppliedError: the store dropped the record (Published, at Offset), or, for a user
//     partition this manager leads and has ready, refused it before producing because the state
//     it holds proves it cannot apply (Published false, Offset -1). Reason says why;
//   - an *IncompleteError (matching ErrTimeout): the outcome was not known in time; Published
//     says whether the record is in the topic or may still reach it;
//   - ErrNotAssigned, ErrClosed, a *HaltError, or the producer's error (not published).
//
// The record is produced asynchronously, under the manager's own lifetime, never under ctx:
// franz-go fails every record buffered for a partition when the first one's context ends, and
// one caller giving up must not fail another's write.
func (m *Manager) publish(ctx context.Context, tp proto.TopicIDPartition, r proto.Record) (err error) {
	defer m.met.published(r, time.Now(), &err)
	if err := cache.CheckRecord(r); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	mp := proto.MetadataPartition(tp, m.cfg.numPartitions)
	if err := m.checkWritable(mp, tp); err != nil {
		return err
	}
	if err := m.refuse(mp, tp, r); err != nil {
		return err
	}
	val, err := proto.Encode(r)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, m.cfg.consumeWait, ErrTimeout)
	defer cancel()
	incomplete := func(published bool, offset int64) error {
		cause := context.Cause(ctx)
		if errors.Is(cause, ErrTimeout) {
			cause = fmt.Errorf("%w: consume wait %s", ErrTimeout, m.cfg.consumeWait)
		} else {
			cause = ctx.Err()
		}
		return &IncompleteError{Published: published, Partition: mp, Offset: offset, Cause: cause}
	}

	done := make(chan produced, 1) // the promise never blocks, even after publish returned
	m.client.TryProduce(m.lifetime, &kgo.Record{Topic: proto.TopicName, Partition: mp, Value: val}, func(rec *kgo.Record, err error) {
		done <- produced{rec.Offset, err}
	})
	var res produced
	select {
	case res = <-done:
	case <-ctx.Done():
		return incomplete(false, -1)
	}
	if res.err != nil {
		if m.isClosed() || errors.Is(res.err, kgo.ErrClientClosed) {
			return ErrClosed
		}
		return fmt.Errorf("rlmm: producing to %s-%d for %s: %w", proto.TopicName, mp, tp, res.err)
	}

	w := &waiter{offset: res.offset, ch: make(chan error, 1)}
	m.mu.Lock()
	st, ok := m.mps[mp]
	switch {
	case m.closed:
		m.mu.Unlock()
		return ErrClosed
	case !ok:
		m.mu.Unlock()
		return fmt.Errorf("%w: %s-%d was unassigned before offset %d was applied", ErrNotAssigned, proto.TopicName, mp, res.offset)
	case st.applied > res.offset:
		// Applied before this call could wait: the store says whether it was dropped.
		m.mu.Unlock()
		return m.outcome(mp, res.offset)
	case st.halt != nil && st.halt.Offset <= res.offset:
		m.mu.Unlock()
		return st.halt
	}
	st.waiters = append(st.waiters, w)
	m.mu.Unlock()

	select {
	case err := <-w.ch:
		return err
	case <-ctx.Done():
		m.removeWaiter(mp, w)
		select {
		case err := <-w.ch: // completed while we were giving up
			return err
		default:
		}
		return incomplete(true, res.offset)
	}
}

// outcome is the result of a write whose record at (mp, offset) has been applied or dropped.
func (m *Manager) outcome(mp int32, offset int64) error {
	d, dropped, err := m.store.DroppedAt(mp, offset)
	if err != nil {
		return fmt.Errorf("rlmm: reading the outcome of %s-%d offset %d: %w", proto.TopicName, mp, offset, err)
	}
	if !dropped {
		return nil
	}
	return &NotAppliedError{
		Segment:   proto.SegmentID{TopicIDPartition: d.UserPartition, ID: d.Segment},
		Partition: mp, Offset: offset, Published: true, Reason: d.Reason.Err(), Detail: d.Detail,
	}
}

// notApplied is the error the waiter of a dropped record receives.
func notApplied(d cache.Drop) *NotAppliedError {
	return &NotAppliedError{
		Segment:   proto.SegmentID{TopicIDPartition: d.UserPartition, ID: d.Segment},
		Partition: d.Partition, Offset: d.Offset, Published: true, Reason: d.Reason.Err(), Detail: d.Detail,
	}
}

// refuse returns a *NotAppliedError when tp is led by this manager and ready, and its store
// proves that r cannot apply: only the leader writes a partition's segment records, and
// everything it wrote before has been applied (each write waits for that), so nothing still in
// the topic can make the record valid. Otherwise, or for a partition this manager only follows
// or watches, the record is published and the store decides.
func (m *Manager) refuse(mp int32, tp proto.TopicIDPartition, r proto.Record) error {
	m.mu.Lock()
	up, ok := m.parts[tp]
	led := ok && up.leader && m.readyLocked(tp) == nil
	m.mu.Unlock()
	if !led {
		return nil
	}
	d, err := m.store.Preview(mp, r)
	if errors.Is(err, cache.ErrLoading) {
		return nil // the store holds nothing of the load yet; it decides once it does
	}
	if err != nil {
		// The store decides when it reads the record; refusing early is only a courtesy.
		m.log.Warn("could not check a write against the store; publishing it", zap.Stringer("partition", tp), zap.Error(err))
		return nil
	}
	if d == nil {
		return nil
	}
	e := notApplied(*d)
	e.Offset, e.Published = -1, false
	return e
}

func (m *Manager) checkWritable(mp int32, tp proto.TopicIDPartition) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	st, ok := m.mps[mp]
	if !ok {
		return fmt.Errorf("%w: %s maps to %s-%d, which this manager does not consume", ErrNotAssigned, tp, proto.TopicName, mp)
	}
	if st.halt != nil {
		return st.halt
	}
	return nil
}

func (m *Manager) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

func (m *Manager) removeWaiter(mp int32, w *waiter) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.mps[mp]
	if !ok {
		return
	}
	for i, x := range st.waiters {
		if x == w {
			st.waiters = append(st.waiters[:i], st.waiters[i+1:]...)
			return
		}
	}
}
