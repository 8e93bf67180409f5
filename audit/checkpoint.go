package audit

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
)

// Checkpoint is a partition's tiered checkpoint: remote storage holds every offset from
// StartOffset to Offset in COPY_SEGMENT_FINISHED segments, with no gap, and MaxTimestampMs is
// the largest record timestamp among those segments.
type Checkpoint struct {
	StartOffset    int64 `json:"startOffset"`
	Offset         int64 `json:"offset"`
	MaxTimestampMs int64 `json:"maxTimestampMs"`
}

// PartitionCheckpoint computes the checkpoint from a partition's segments, in any order: the
// contiguous run of finished segments from the lowest finished start offset. It never passes a
// gap, so nothing after an offset missing from remote storage counts. Segments that overlap (a
// new leader uploads offsets the previous leader had uploaded too, in another leader epoch)
// extend the run as far as the furthest of them reaches. Segments not COPY_SEGMENT_FINISHED
// count for nothing: their data may be incomplete or on its way out. It returns nil when no
// segment is finished.
func PartitionCheckpoint(segs []proto.SegmentMetadata) *Checkpoint {
	var fin []proto.SegmentMetadata
	for _, s := range segs {
		if s.State == proto.CopySegmentFinished {
			fin = append(fin, s)
		}
	}
	if len(fin) == 0 {
		return nil
	}
	slices.SortStableFunc(fin, func(a, b proto.SegmentMetadata) int { return cmp.Compare(a.StartOffset, b.StartOffset) })
	cp := &Checkpoint{StartOffset: fin[0].StartOffset, Offset: fin[0].EndOffset, MaxTimestampMs: fin[0].MaxTimestampMs}
	for _, s := range fin[1:] {
		if s.StartOffset > cp.Offset+1 {
			break
		}
		cp.Offset = max(cp.Offset, s.EndOffset)
		cp.MaxTimestampMs = max(cp.MaxTimestampMs, s.MaxTimestampMs)
	}
	return cp
}

// PartitionStatus says how a partition counts toward its topic's checkpoint.
type PartitionStatus string

// The partition statuses.
const (
	Tiered        PartitionStatus = "tiered"         // live, with a checkpoint
	NothingTiered PartitionStatus = "nothing-tiered" // live, with no finished segment: holds the topic back
	Deleting      PartitionStatus = "deleting"       // marked or started for deletion: does not count
)

// PartitionCheckpointOf is one partition's part of a topic's checkpoint.
type PartitionCheckpointOf struct {
	Partition  int32           `json:"partition"`
	Status     PartitionStatus `json:"status"`
	Checkpoint *Checkpoint     `json:"checkpoint"`
}

// TopicCheckpoint is a topic's checkpoint: the time up to which remote storage is complete for
// every live partition of the topic, which is what a restore from remote storage may rely on.
type TopicCheckpoint struct {
	Topic   string     `json:"topic"`
	TopicID proto.UUID `json:"topicId"`
	// TimeMs is the minimum over the live partitions of their checkpoint's MaxTimestampMs; nil
	// when a live partition has nothing tiered, or no partition is live.
	TimeMs *int64 `json:"checkpointTimestampMs"`
	// LagMs is how far TimeMs is behind the time the checkpoint was computed at.
	LagMs *int64 `json:"lagMs"`
	// HeldBackBy names the live partitions with nothing tiered, which leave TimeMs nil.
	HeldBackBy []int32                 `json:"heldBackBy"`
	Partitions []PartitionCheckpointOf `json:"partitions"`
}

// TopicCheckpointOf computes the checkpoint of the topic with id and name topic over its
// partitions 0 to n-1 (the cluster's partition count, since a partition with nothing tiered is
// known to the cluster but not to the metadata). A partition MARKED or STARTED for deletion
// does not hold the topic back; a live partition with nothing tiered does, and is named.
func TopicCheckpointOf(md Metadata, topic string, id proto.UUID, n int32, now time.Time) (TopicCheckpoint, error) {
	if n <= 0 {
		return TopicCheckpoint{}, fmt.Errorf("audit: checkpoint of %s: partition count %d is not positive", topic, n)
	}
	tc := TopicCheckpoint{Topic: topic, TopicID: id, HeldBackBy: []int32{}}
	var minTs *int64
	for p := range n {
		tp := proto.TopicIDPartition{TopicID: id, Topic: topic, Partition: p}
		pc := PartitionCheckpointOf{Partition: p}
		del, hasDel, err := md.PartitionDeleteState(tp)
		if err != nil && !errors.Is(err, cache.ErrNotFound) {
			return tc, fmt.Errorf("audit: delete state of %s: %w", tp, err)
		}
		segs, err := segmentsOf(md, tp)
		if err != nil {
			return tc, err
		}
		pc.Checkpoint = PartitionCheckpoint(segs)
		switch {
		case hasDel && del != proto.DeletePartitionFinished:
			pc.Status = Deleting
		case pc.Checkpoint == nil:
			pc.Status = NothingTiered
			tc.HeldBackBy = append(tc.HeldBackBy, p)
		default:
			pc.Status = Tiered
			if minTs == nil || pc.Checkpoint.MaxTimestampMs < *minTs {
				v := pc.Checkpoint.MaxTimestampMs
				minTs = &v
			}
		}
		tc.Partitions = append(tc.Partitions, pc)
	}
	if len(tc.HeldBackBy) == 0 && minTs != nil {
		tc.TimeMs = minTs
		lag := now.UnixMilli() - *minTs
		tc.LagMs = &lag
	}
	return tc, nil
}
