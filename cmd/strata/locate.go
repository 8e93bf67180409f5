package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/stratalog/strata/proto"
)

func newLocateCmd() *cobra.Command {
	var (
		topicID, format string
		partition       int32
		numPartitions   int32
	)
	cmd := &cobra.Command{
		Use:   "locate",
		Short: "Print the __remote_log_metadata partition that holds a user partition's events",
		Long: `locate computes, as Kafka's RemoteLogMetadataTopicPartitioner does, which partition of
__remote_log_metadata holds the events of one user partition. The topic name plays no part:
only the topic id, the partition and the metadata topic's partition count
(remote.log.metadata.topic.num.partitions, 50 by default).`,
		Example: `  strata locate --topic-id Bp9TDduJRGa9Q5rlvCJOxg --partition 3 --metadata-partitions 5`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(format, "table", "json"); err != nil {
				return err
			}
			id, err := proto.ParseUUID(topicID)
			if err != nil {
				return fmt.Errorf("--topic-id: %w", err)
			}
			if partition < 0 {
				return fmt.Errorf("--partition %d: must not be negative", partition)
			}
			if numPartitions <= 0 {
				return fmt.Errorf("--metadata-partitions %d: must be positive", numPartitions)
			}
			mp := proto.MetadataPartition(proto.TopicIDPartition{TopicID: id, Partition: partition}, numPartitions)
			if format == "json" {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{
					"topicId": id, "partition": partition, "metadataPartitions": numPartitions, "metadataPartition": mp,
				})
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), mp)
			return err
		},
	}
	cmd.Flags().StringVar(&topicID, "topic-id", "", "topic id, in Kafka's base64 form or as a hex UUID (required)")
	cmd.Flags().Int32Var(&partition, "partition", 0, "user partition number")
	cmd.Flags().Int32Var(&numPartitions, "metadata-partitions", 50, "partition count of __remote_log_metadata")
	cmd.Flags().StringVar(&format, "format", "table", "output: table (the partition number alone) or json")
	_ = cmd.MarkFlagRequired("topic-id")
	_ = cmd.MarkFlagRequired("partition")
	return cmd
}
