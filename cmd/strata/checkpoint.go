package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
)

// checkpoint is a partition's tiered checkpoint: remote storage holds every offset from
// StartOffset to Offset in COPY_SEGMENT_FINISHED segments, with no gap, and MaxTimestampMs is
// the largest record timestamp among them.
type checkpoint struct {
	StartOffset    int64 `json:"startOffset"`
	Offset         int64 `json:"offset"`
	MaxTimestampMs int64 `json:"maxTimestampMs"`
}

// checkpointOf computes the checkpoint from a partition's segments: the contiguous run of
// finished segments from the lowest remote offset. Conservative by construction: it never
// passes a gap, so nothing after an offset missing from remote storage counts.
func checkpointOf(segs []proto.SegmentMetadata) *checkpoint {
	var fin []proto.SegmentMetadata
	for _, s := range segs {
		if s.State == proto.CopySegmentFinished {
			fin = append(fin, s)
		}
	}
	if len(fin) == 0 {
		return nil
	}
	slices.SortFunc(fin, func(a, b proto.SegmentMetadata) int { return cmp.Compare(a.StartOffset, b.StartOffset) })
	cp := &checkpoint{StartOffset: fin[0].StartOffset, Offset: fin[0].EndOffset, MaxTimestampMs: fin[0].MaxTimestampMs}
	for _, s := range fin[1:] {
		if s.StartOffset > cp.Offset+1 {
			break
		}
		if s.EndOffset > cp.Offset {
			cp.Offset = s.EndOffset
		}
		cp.MaxTimestampMs = max(cp.MaxTimestampMs, s.MaxTimestampMs)
	}
	return cp
}

type partitionCheckpoint struct {
	Partition  int32       `json:"partition"`
	Status     string      `json:"status"` // "tiered", "nothing-tiered", "deleting"
	Checkpoint *checkpoint `json:"checkpoint"`
}

type topicCheckpoint struct {
	Topic      string                `json:"topic"`
	TopicID    proto.UUID            `json:"topicId"`
	TimeMs     *int64                `json:"checkpointTimestampMs"` // nil when a live partition has nothing tiered
	LagMs      *int64                `json:"lagMs"`
	HeldBackBy []int32               `json:"heldBackBy"` // live partitions with nothing tiered
	Partitions []partitionCheckpoint `json:"partitions"`
}

// topicCheckpointOf computes a topic's checkpoint over its partitions 0..n-1: the minimum of
// the live partitions' checkpoint times. A partition being deleted does not hold it back; a live
// partition with nothing tiered does, and is named.
func topicCheckpointOf(c *cluster, topic string, id proto.UUID, n int32, now time.Time) (topicCheckpoint, error) {
	tc := topicCheckpoint{Topic: topic, TopicID: id, HeldBackBy: []int32{}}
	var minTs *int64
	for p := int32(0); p < n; p++ {
		tp := proto.TopicIDPartition{TopicID: id, Topic: topic, Partition: p}
		pc := partitionCheckpoint{Partition: p}
		del, hasDel, err := c.m.View().PartitionDeleteState(tp)
		if err != nil && !isNotFound(err) {
			return tc, err
		}
		segs, err := c.m.View().Segments(tp)
		if err != nil && !isNotFound(err) {
			return tc, err
		}
		pc.Checkpoint = checkpointOf(segs)
		switch {
		case hasDel && del != proto.DeletePartitionFinished:
			pc.Status = "deleting"
		case pc.Checkpoint == nil:
			pc.Status = "nothing-tiered"
			tc.HeldBackBy = append(tc.HeldBackBy, p)
		default:
			pc.Status = "tiered"
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

func isNotFound(err error) bool { return err != nil && errors.Is(err, cache.ErrNotFound) }

func newCheckpointCmd(cf *clusterFlags, format *string) *cobra.Command {
	var topic string
	cmd := &cobra.Command{
		Use:   "checkpoint [--topic T]",
		Short: "How far back remote storage is complete, per partition and per topic",
		Long: `checkpoint prints the tiered checkpoint. For each partition: the highest offset up to which
remote storage holds a contiguous run of finished segments, and the largest timestamp in that run.
For the topic: the minimum over its live partitions, the time up to which remote storage is
complete for the whole topic, which is what a restore from remote storage may rely on, and how
far that lags behind now. Partitions being deleted do not hold it back; a live partition with
nothing tiered does, and is named.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withCluster(cmd, cf, *format, func(ctx context.Context, c *cluster) error { return printCheckpoints(ctx, cmd, c, *format, topic) })
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "only this topic")
	return cmd
}

func printCheckpoints(ctx context.Context, cmd *cobra.Command, c *cluster, format, topic string) error {
	names := []string{topic}
	if topic == "" {
		infos, err := partitionsOf(c, "", -1)
		if err != nil {
			return err
		}
		names = nil
		for _, in := range infos {
			if !slices.Contains(names, in.Partition.Topic) {
				names = append(names, in.Partition.Topic)
			}
		}
	}
	details, err := c.adm.ListTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("describing topics: %w", err)
	}
	now := time.Now()
	var out []topicCheckpoint
	for _, name := range names {
		d, ok := details[name]
		if !ok || d.Err != nil {
			if topic != "" {
				return fmt.Errorf("topic %s not found in the cluster", name)
			}
			continue // deleted from the cluster: nothing live holds a checkpoint
		}
		tc, err := topicCheckpointOf(c, name, proto.UUID(d.ID), int32(len(d.Partitions)), now)
		if err != nil {
			return err
		}
		out = append(out, tc)
	}
	if format == "json" {
		if out == nil {
			out = []topicCheckpoint{}
		}
		return writeJSON(cmd.OutOrStdout(), out)
	}
	t := newTable("topic", "partition", "status", "from offset", "checkpoint offset", "checkpoint time", "lag")
	for _, tc := range out {
		for _, p := range tc.Partitions {
			from, off, ts := "-", "-", "-"
			if p.Checkpoint != nil {
				from, off, ts = fmt.Sprint(p.Checkpoint.StartOffset), fmt.Sprint(p.Checkpoint.Offset), formatTime(p.Checkpoint.MaxTimestampMs)
			}
			t.add(tc.Topic, p.Partition, p.Status, from, off, ts, "-")
		}
		if tc.TimeMs != nil {
			t.add(tc.Topic, "ALL", "complete", "-", "-", formatTime(*tc.TimeMs), (time.Duration(*tc.LagMs) * time.Millisecond).Round(time.Second))
		} else {
			t.add(tc.Topic, "ALL", fmt.Sprintf("held back by partitions %v", tc.HeldBackBy), "-", "-", "-", "-")
		}
	}
	return t.write(cmd.OutOrStdout())
}
