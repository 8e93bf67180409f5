package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/stratalog/strata/audit"
	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rlmm"
)

// partitionsOf returns the user partitions the cache knows, of topic (all when empty) and of
// partition p (all when negative), ordered by topic and partition.
func partitionsOf(c *cluster, topic string, p int32) ([]cache.PartitionInfo, error) {
	infos, err := audit.SortedPartitions(c.m.View())
	if err != nil {
		return nil, err
	}
	out := infos[:0]
	for _, in := range infos {
		if (topic == "" || in.Partition.Topic == topic) && (p < 0 || in.Partition.Partition == p) {
			out = append(out, in)
		}
	}
	return out, nil
}

// requireTopic fails when topic is neither in the metadata (infos, already filtered on it) nor
// in the cluster, so that a misspelt name is an error and not an empty table.
func requireTopic(ctx context.Context, c *cluster, topic string, infos []cache.PartitionInfo) error {
	if topic == "" || len(infos) > 0 {
		return nil
	}
	details, err := c.adm.ListTopics(ctx, topic)
	if err != nil {
		return fmt.Errorf("describing topic %s: %w", topic, err)
	}
	if d, ok := details[topic]; !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("topic %s not found in the cluster nor in %s", topic, proto.TopicName)
	} else if d.Err != nil {
		return fmt.Errorf("describing topic %s: %w", topic, d.Err)
	}
	return nil
}

// haltNote says on stderr which metadata partitions are halted and returns the finding that
// ends the command with exit status 1, or nil when none of the rows shown is affected.
func haltNote(cmd *cobra.Command, halts map[int32]*rlmm.HaltError, affected int) error {
	if affected == 0 {
		return nil
	}
	mps := make([]int32, 0, len(halts))
	for mp := range halts {
		mps = append(mps, mp)
	}
	slices.Sort(mps)
	for _, mp := range mps {
		fmt.Fprintf(cmd.ErrOrStderr(), "strata %s: %v: the rows of its partitions are incomplete (marked halted)\n", cmd.Name(), halts[mp])
	}
	return &findingsError{fmt.Sprintf("%d rows incomplete: a metadata partition is halted", affected)}
}

