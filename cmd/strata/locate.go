package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/stratalog/strata/proto"
)

func newLocateCmd() *cobra.Command {
	var (
		cf            clusterFlags
		topicID       string
		partition     int32
		numPartitions int32
	)
	cmd := &cobra.Command{
		Use:   "locate",
		Short: "Print the __remote_log_metadata partition that holds a user partition's events",
		Long: `locate computes, as Kafka's RemoteLogMetadataTopicPartitioner does, which partition of
__remote_log_metadata holds the events of one user partition. The topic name plays no part:
only the topic id, the partition and the metadata topic's partition count. The count is asked
of the cluster (--brokers) unless --metadata-partitions gives it.`,
		Example: `  strata locate --topic-id Bp9TDduJRGa9Q5rlvCJOxg --partition 3
  strata locate --topic-id Bp9TDduJRGa9Q5rlvCJOxg --partition 3 --metadata-partitions 50`,
		Args: cobra.NoArgs,
	}
	format := addFormat(cmd, "table prints the partition number alone", "table", "json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		id, err := proto.ParseUUID(topicID)
		if err != nil {
			return fmt.Errorf("--topic-id: %w", err)
		}
		if partition < 0 {
			return fmt.Errorf("--partition %d: must not be negative", partition)
		}
		if cmd.Flags().Changed("metadata-partitions") {
			if numPartitions <= 0 {
				return fmt.Errorf("--metadata-partitions %d: must be positive", numPartitions)
			}
		} else {
			if numPartitions, err = askPartitionCount(cmd, &cf); err != nil {
				return fmt.Errorf("%w (or give --metadata-partitions)", err)
			}
		}
		mp := proto.MetadataPartition(proto.TopicIDPartition{TopicID: id, Partition: partition}, numPartitions)
		if format.value == "json" {
			return writeJSONLine(cmd.OutOrStdout(), map[string]any{
				"topicId": id, "partition": partition, "metadataPartitions": numPartitions, "metadataPartition": mp,
			})
		}
		_, err = fmt.Fprintln(cmd.OutOrStdout(), mp)
		return err
	}
	cf.register(cmd, false)
	cmd.Flags().StringVar(&topicID, "topic-id", "", "topic id, in Kafka's base64 form or as a hex UUID (required)")
	cmd.Flags().Int32Var(&partition, "partition", 0, "user partition number (required)")
	cmd.Flags().Int32Var(&numPartitions, "metadata-partitions", 0, "partition count of __remote_log_metadata (default: asked of the cluster)")
	_ = cmd.MarkFlagRequired("topic-id")
	_ = cmd.MarkFlagRequired("partition")
	return cmd
}

// askPartitionCount asks the cluster for the metadata topic's partition count.
func askPartitionCount(cmd *cobra.Command, cf *clusterFlags) (int32, error) {
	if err := cf.validate(); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), cf.timeout)
	defer cancel()
	cl, cw, err := cf.newClient(cmd.ErrOrStderr())
	if err != nil {
		return 0, err
	}
	defer cw.Close()
	defer cl.Close()
	return metadataPartitions(ctx, kadm.NewClient(cl), cf.brokers)
}
