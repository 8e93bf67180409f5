package rlmm

import (
	"errors"
	"fmt"
	"io"

	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
)

// View is the read-only side of the manager's store: every query the store answers, and
// nothing that writes. It answers from the store as it is, whatever is assigned or ready: a tool
// that reads a whole cluster's metadata, or a remover that watches whole metadata partitions,
// uses it; a broker reading the partitions it was assigned uses the Manager's own methods, which
// wait for readiness.
//
// Writes (records applied, skips, resets) go through the Manager only, which keeps each metadata
// partition's applied offset and its waiters in step with the store.
//
// A query about a user partition the store does not know returns an error matching both
// ErrNotFound and cache.ErrNotFound. After Close every query fails with an error matching
// cache.ErrClosed.
type View interface {
	// SegmentFor is cache.Store.SegmentFor: the COPY_SEGMENT_FINISHED segment holding offset in
	// leader epoch epoch (Kafka's remoteLogSegmentMetadata(tp, epoch, offset)).
	SegmentFor(tp proto.TopicIDPartition, epoch int32, offset int64) (proto.SegmentMetadata, bool, error)
	// NextSegmentWithTxnIndex is cache.Store.NextSegmentWithTxnIndex.
	NextSegmentWithTxnIndex(tp proto.TopicIDPartition, epoch int32, offset int64) (proto.SegmentMetadata, bool, error)
	// HighestOffsetForEpoch is cache.Store.HighestOffsetForEpoch.
	HighestOffsetForEpoch(tp proto.TopicIDPartition, epoch int32) (int64, bool, error)
	// Segments is cache.Store.Segments: every segment not DELETE_SEGMENT_FINISHED, by start offset.
	Segments(tp proto.TopicIDPartition) ([]proto.SegmentMetadata, error)
	// SegmentsForEpoch is cache.Store.SegmentsForEpoch.
	SegmentsForEpoch(tp proto.TopicIDPartition, epoch int32) ([]proto.SegmentMetadata, error)
	// RemoteLogSizeForEpoch is cache.Store.RemoteLogSizeForEpoch.
	RemoteLogSizeForEpoch(tp proto.TopicIDPartition, epoch int32) (int64, error)
	// RemoteLogSize is cache.Store.RemoteLogSize.
	RemoteLogSize(tp proto.TopicIDPartition) (int64, error)
	// Segment is cache.Store.Segment: one segment's current metadata by id.
	Segment(id proto.SegmentID) (proto.SegmentMetadata, bool, error)
	// PartitionDeleteState is cache.Store.PartitionDeleteState.
	PartitionDeleteState(tp proto.TopicIDPartition) (proto.PartitionDeleteState, bool, error)
	// Partitions is cache.Store.Partitions: every user partition the store knows.
	Partitions() ([]cache.PartitionInfo, error)
	// NextOffset is cache.Store.NextOffset: where metadata partition mp's consumer resumes.
	NextOffset(mp int32) (int64, error)
	// Offsets is cache.Store.Offsets: the next offset of every metadata partition seen.
	Offsets() (map[int32]int64, error)
	// Skipped is cache.Store.Skipped: every record an operator or WithSkipBadRecords skipped.
	Skipped() ([]cache.SkippedRecord, error)
	// Dropped is cache.Store.Dropped: every record the store did not apply, with why, by
	// metadata partition and offset (kept until the metadata partition is rebuilt).
	Dropped() ([]cache.DroppedRecord, error)
	// DroppedAt is cache.Store.DroppedAt: the drop of the record at (mp, offset), if it was.
	DroppedAt(mp int32, offset int64) (cache.DroppedRecord, bool, error)
	// Check is cache.Store.Check: the store verified against its own invariants.
	Check() error
	// Dump is cache.Store.Dump: every row, in a stable order.
	Dump(w io.Writer) error
}

// View returns the read-only view of the manager's store. It stays valid until Close.
func (m *Manager) View() View { return storeView{m.store} }

// storeView forwards the queries of a store and hides its writes.
type storeView struct{ s *cache.Store }

// notFoundErr makes the store's not-found also match ErrNotFound, so that a caller needs only
// this package's sentinels.
func notFoundErr(err error) error {
	if err != nil && errors.Is(err, cache.ErrNotFound) && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

func (v storeView) SegmentFor(tp proto.TopicIDPartition, epoch int32, offset int64) (proto.SegmentMetadata, bool, error) {
	m, ok, err := v.s.SegmentFor(tp, epoch, offset)
	return m, ok, notFoundErr(err)
}

func (v storeView) NextSegmentWithTxnIndex(tp proto.TopicIDPartition, epoch int32, offset int64) (proto.SegmentMetadata, bool, error) {
	m, ok, err := v.s.NextSegmentWithTxnIndex(tp, epoch, offset)
	return m, ok, notFoundErr(err)
}

func (v storeView) HighestOffsetForEpoch(tp proto.TopicIDPartition, epoch int32) (int64, bool, error) {
	o, ok, err := v.s.HighestOffsetForEpoch(tp, epoch)
	return o, ok, notFoundErr(err)
}

func (v storeView) Segments(tp proto.TopicIDPartition) ([]proto.SegmentMetadata, error) {
	s, err := v.s.Segments(tp)
	return s, notFoundErr(err)
}

func (v storeView) SegmentsForEpoch(tp proto.TopicIDPartition, epoch int32) ([]proto.SegmentMetadata, error) {
	s, err := v.s.SegmentsForEpoch(tp, epoch)
	return s, notFoundErr(err)
}

func (v storeView) RemoteLogSizeForEpoch(tp proto.TopicIDPartition, epoch int32) (int64, error) {
	n, err := v.s.RemoteLogSizeForEpoch(tp, epoch)
	return n, notFoundErr(err)
}

func (v storeView) RemoteLogSize(tp proto.TopicIDPartition) (int64, error) {
	n, err := v.s.RemoteLogSize(tp)
	return n, notFoundErr(err)
}

func (v storeView) Segment(id proto.SegmentID) (proto.SegmentMetadata, bool, error) {
	m, ok, err := v.s.Segment(id)
	return m, ok, notFoundErr(err)
}

func (v storeView) PartitionDeleteState(tp proto.TopicIDPartition) (proto.PartitionDeleteState, bool, error) {
	st, ok, err := v.s.PartitionDeleteState(tp)
	return st, ok, notFoundErr(err)
}

func (v storeView) Partitions() ([]cache.PartitionInfo, error) { return v.s.Partitions() }
func (v storeView) NextOffset(mp int32) (int64, error)         { return v.s.NextOffset(mp) }
func (v storeView) Offsets() (map[int32]int64, error)          { return v.s.Offsets() }
func (v storeView) Skipped() ([]cache.SkippedRecord, error)    { return v.s.Skipped() }
func (v storeView) Dropped() ([]cache.DroppedRecord, error)    { return v.s.Dropped() }
func (v storeView) DroppedAt(mp int32, offset int64) (cache.DroppedRecord, bool, error) {
	return v.s.DroppedAt(mp, offset)
}
func (v storeView) Check() error           { return v.s.Check() }
func (v storeView) Dump(w io.Writer) error { return v.s.Dump(w) }
