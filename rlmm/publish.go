package rlmm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/proto"
)

// AddSegment publishes the metadata of a segment whose copy to remote storage is starting
// (Kafka's addRemoteLogSegmentMetadata). md.State must be COPY_SEGMENT_STARTED. It returns once
// this manager has applied the record.
func (m *Manager) AddSegment(ctx context.Context, md *proto.SegmentMetadata) error {
	if md.State != proto.CopySegmentStarted {
		return fmt.Errorf("%w: adding segment %s in state %s: an add must be COPY_SEGMENT_STARTED", ErrInvalidArgument, md.SegmentID.ID, md.State)
	}
	if len(md.LeaderEpochs) == 0 || md.EndOffset < md.StartOffset {
		return fmt.Errorf("%w: segment %s: needs leader epochs and an end offset not below its start", ErrInvalidArgument, md.SegmentID.ID)
	}
	return m.publish(ctx, md.SegmentID.TopicIDPartition, md)
}

// UpdateSegment publishes a segment's move to a new state (Kafka's
// updateRemoteLogSegmentMetadata): any state but COPY_SEGMENT_STARTED. It returns once this
// manager has applied the record.
func (m *Manager) UpdateSegment(ctx context.Context, u *proto.SegmentMetadataUpdate) error {
	if u.State == proto.CopySegmentStarted || !u.State.Valid() {
		return fmt.Errorf("%w: updating segment %s to %s: an update may not be COPY_SEGMENT_STARTED", ErrInvalidArgument, u.SegmentID.ID, u.State)
	}
	return m.publish(ctx, u.SegmentID.TopicIDPartition, u)
}

// PutPartitionDelete publishes a user partition's move through deletion (Kafka's
// putRemotePartitionDeleteMetadata). It returns once this manager has applied the record.
func (m *Manager) PutPartitionDelete(ctx context.Context, d *proto.PartitionDeleteMetadata) error {
	if !d.State.Valid() {
		return fmt.Errorf("%w: partition-delete state %d", ErrInvalidArgument, int8(d.State))
	}
	return m.publish(ctx, d.TopicIDPartition, d)
}

// publish produces r to tp's metadata partition and waits until the consumer loop has applied
// it. Nothing is reported done unless it is in the topic (acks=all, idempotent) and applied.
func (m *Manager) publish(ctx context.Context, tp proto.TopicIDPartition, r proto.Record) (err error) {
	defer m.met.published(r, time.Now(), &err)
	mp := proto.MetadataPartition(tp, m.cfg.numPartitions)
	if err := m.checkWritable(mp, tp); err != nil {
		return err
	}
	val, err := proto.Encode(r)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, m.cfg.consumeWait, ErrTimeout)
	defer cancel()
	res := m.client.ProduceSync(ctx, &kgo.Record{Topic: proto.TopicName, Partition: mp, Value: val})
	rec, err := res.First()
	if err != nil {
		if errors.Is(context.Cause(ctx), ErrTimeout) {
			return fmt.Errorf("%w: producing to %s-%d for %s did not complete within %s: %v", ErrTimeout, proto.TopicName, mp, tp, m.cfg.consumeWait, err)
		}
		if m.isClosed() {
			return ErrClosed
		}
		return fmt.Errorf("rlmm: producing to %s-%d for %s: %w", proto.TopicName, mp, tp, err)
	}

	w := &waiter{offset: rec.Offset, ch: make(chan error, 1)}
	m.mu.Lock()
	st, ok := m.mps[mp]
	switch {
	case m.closed:
		m.mu.Unlock()
		return ErrClosed
	case !ok:
		m.mu.Unlock()
		return fmt.Errorf("%w: %s-%d was unassigned before offset %d was applied", ErrNotAssigned, proto.TopicName, mp, rec.Offset)
	case st.applied > rec.Offset:
		m.mu.Unlock()
		return nil
	case st.halt != nil && st.halt.Offset <= rec.Offset:
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
		if errors.Is(context.Cause(ctx), ErrTimeout) {
			return fmt.Errorf("%w: %s-%d offset %d (for %s) not applied within %s", ErrTimeout, proto.TopicName, mp, rec.Offset, tp, m.cfg.consumeWait)
		}
		return ctx.Err()
	}
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
