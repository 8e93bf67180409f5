package proto

import "fmt"

// SegmentState is Kafka's RemoteLogSegmentState, with Kafka's ids.
type SegmentState int8

// The segment states, in the order a segment normally passes through them.
const (
	CopySegmentStarted    SegmentState = 0
	CopySegmentFinished   SegmentState = 1
	DeleteSegmentStarted  SegmentState = 2
	DeleteSegmentFinished SegmentState = 3
)

var segmentStateNames = [...]string{
	"COPY_SEGMENT_STARTED", "COPY_SEGMENT_FINISHED", "DELETE_SEGMENT_STARTED", "DELETE_SEGMENT_FINISHED",
}

// Valid reports whether s is one of Kafka's four segment states.
func (s SegmentState) Valid() bool { return s >= 0 && int(s) < len(segmentStateNames) }

// String is Kafka's name of the state, or "SegmentState(N)" for an invalid id.
func (s SegmentState) String() string {
	if s.Valid() {
		return segmentStateNames[s]
	}
	return fmt.Sprintf("SegmentState(%d)", int8(s))
}

// ParseSegmentState returns the state Kafka names name.
func ParseSegmentState(name string) (SegmentState, error) {
	for i, n := range segmentStateNames {
		if n == name {
			return SegmentState(i), nil
		}
	}
	return 0, fmt.Errorf("proto: %w: no segment state is named %q", ErrInvalidState, name)
}

// ValidSegmentTransition reports whether a segment may move from one state to another, as
// Kafka's RemoteLogSegmentState.isValidTransition decides: COPY_SEGMENT_STARTED to
// COPY_SEGMENT_FINISHED or DELETE_SEGMENT_STARTED, COPY_SEGMENT_FINISHED to
// DELETE_SEGMENT_STARTED, DELETE_SEGMENT_STARTED to DELETE_SEGMENT_FINISHED, and any state to
// itself. A segment that does not exist yet may only enter COPY_SEGMENT_STARTED; pass hasFrom
// false for that case.
func ValidSegmentTransition(from SegmentState, hasFrom bool, to SegmentState) bool {
	if !to.Valid() {
		return false
	}
	if !hasFrom {
		return to == CopySegmentStarted
	}
	if !from.Valid() {
		return false
	}
	if from == to {
		return true
	}
	switch from {
	case CopySegmentStarted:
		return to == CopySegmentFinished || to == DeleteSegmentStarted
	case CopySegmentFinished:
		return to == DeleteSegmentStarted
	case DeleteSegmentStarted:
		return to == DeleteSegmentFinished
	}
	return false
}

// PartitionDeleteState is Kafka's RemotePartitionDeleteState, with Kafka's ids.
type PartitionDeleteState int8

// The partition-delete states, in order.
const (
	DeletePartitionMarked   PartitionDeleteState = 0
	DeletePartitionStarted  PartitionDeleteState = 1
	DeletePartitionFinished PartitionDeleteState = 2
)

var partitionDeleteStateNames = [...]string{
	"DELETE_PARTITION_MARKED", "DELETE_PARTITION_STARTED", "DELETE_PARTITION_FINISHED",
}

// Valid reports whether s is one of Kafka's three partition-delete states.
func (s PartitionDeleteState) Valid() bool { return s >= 0 && int(s) < len(partitionDeleteStateNames) }

// String is Kafka's name of the state, or "PartitionDeleteState(N)" for an invalid id.
func (s PartitionDeleteState) String() string {
	if s.Valid() {
		return partitionDeleteStateNames[s]
	}
	return fmt.Sprintf("PartitionDeleteState(%d)", int8(s))
}

// ParsePartitionDeleteState returns the state Kafka names name.
func ParsePartitionDeleteState(name string) (PartitionDeleteState, error) {
	for i, n := range partitionDeleteStateNames {
		if n == name {
			return PartitionDeleteState(i), nil
		}
	}
	return 0, fmt.Errorf("proto: %w: no partition-delete state is named %q", ErrInvalidState, name)
}

// ValidPartitionDeleteTransition reports whether a partition's delete state may move from one
// state to another: nothing to MARKED, MARKED to STARTED, STARTED to FINISHED, and any state to
// itself. Kafka itself stores these states without checking (it never publishes them); Strata
// checks, so a stray record cannot move a partition backwards. Pass hasFrom false when the
// partition has no delete state yet.
func ValidPartitionDeleteTransition(from PartitionDeleteState, hasFrom bool, to PartitionDeleteState) bool {
	if !to.Valid() {
		return false
	}
	if !hasFrom {
		return to == DeletePartitionMarked
	}
	if !from.Valid() {
		return false
	}
	return from == to || int(to) == int(from)+1
}
