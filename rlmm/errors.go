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
