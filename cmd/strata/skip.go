package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rlmm"
)

// skipJSON is what skip prints in JSON.
type skipJSON struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Reason    string `json:"reason"`
	Topic     string `json:"recorded_in"`
}

func newSkipCmd() *cobra.Command {
	var (
		cf        clusterFlags
		partition int32
		offset    int64
		reason    string
	)
	cmd := &cobra.Command{
		Use:   "skip --partition P --offset O --reason R",
		Short: "Skip a record of the metadata topic on every Strata node",
		Long: `skip records, in the compacted topic ` + rlmm.SkipsTopic + `, the decision to skip the record at
offset O of metadata partition P: one that does not decode or cannot be applied, and halts that
metadata partition (and every user partition that maps to it) on every broker that reads it.
Every Strata manager of the cluster applies it: those halted at that record now, and those that
reach it later, such as a broker started with an empty cache. The record is lost to Strata's view
of remote storage: look at it first (strata tail --partition P --offset O) and say why in the
reason, which every node keeps with the skip. A skip names the metadata topic by its id, so it
never applies to a topic created again under the same name.`,
		Args: cobra.NoArgs,
	}
	format := addFormat(cmd, "json: one object", "table", "json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if !cmd.Flags().Changed("partition") || !cmd.Flags().Changed("offset") {
			return errors.New("--partition and --offset are required")
		}
		if partition < 0 || offset < 0 {
			return fmt.Errorf("--partition %d --offset %d: must not be negative", partition, offset)
		}
		if reason == "" {
			return errors.New("--reason is required: every node keeps it with the skip")
		}
		return withCluster(cmd, &cf, func(ctx context.Context, c *cluster) error {
			if partition >= c.n {
				return fmt.Errorf("--partition %d: %s has %d partitions", partition, proto.TopicName, c.n)
			}
			if err := c.m.SkipEverywhere(ctx, partition, offset, reason); err != nil {
				return err
			}
			out := skipJSON{Partition: partition, Offset: offset, Reason: reason, Topic: rlmm.SkipsTopic}
			if format.value == "json" {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "skip of %s-%d offset %d recorded in %s; every Strata node applies it\n",
				proto.TopicName, partition, offset, rlmm.SkipsTopic)
			return err
		})
	}
	cf.register(cmd, true)
	cmd.Flags().Int32Var(&partition, "partition", -1, "metadata partition of the record")
	cmd.Flags().Int64Var(&offset, "offset", -1, "offset of the record")
	cmd.Flags().StringVar(&reason, "reason", "", "why it is skipped (kept by every node)")
	return cmd
}
