package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/stratalog/strata/audit"
	"github.com/stratalog/strata/proto"
)

func newCheckpointCmd() *cobra.Command {
	var (
		cf    clusterFlags
		topic string
	)
	cmd := &cobra.Command{
		Use:   "checkpoint [--topic T]",
		Short: "How far back remote storage is complete, per partition and per topic",
		Long: `checkpoint prints the tiered checkpoint. For each partition: the highest offset up to which
remote storage holds a contiguous run of finished segments, and the largest timestamp in that run.
For the topic: the minimum over its live partitions, the time up to which remote storage is
complete for the whole topic, which is what a restore from remote storage may rely on, and how
far that lags behind now. Partitions being deleted do not hold it back; a live partition with
nothing tiered does, and is named. A topic not in the cluster is an error.`,
		Args: cobra.NoArgs,
	}
	format := addFormat(cmd, "json: one array of topics", "table", "json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return withCluster(cmd, &cf, func(ctx context.Context, c *cluster) error {
			return printCheckpoints(ctx, cmd, c, format.value, topic)
		})
	}
	cf.register(cmd, true)
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
	out := []audit.TopicCheckpoint{}
	if len(names) > 0 {
		details, err := c.adm.ListTopics(ctx, names...)
		if err != nil {
			return fmt.Errorf("describing topics: %w", err)
		}
		now := time.Now()
		for _, name := range names {
			d, ok := details[name]
			switch {
			case (!ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition)) && topic != "":
				return fmt.Errorf("topic %s not found in the cluster", name)
			case !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition):
				continue // deleted from the cluster: nothing live holds a checkpoint
			case d.Err != nil:
				return fmt.Errorf("describing topic %s: %w", name, d.Err)
			}
			tc, err := audit.TopicCheckpointOf(c.m.View(), name, proto.UUID(d.ID), int32(len(d.Partitions)), now)
			if err != nil {
				return err
			}
			out = append(out, tc)
		}
	}
	if format == "json" {
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