func haltText(h *rlmm.HaltError) string {
	if h == nil {
		return "-"
	}
	return fmt.Sprintf("halted at %d", h.Offset)
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

func segmentJSON(s proto.SegmentMetadata) (json.RawMessage, error) {
	return proto.MarshalRecordJSON(&s)
}

// segmentRow is one segment as segments prints it in JSON: the record's JSON, with the halt
// of its metadata partition when it is halted.
type segmentRow struct {
	seg  proto.SegmentMetadata
	halt *rlmm.HaltError
}

func newSegmentsCmd() *cobra.Command {
	var (
		cf           clusterFlags
		topic, state string
		partition    int32
	)
	cmd := &cobra.Command{
		Use:   "segments --topic T [--partition P] [--state S]",
		Short: "List a topic's remote segments",
		Long: `segments lists the remote log segments of a topic that are not yet DELETE_SEGMENT_FINISHED,
one row per segment, ordered by partition and start offset. A topic neither in the cluster nor
in the metadata is an error. Rows of a halted metadata partition are marked and make the exit
status 1.`,
		Args: cobra.NoArgs,
	}
	format := addFormat(cmd, "json: one array of records", "table", "json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var want proto.SegmentState = -1
		if state != "" {
			s, err := proto.ParseSegmentState(strings.ToUpper(state))
			if err != nil {
				return fmt.Errorf("--state: %w", err)
			}
			want = s
		}
		if cmd.Flags().Changed("partition") && partition < 0 {
			return fmt.Errorf("--partition %d: must not be negative", partition)
		}
		return withCluster(cmd, &cf, func(ctx context.Context, c *cluster) error {
			return printSegments(ctx, cmd, c, format.value, topic, partition, want)
		})
	}
	cf.register(cmd, true)
	cmd.Flags().StringVar(&topic, "topic", "", "topic name (required)")
	cmd.Flags().Int32Var(&partition, "partition", -1, "only this partition")
	cmd.Flags().StringVar(&state, "state", "", "only segments in this state, e.g. COPY_SEGMENT_STARTED")
	_ = cmd.MarkFlagRequired("topic")
	return cmd
}

func printSegments(ctx context.Context, cmd *cobra.Command, c *cluster, format, topic string, partition int32, want proto.SegmentState) error {
	infos, err := partitionsOf(c, topic, partition)
	if err != nil {
		return err
	}
	if err := requireTopic(ctx, c, topic, infos); err != nil {
		return err
	}
	halts := c.halts()
	var rows []segmentRow
	affected := 0
	for _, in := range infos {
		all, err := c.m.View().Segments(in.Partition)
		if err != nil {
			return err
		}
		halt := halts[in.MetadataPartition]
		for _, s := range all {
			if want < 0 || s.State == want {
				rows = append(rows, segmentRow{seg: s, halt: halt})
				if halt != nil {
					affected++
				}
			}
		}
	}
	out := cmd.OutOrStdout()
	if format == "json" {
		js := make([]json.RawMessage, len(rows))
		for i, r := range rows {
			b, err := segmentJSON(r.seg)
			if err != nil {
				return err
			}
			if r.halt != nil {
				// The record's JSON is an object: add the halt before its closing brace.
				b = append(b[:len(b)-1], fmt.Sprintf(`,"halted":{"metadataPartition":%d,"offset":%d}}`, r.halt.Partition, r.halt.Offset)...)
			}
			js[i] = b
		}
		if err := writeJSON(out, js); err != nil {
			return err
		}
		return haltNote(cmd, halts, affected)
	}
	headers := []string{"partition", "segment id", "start offset", "end offset", "leader epochs", "size", "state", "broker", "event time"}
	if affected > 0 {
		headers = append(headers, "halted")
	}
	t := newTable(headers...)
	for _, r := range rows {
		s := r.seg
		cells := []any{s.SegmentID.Partition, s.SegmentID.ID, s.StartOffset, s.EndOffset, formatEpochs(s.LeaderEpochs), s.SegmentSizeInBytes,
			s.State, s.BrokerID, formatTime(s.EventTimestampMs)}
		if affected > 0 {
			cells = append(cells, haltText(r.halt))
		}
		t.add(cells...)
	}
	if err := t.write(out); err != nil {
		return err
	}
	return haltNote(cmd, halts, affected)
}

// partitionSummary is one row of `partitions`.
type partitionSummary struct {
	Topic             string            `json:"topic"`
	TopicID           proto.UUID        `json:"topicId"`
	Partition         int32             `json:"partition"`
	MetadataPartition int32             `json:"metadataPartition"`
	CopyStarted       int64             `json:"copyStarted"`
	CopyFinished      int64             `json:"copyFinished"`
	DeleteStarted     int64             `json:"deleteStarted"`
	RemoteBytes       int64             `json:"remoteBytes"`
	StartOffset       *int64            `json:"startOffset"`
	EndOffset         *int64            `json:"endOffset"`
	HighestByEpoch    map[string]int64  `json:"highestOffsetByEpoch"`
	DeleteState       *string           `json:"deleteState"`
	Checkpoint        *audit.Checkpoint `json:"checkpoint"`
	Halted            *haltJSON         `json:"halted,omitempty"`
}

type haltJSON struct {
	MetadataPartition int32  `json:"metadataPartition"`
	Offset            int64  `json:"offset"`
	Cause             string `json:"cause"`
}

func summarize(c *cluster, in cache.PartitionInfo, halt *rlmm.HaltError) (partitionSummary, error) {
	s := partitionSummary{
		Topic: in.Partition.Topic, TopicID: in.Partition.TopicID, Partition: in.Partition.Partition, MetadataPartition: in.MetadataPartition,
		CopyStarted: in.Segments.CopyStarted, CopyFinished: in.Segments.CopyFinished, DeleteStarted: in.Segments.DeleteStarted,
		RemoteBytes: in.Bytes, HighestByEpoch: map[string]int64{},
	}
	if halt != nil {
		s.Halted = &haltJSON{MetadataPartition: halt.Partition, Offset: halt.Offset, Cause: fmt.Sprint(halt.Cause)}
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
		hi, ok, err := c.m.View().HighestOffsetForEpoch(in.Partition, e)
		if err != nil {
			return s, err
		}
		if ok {
			s.HighestByEpoch[fmt.Sprint(e)] = hi
		}
	}
	s.Checkpoint = audit.PartitionCheckpoint(segs)
	return s, nil
}

func newPartitionsCmd() *cobra.Command {
	var (
		cf    clusterFlags
		topic string
	)
	cmd := &cobra.Command{
		Use:   "partitions [--topic T]",
		Short: "Summarize each partition's remote storage",
		Long: `partitions prints, for every user partition with remote metadata (of one topic with --topic):
its topic id, its segments by state, remote bytes, the offset range of its finished segments,
the highest remote offset of each leader epoch, its partition-delete state, and its tiered
checkpoint. Rows of a halted metadata partition are marked and make the exit status 1.`,
		Args: cobra.NoArgs,
	}
	format := addFormat(cmd, "json: one array of partitions", "table", "json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return withCluster(cmd, &cf, func(ctx context.Context, c *cluster) error { return printPartitions(ctx, cmd, c, format.value, topic) })
	}
	cf.register(cmd, true)
	cmd.Flags().StringVar(&topic, "topic", "", "only this topic")
	return cmd
}

func printPartitions(ctx context.Context, cmd *cobra.Command, c *cluster, format, topic string) error {
	infos, err := partitionsOf(c, topic, -1)
	if err != nil {
		return err
	}
	if err := requireTopic(ctx, c, topic, infos); err != nil {
		return err
	}
	halts := c.halts()
	affected := 0
	rows := make([]partitionSummary, 0, len(infos))
	for _, in := range infos {
		h := halts[in.MetadataPartition]
		if h != nil {
			affected++
		}
		s, err := summarize(c, in, h)
		if err != nil {
			return err
		}
		rows = append(rows, s)
	}
	if format == "json" {
		if err := writeJSON(cmd.OutOrStdout(), rows); err != nil {
			return err
		}
		return haltNote(cmd, halts, affected)
	}
	headers := []string{"topic", "topic id", "partition", "copying", "finished", "deleting", "remote bytes", "offsets", "highest by epoch", "delete state", "checkpoint"}
	if affected > 0 {
		headers = append(headers, "halted")
	}
	t := newTable(headers...)
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
		cells := []any{r.Topic, r.TopicID, r.Partition, r.CopyStarted, r.CopyFinished, r.DeleteStarted, r.RemoteBytes, offsets, formatHighest(r.HighestByEpoch), del, cp}
		if affected > 0 {
			h := "-"
			if r.Halted != nil {
				h = fmt.Sprintf("halted at %d", r.Halted.Offset)
			}
			cells = append(cells, h)
		}
		t.add(cells...)
	}
	if err := t.write(cmd.OutOrStdout()); err != nil {
		return err
	}
	return haltNote(cmd, halts, affected)
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
