package rlmm

import (
	"errors"
	"fmt"

	"github.com/stratalog/strata/proto"
)

var (
	// ErrNotAssigned: a write for a user partition whose metadata partition this manager does not
	// consume. Kafka fails the same call at once; so does Strata.
	ErrNotAssigned = errors.New("rlmm: metadata partition not assigned to this manager")
	// ErrNotReady: the user partition is assigned but its metadata partition has not been read up
	// to the end offset seen at assignment. Retriable.
	ErrNotReady = errors.New("rlmm: partition not ready")
	// ErrNotFound: the user partition is not assigned to this manager, or its metadata is gone
	// (deleted with DELETE_PARTITION_FINISHED). Kafka's RemoteResourceNotFoundException.
	ErrNotFound = errors.New("rlmm: partition not found")
	// ErrTimeout: a published record was not applied within the consume wait
	// (remote.log.metadata.consume.wait.ms).
	ErrTimeout = errors.New("rlmm: timed out waiting for the record to be applied")
	// ErrClosed: the manager is closed.
	ErrClosed = errors.New("rlmm: manager closed")
	// ErrInvalidArgument: a write whose record breaks Kafka's rules (an add not in
	// COPY_SEGMENT_STARTED, an update to COPY_SEGMENT_STARTED, ...).
	ErrInvalidArgument = errors.New("rlmm: invalid argument")
	// ErrTopicMismatch: the metadata topic exists with another partition count than configured.
	// Fatal: the partitioner's mapping depends on the count.
	ErrTopicMismatch = errors.New("rlmm: metadata topic partition count mismatch")
	// ErrNoTopic: the metadata topic does not exist and the manager may not create it.
	ErrNoTopic = errors.New("rlmm: metadata topic does not exist")
	// ErrConfig: invalid configuration; the message names the property or option.
	ErrConfig = errors.New("rlmm: invalid configuration")
)

// HaltError says that a metadata partition stopped advancing at a record it could not decode or
// apply. Reads and writes of the user partitions that map to it fail with it until an operator
// skips the record (Manager.Skip) or the cause is fixed.
type HaltError struct {
	Partition int32 // metadata partition
	Offset    int64 // offset of the record it stopped at
	Cause     error
}

func (e *HaltError) Error() string {
	return fmt.Sprintf("rlmm: metadata partition %d halted at offset %d: %v", e.Partition, e.Offset, e.Cause)
}

func (e *HaltError) Unwrap() error { return e.Cause }

// Is makes a halted partition also count as not ready: a caller that retries on ErrNotReady
// keeps retrying, and one that wants the cause unwraps it.
func (e *HaltError) Is(target error) bool { return target == ErrNotReady }

func notFound(tp proto.TopicIDPartition) error {
	return fmt.Errorf("%w: %s", ErrNotFound, tp)
}

func isNotReady(err error) bool { return errors.Is(err, ErrNotReady) }

// ErrNotApplied is matched (errors.Is) by every *NotAppliedError: a write whose record this
// manager's store did not apply, or refused before publishing because it could not apply.
var ErrNotApplied = errors.New("rlmm: record not applied")

// NotAppliedError says that a write had no effect: the store dropped its record, or the manager
// refused it before producing because the store it holds for a ready partition it leads proves
// the record cannot apply. Reason is the store's sentinel for why (cache.ErrInvalidTransition,
// cache.ErrUnknownSegment, cache.ErrInvalidRecord, cache.ErrPartitionMismatch,
// cache.ErrUnsupportedRecord, ...); errors.Is matches ErrNotApplied and, through Unwrap, Reason.
type NotAppliedError struct {
	// Segment is the segment the record is about; for a partition-delete record its ID is
	// zero and TopicIDPartition names the user partition.
	Segment proto.SegmentID
	// Partition is the metadata partition the record was, or would have been, published to.
	Partition int32
	// Offset is where the record landed in Partition; -1 when it was refused before publishing.
	Offset int64
	// Published says whether the record is in the topic (at Offset). Every other reader of the
	// topic drops it too: the store's rules are a function of the records alone.
	Published bool
	// Reason is the store's sentinel for why the record does not apply.
	Reason error
	// Detail describes the states involved, as the store saw them.
	Detail string
}

func (e *NotAppliedError) Error() string {
	what := "segment " + e.Segment.String()
	if e.Segment.ID == (proto.UUID{}) {
		what = "partition " + e.Segment.TopicIDPartition.String()
	}
	where := fmt.Sprintf("refused before publishing to %s-%d", proto.TopicName, e.Partition)
	if e.Published {
		where = fmt.Sprintf("published at %s-%d offset %d and dropped", proto.TopicName, e.Partition, e.Offset)
	}
	msg := fmt.Sprintf("rlmm: record for %s not applied (%s): %v", what, where, e.Reason)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Is makes errors.Is(err, ErrNotApplied) true.
func (e *NotAppliedError) Is(target error) bool { return target == ErrNotApplied }

// Unwrap returns Reason.
func (e *NotAppliedError) Unwrap() error { return e.Reason }

// IncompleteError says that a write did not learn its outcome by the earlier of the caller's
// deadline and the consume wait (remote.log.metadata.consume.wait.ms). It matches ErrTimeout.
//
// Published says what is known of the record: true, it is in the topic at Partition, Offset
// (acknowledged by every in-sync replica) but was not applied here in time, and it will be
// applied or dropped like any other record; false, the producer had no acknowledgement when the
// write gave up, so the record may still reach the topic later (Offset is -1). A caller that
// retries after an incomplete write should first read the state its record would have set.
type IncompleteError struct {
	Published bool
	Partition int32 // metadata partition
	Offset    int64 // -1 unless Published
	Cause     error // the caller's context error, or ErrTimeout for the consume wait
}

func (e *IncompleteError) Error() string {
	if e.Published {
		return fmt.Sprintf("rlmm: write incomplete: published at %s-%d offset %d, not applied in time: %v", proto.TopicName, e.Partition, e.Offset, e.Cause)
	}
	return fmt.Sprintf("rlmm: write incomplete: not acknowledged by %s-%d in time, the record may still reach the topic: %v", proto.TopicName, e.Partition, e.Cause)
}

// Is makes errors.Is(err, ErrTimeout) true, whatever ended the wait.
func (e *IncompleteError) Is(target error) bool { return target == ErrTimeout }

// Unwrap returns Cause.
func (e *IncompleteError) Unwrap() error { return e.Cause }

// ErrInitTimeout is wrapped by the error New returns when it could not reach the cluster and
// create or check the metadata topic within the initialization timeout
// (remote.log.metadata.initialization.retry.max.timeout.ms).
var ErrInitTimeout = errors.New("rlmm: initialization timed out")
