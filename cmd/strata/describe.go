package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
)

// segmentEvent is one event of a segment's history.
type segmentEvent struct {
	Partition int32           `json:"metadataPartition"`
	Offset    int64           `json:"offset"`
	Record    json.RawMessage `json:"record"`
	text      string
}

func newDescribeCmd() *cobra.Command {
	desc := &cobra.Command{Use: "describe", Short: "Show everything about one object"}
	var cf clusterFlags
	seg := &cobra.Command{
		Use:   "segment ID",
		Short: "Show a segment's current metadata and its event history",
		Long: `describe segment prints the current metadata of the segment with the given id (Kafka's base64
form) and every event of __remote_log_metadata about it, in order. The history is read from the
metadata partition holding the segment's user partition, from its earliest record.`,
		Args: cobra.ExactArgs(1),
	}
	format := addFormat(seg, "json: one object with the segment and its history", "table", "json")
	seg.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := proto.ParseUUID(args[0])
		if err != nil {
			return err
		}
		return describeSegment(cmd, &cf, format.value, id)
	}
	cf.register(seg, true)
	desc.AddCommand(seg)
	return desc
}

// describeSegment prints the segment's current metadata, read from the loaded cache, and every
// event about it in its metadata partition, read from the partition's earliest record once the
// cache's manager is closed, so that the tool holds one client at a time.
func describeSegment(cmd *cobra.Command, cf *clusterFlags, format string, id proto.UUID) error {
	var (
		seg proto.SegmentMetadata
		mp  int32
	)
	if err := withCluster(cmd, cf, func(_ context.Context, c *cluster) error {
		s, found, err := findSegment(c, id)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("no segment %s in %s (a segment DELETE_SEGMENT_FINISHED is gone from the metadata)", id, proto.TopicName)
		}
		seg, mp = s, proto.MetadataPartition(s.SegmentID.TopicIDPartition, c.n)
		return nil
	}); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), cf.timeout)
	defer cancel()
	cl, cw, err := cf.newClient(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer cw.Close()
	defer cl.Close()
	starts, ends, err := metadataOffsets(ctx, kadm.NewClient(cl))
	if err != nil {
		return err
	}
	var history []segmentEvent
	err = scanTopic(ctx, cl, map[int32]offsetRange{mp: {from: starts[mp], end: ends[mp]}}, false, func(r *kgo.Record) error {
		rec, derr := proto.Decode(r.Value)
		if derr != nil || !aboutSegment(rec, id) {
			return nil
		}
		b, err := proto.MarshalRecordJSON(rec)
		if err != nil {
			return err
		}
		history = append(history, segmentEvent{Partition: r.Partition, Offset: r.Offset, Record: b, text: rec.String()})
		return nil
	})
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if format == "json" {
		sj, err := segmentJSON(seg)
		if err != nil {
			return err
		}
		if history == nil {
			history = []segmentEvent{}
		}
		return writeJSON(out, map[string]any{"segment": sj, "history": history})
	}
	t := newTable("field", "value")
	t.add("segment id", seg.SegmentID.ID)
	t.add("topic", seg.SegmentID.Topic)
	t.add("topic id", seg.SegmentID.TopicID)
	t.add("partition", seg.SegmentID.Partition)
	t.add("state", seg.State)
	t.add("offsets", fmt.Sprintf("%d-%d", seg.StartOffset, seg.EndOffset))
	t.add("leader epochs", formatEpochs(seg.LeaderEpochs))
	t.add("size", seg.SegmentSizeInBytes)
	t.add("max timestamp", formatTime(seg.MaxTimestampMs))
	t.add("broker", seg.BrokerID)
	t.add("event time", formatTime(seg.EventTimestampMs))
	t.add("txn index empty", seg.TxnIndexEmpty)
	if err := t.write(out); err != nil {
		return err
	}
	fmt.Fprintln(out)
	h := newTable("metadata partition", "offset", "event")
	for _, e := range history {
		h.add(e.Partition, e.Offset, e.text)
	}
	return h.write(out)
}

func aboutSegment(r proto.Record, id proto.UUID) bool {
	switch r := r.(type) {
	case *proto.SegmentMetadata:
		return r.SegmentID.ID == id
	case *proto.SegmentMetadataUpdate:
		return r.SegmentID.ID == id
	}
	return false
}

// findSegment looks a segment up by its UUID alone, across every partition of the cache.
func findSegment(c *cluster, id proto.UUID) (proto.SegmentMetadata, bool, error) {
	infos, err := c.m.View().Partitions()
	if err != nil {
		return proto.SegmentMetadata{}, false, err
	}
	for _, in := range infos {
		seg, ok, err := c.m.View().Segment(proto.SegmentID{TopicIDPartition: in.Partition, ID: id})
		if err != nil && !errors.Is(err, cache.ErrNotFound) {
			return seg, false, err
		}
		if ok {
			return seg, true, nil
		}
	}
	return proto.SegmentMetadata{}, false, nil
}
