package rlmm

import (
	"errors"

	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
)

// The reads answer exactly as Kafka's RemoteLogMetadataCache does (see package cache), for
// user partitions assigned to this manager and ready: ErrNotFound for a partition not assigned,
// an error wrapping ErrNotReady while it loads. A ready partition with no metadata (nothing
// tiered yet, or all of it deleted) answers as an empty one: no segment, no highest offset,
// size 0. Kafka answers the same for a partition it has assigned, except that after
// DELETE_PARTITION_FINISHED it reports not found until the partition is assigned again.

// read runs q against the store once tp is ready, turning the store's not-found into the empty
// answer.
func read[T any](m *Manager, tp proto.TopicIDPartition, q func() (T, error)) (T, error) {
	var zero T
	if err := m.Ready(tp); err != nil {
		return zero, err
	}
	v, err := q()
	if errors.Is(err, cache.ErrNotFound) {
		return zero, nil
	}
	return v, err
}

type found[T any] struct {
	v  T
	ok bool
}

func readOpt[T any](m *Manager, tp proto.TopicIDPartition, q func() (T, bool, error)) (T, bool, error) {
	f, err := read(m, tp, func() (found[T], error) {
		v, ok, err := q()
		return found[T]{v, ok}, err
	})
	return f.v, f.ok, err
}

// SegmentFor returns the COPY_SEGMENT_FINISHED segment holding offset in leader epoch epoch
// (Kafka's remoteLogSegmentMetadata(tp, epoch, offset)), and false when there is none.
func (m *Manager) SegmentFor(tp proto.TopicIDPartition, epoch int32, offset int64) (proto.SegmentMetadata, bool, error) {
	return readOpt(m, tp, func() (proto.SegmentMetadata, bool, error) { return m.store.SegmentFor(tp, epoch, offset) })
}

// HighestOffsetForEpoch returns the highest offset copied to remote storage in leader epoch
// epoch, and false when none is.
func (m *Manager) HighestOffsetForEpoch(tp proto.TopicIDPartition, epoch int32) (int64, bool, error) {
	return readOpt(m, tp, func() (int64, bool, error) { return m.store.HighestOffsetForEpoch(tp, epoch) })
}

// Segments lists every segment of tp not yet DELETE_SEGMENT_FINISHED, by start offset.
func (m *Manager) Segments(tp proto.TopicIDPartition) ([]proto.SegmentMetadata, error) {
	return read(m, tp, func() ([]proto.SegmentMetadata, error) { return m.store.Segments(tp) })
}

// SegmentsForEpoch lists the segments of leader epoch epoch, referenced and unreferenced, by
// start offset.
func (m *Manager) SegmentsForEpoch(tp proto.TopicIDPartition, epoch int32) ([]proto.SegmentMetadata, error) {
	return read(m, tp, func() ([]proto.SegmentMetadata, error) { return m.store.SegmentsForEpoch(tp, epoch) })
}

// RemoteLogSizeForEpoch is the size of SegmentsForEpoch(tp, epoch) in bytes (Kafka's
// remoteLogSize(tp, epoch)).
func (m *Manager) RemoteLogSizeForEpoch(tp proto.TopicIDPartition, epoch int32) (int64, error) {
	return read(m, tp, func() (int64, error) { return m.store.RemoteLogSizeForEpoch(tp, epoch) })
}

// RemoteLogSize is the size in bytes of every segment of tp not yet DELETE_SEGMENT_FINISHED.
func (m *Manager) RemoteLogSize(tp proto.TopicIDPartition) (int64, error) {
	return read(m, tp, func() (int64, error) { return m.store.RemoteLogSize(tp) })
}

// Segment returns one segment's current metadata by id.
func (m *Manager) Segment(id proto.SegmentID) (proto.SegmentMetadata, bool, error) {
	return readOpt(m, id.TopicIDPartition, func() (proto.SegmentMetadata, bool, error) { return m.store.Segment(id) })
}

// PartitionDeleteState returns tp's partition-delete state, and false when it has none.
func (m *Manager) PartitionDeleteState(tp proto.TopicIDPartition) (proto.PartitionDeleteState, bool, error) {
	return readOpt(m, tp, func() (proto.PartitionDeleteState, bool, error) { return m.store.PartitionDeleteState(tp) })
}

// NextSegmentWithTxnIndex returns the first segment at or after (epoch, offset) whose
// transaction index is not empty (Kafka's nextSegmentWithTxnIndex).
func (m *Manager) NextSegmentWithTxnIndex(tp proto.TopicIDPartition, epoch int32, offset int64) (proto.SegmentMetadata, bool, error) {
	return readOpt(m, tp, func() (proto.SegmentMetadata, bool, error) { return m.store.NextSegmentWithTxnIndex(tp, epoch, offset) })
}

// SegmentForRange is SegmentFor with the offsets and change generation its answer holds for
// (cache.Store.SegmentForRange), for clients that keep answers: strata serve's plugin.
func (m *Manager) SegmentForRange(tp proto.TopicIDPartition, epoch int32, offset int64) (cache.SegmentRange, bool, error) {
	return readOpt(m, tp, func() (cache.SegmentRange, bool, error) { return m.store.SegmentForRange(tp, epoch, offset) })
}

// Generation returns the stripe of tp's change generation and its value now (cache.Store.Generation).
func (m *Manager) Generation(tp proto.TopicIDPartition) (stripe int, gen uint64) {
	return m.store.Generation(tp)
}

// Generations appends every stripe's change generation to dst (cache.Store.Generations).
func (m *Manager) Generations(dst []uint64) []uint64 { return m.store.Generations(dst) }

// GenerationsChanged returns a channel closed at the next change of a generation.
func (m *Manager) GenerationsChanged() <-chan struct{} { return m.store.GenerationsChanged() }
