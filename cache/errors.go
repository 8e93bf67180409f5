package cache

import (
	"errors"
	"fmt"
)

// ErrNotFound is wrapped by every query about a user partition the store does not know: one no
// applied record ever named, or one whose DELETE_PARTITION_FINISHED has been applied. It is
// Kafka's RemoteResourceNotFoundException.
var ErrNotFound = errors.New("cache: user partition not found")

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("cache: store is closed")

// ErrInvalidEntry is wrapped by the error Apply, Skip and ResetPartition return for arguments
// no metadata topic can hold (a negative partition or offset, a nil record). They are a bug in
// the caller; nothing is written.
var ErrInvalidEntry = errors.New("cache: invalid entry")

// ErrOffsetApplied is wrapped by the error Skip returns when asked to skip an offset below the
// partition's next offset: that record has already been applied or skipped.
var ErrOffsetApplied = errors.New("cache: offset already applied")

// ErrCorrupt is matched (errors.Is) by every *CorruptError.
var ErrCorrupt = errors.New("cache: store is corrupt")

// ErrFormat is wrapped by Open when the directory holds a store written in a format this version
// does not read.
var ErrFormat = errors.New("cache: unsupported store format")

// CorruptError reports a row that cannot be decoded or that breaks one of the store's
// invariants. Check returns one per violation; queries return one when they meet such a row.
// The store is derived from the metadata topic, so the remedy is always to rebuild it
// (ResetPartition, or a fresh directory).
type CorruptError struct {
	Key     string // the row, as Dump prints its key
	Problem string // what was expected and what was found
}

func (e *CorruptError) Error() string { return "cache: corrupt row " + e.Key + ": " + e.Problem }

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

func corruptf(key []byte, format string, args ...any) *CorruptError {
	return &CorruptError{Key: formatKey(key), Problem: fmt.Sprintf(format, args...)}
}

// DropReason says why Apply did not apply a record.
type DropReason int8

// The reasons a record is dropped. Every dropped record still advances its metadata partition's
// next offset: a record that cannot be applied now never can be, and the topic is the source of
// truth for what it said. Every drop is kept in the store (Dropped, DroppedAt) until its metadata
// partition is reset.
const (
	// InvalidTransition: the segment or partition-delete state may not move from its current
	// state to the record's (proto.ValidSegmentTransition, proto.ValidPartitionDeleteTransition).
	// Kafka logs and drops these too.
	InvalidTransition DropReason = iota + 1
	// UnknownSegment: an update of a segment the store does not hold. While a partition is still
	// loading this is expected (the segment's add record may have expired from the topic);
	// Kafka drops it silently then and reports it once the partition is ready. The store cannot
	// tell the two apart; the caller can.
	UnknownSegment
	// UnsupportedRecord: a RemoteLogSegmentMetadataSnapshotRecord, which names no partition and
	// which Kafka never publishes (Kafka's consumer dies on one).
	UnsupportedRecord
	// InvalidRecord: a record Kafka would refuse to build or apply: an add whose state is not
	// COPY_SEGMENT_STARTED, an update to COPY_SEGMENT_STARTED, a state id Kafka does not define,
	// a negative start offset, an end offset below the start, no leader epochs, or leader epochs
	// not in strictly ascending order.
	InvalidRecord
	// PartitionMismatch: the record's user partition is already known from another metadata
	// partition or under another topic name. Kafka's partitioner sends all of a user
	// partition's events to one metadata partition; a record elsewhere would make
	// ResetPartition of either metadata partition lose or keep the wrong rows.
	PartitionMismatch
	// PartitionDeleted: a record about a user partition whose DELETE_PARTITION_FINISHED has
	// been applied. A topic id is never reused, so such a record is stale: an old leader's copy
	// still in flight when the partition was deleted, or a repeated DELETE_PARTITION_MARKED.
	// Kafka would re-create the partition (or its consumer would die on the record); the store
	// keeps a tombstone of each finished partition and drops every later record of it.
	PartitionDeleted
)

var dropReasonNames = [...]string{
	InvalidTransition: "InvalidTransition",
	UnknownSegment:    "UnknownSegment",
	UnsupportedRecord: "UnsupportedRecord",
	InvalidRecord:     "InvalidRecord",
	PartitionMismatch: "PartitionMismatch",
	PartitionDeleted:  "PartitionDeleted",
}

func (r DropReason) String() string {
	if r > 0 && int(r) < len(dropReasonNames) {
		return dropReasonNames[r]
	}
	return fmt.Sprintf("DropReason(%d)", int8(r))
}

// Sentinel errors wrapped by Drop.Err, one per DropReason, so that errors.Is works on a drop's
// error as on any other.
var (
	ErrInvalidTransition = errors.New("invalid state transition")
	ErrUnknownSegment    = errors.New("unknown segment")
	ErrUnsupportedRecord = errors.New("unsupported record")
	ErrInvalidRecord     = errors.New("invalid record")
	ErrPartitionMismatch = errors.New("user partition belongs elsewhere")
	ErrPartitionDeleted  = errors.New("user partition deleted")
)

// Err returns the sentinel error Drop.Err wraps for this reason.
func (r DropReason) Err() error {
	switch r {
	case InvalidTransition:
		return ErrInvalidTransition
	case UnknownSegment:
		return ErrUnknownSegment
	case UnsupportedRecord:
		return ErrUnsupportedRecord
	case InvalidRecord:
		return ErrInvalidRecord
	case PartitionMismatch:
		return ErrPartitionMismatch
	case PartitionDeleted:
		return ErrPartitionDeleted
	}
	return errors.New(r.String())
}
