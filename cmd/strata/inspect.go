package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
)

// partitionsOf returns the user partitions the cache knows, of topic (all when empty) and of
// partition p (all when negative), ordered by topic and partition.
func partitionsOf(c *cluster, topic string, p int32) ([]cache.PartitionInfo, error) {
	infos, err := c.m.View().Partitions()
	if err != nil {
		return nil, err
	}
	out := infos[:0]
	for _, in := range infos {
		if (topic == "" || in.Partition.Topic == topic) && (p < 0 || in.Partition.Partition == p) {
			out = append(out, in)
		}
	}
	slices.SortFunc(out, func(a, b cache.PartitionInfo) int {
		return cmp.Or(cmp.Compare(a.Partition.Topic, b.Partition.Topic), cmp.Compare(a.Partition.Partition, b.Partition.Partition))
	})
	return out, nil
}

func formatEpochs(es []proto.EpochEntry) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = fmt.Sprintf("%d:%d", e.Epoch, e.StartOffset)
	}
	return strings.Join(parts, ",")
}

func formatTime(ms int64) string {
	if ms <= 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

func segmentJSON(s proto.SegmentMetadata) json.RawMessage {
	b, _ := proto.MarshalRecordJSON(&s)
	return b
}

func newSegmentsCmd(cf *clusterFlags, format *string) *cobra.Command {
	var (
		topic, state string
		partition    int32
	)
	cmd := &cobra.Command{
		Use:   "segments --topic T [--partition P] [--state S]",
		Short: "List a topic's remote segments",
		Long: `segments lists the remote log segments of a topic that are not yet DELETE_SEGMENT_FINISHED,
one row per segment, ordered by partition and start offset.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var want proto.SegmentState = -1
			if state != "" {
				s, err := proto.ParseSegmentState(strings.ToUpper(state))
				if err != nil {
					return fmt.Errorf("--state: %w", err)
				}
				want = s
			}
			return withCluster(cmd, cf, *format, func(_ context.Context, c *cluster) error {
				return printSegments(cmd, c, *format, topic, partition, want)
			})
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "topic name (required)")
	cmd.Flags().Int32Var(&partition, "partition", -1, "only this partition")
	cmd.Flags().StringVar(&state, "state", "", "only segments in this state, e.g. COPY_SEGMENT_STARTED")
	_ = cmd.MarkFlagRequired("topic")
	return cmd
}

func printSegments(cmd *cobra.Command, c *cluster, format, topic string, partition int32, want proto.SegmentState) error {
	infos, err := partitionsOf(c, topic, partition)
	if err != nil {
		return err
	}
	var segs []proto.SegmentMetadata
	for _, in := range infos {
		all, err := c.m.View().Segments(in.Partition)
		if err != nil {
			return err
		}
		for _, s := range all {
			if want < 0 || s.State == want {
				segs = append(segs, s)
			}
		}
	}
	out := cmd.OutOrStdout()
	if format == "json" {
		rows := make([]json.RawMessage, len(segs))
		for i, s := range segs {
			rows[i] = segmentJSON(s)
		}
		return writeJSON(out, rows)
	}
	t := newTable("partition", "segment id", "start offset", "end offset", "leader epochs", "size", "state", "broker", "event time")
	for _, s := range segs {
		t.add(s.SegmentID.Partition, s.SegmentID.ID, s.StartOffset, s.EndOffset, formatEpochs(s.LeaderEpochs), s.SegmentSizeInBytes,
			s.State, s.BrokerID, formatTime(s.EventTimestampMs))
	}
	return t.write(out)
}

// partitionSummary is one row of `partitions`.
type partitionSummary struct {
	Topic             string           `json:"topic"`
	TopicID           proto.UUID       `json:"topicId"`
	Partition         int32            `json:"partition"`
	MetadataPartition int32            `json:"metadataPartition"`
	CopyStarted       int64            `json:"copyStarted"`
	CopyFinished      int64            `json:"copyFinished"`
	DeleteStarted     int64            `json:"deleteStarted"`
	RemoteBytes       int64            `json:"remoteBytes"`
	StartOffset       *int64           `json:"startOffset"`
	EndOffset         *int64           `json:"endOffset"`
	HighestByEpoch    map[string]int64 `json:"highestOffsetByEpoch"`
	DeleteState       *string          `json:"deleteState"`
	Checkpoint        *checkpoint      `json:"checkpoint"`
}

func summarize(c *cluster, in cache.PartitionInfo) (partitionSummary, error) {
	s := partitionSummary{
		Topic: in.Partition.Topic, TopicID: in.Partition.TopicID, Partition: in.Partition.Partition, MetadataPartition: in.MetadataPartition,
		CopyStarted: in.Segments.CopyStarted, CopyFinished: in.Segments.CopyFinished, DeleteStarted: in.Segments.DeleteStarted,
		RemoteBytes: in.Bytes, HighestByEpoch: map[string]int64{},
	}
	if in.HasDeleteState {
		st := in.DeleteState.String()
		s.DeleteState = &st
	}
	segs, err := c.m.View().Segments(in.Partition)
	if err != nil {
		return s, err
	}
	epochs := map[int32]bool{}
	for _, seg := range segs {
		if seg.State != proto.CopySegmentFinished {
			continue
		}
		if s.StartOffset == nil || seg.StartOffset < *s.StartOffset {
			v := seg.StartOffset
			s.StartOffset = &v
		}
		if s.EndOffset == nil || seg.EndOffset > *s.EndOffset {
			v := seg.EndOffset
			s.EndOffset = &v
		}
		for _, e := range seg.LeaderEpochs {
			epochs[e.Epoch] = true
		}
	}
	for e := range epochs {
		if hi, ok, err := c.m.View().HighestOffsetForEpoch(in.Partition, e); err == nil && ok {
			s.HighestByEpoch[fmt.Sprint(e)] = hi
		}
	}
	s.Checkpoint = checkpointOf(segs)
	return s, nil
}

func newPartitionsCmd(cf *clusterFlags, format *string) *cobra.Command {
	var topic string
	cmd := &cobra.Command{
		Use:   "partitions [--topic T]",
		Short: "Summarize each partition's remote storage",
		Long: `partitions prints, for every user partition with remote metadata (of one topic with --topic):
its segments by state, remote bytes, the offset range of its finished segments, the highest
remote offset of each leader epoch, its partition-delete state, and its tiered checkpoint.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withCluster(cmd, cf, *format, func(_ context.Context, c *cluster) error { return printPartitions(cmd, c, *format, topic) })
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "only this topic")
	return cmd
}

func printPartitions(cmd *cobra.Command, c *cluster, format, topic string) error {
	infos, err := partitionsOf(c, topic, -1)
	if err != nil {
		return err
	}
	rows := make([]partitionSummary, 0, len(infos))
	for _, in := range infos {
		s, err := summarize(c, in)
		if err != nil {
			return err
		}
		rows = append(rows, s)
	}
	if format == "json" {
		return writeJSON(cmd.OutOrStdout(), rows)
	}
	t := newTable("topic", "partition", "copying", "finished", "deleting", "remote bytes", "offsets", "highest by epoch", "delete state", "checkpoint")
	for _, r := range rows {
		offsets, del, cp := "-", "-", "-"
		if r.StartOffset != nil {
			offsets = fmt.Sprintf("%d-%d", *r.StartOffset, *r.EndOffset)
		}
		if r.DeleteState != nil {
			del = *r.DeleteState
		}
		if r.Checkpoint != nil {
			cp = fmt.Sprint(r.Checkpoint.Offset)
		}
		t.add(r.Topic, r.Partition, r.CopyStarted, r.CopyFinished, r.DeleteStarted, r.RemoteBytes, offsets, formatHighest(r.HighestByEpoch), del, cp)
	}
	return t.write(cmd.OutOrStdout())
}

func formatHighest(m map[string]int64) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]int, 0, len(m))
	for k := range m {
		var e int
		fmt.Sscan(k, &e)
		keys = append(keys, e)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d:%d", k, m[fmt.Sprint(k)])
	}
	return strings.Join(parts, ",")
}
