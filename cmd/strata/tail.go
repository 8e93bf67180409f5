package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/proto"
)

// tailEvent is one record as tail prints it in JSON.
type tailEvent struct {
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
	Timestamp int64           `json:"timestampMs"`
	Record    json.RawMessage `json:"record,omitempty"`
	Error     string          `json:"error,omitempty"`
}

// scanTopic reads the metadata partitions from the given offsets and calls fn for each record
// in offset order per partition, until every partition reaches the end offset seen at the start
// (follow false) or ctx ends (follow true).
func scanTopic(ctx context.Context, cf *clusterFlags, from map[int32]kgo.Offset, follow bool, fn func(r *kgo.Record) error) error {
	opts, _, _, err := cf.kgoOptions()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{proto.TopicName: from}))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	var ends map[int32]int64
	if !follow {
		adm := kadm.NewClient(cl)
		lo, err := adm.ListEndOffsets(ctx, proto.TopicName)
		if err != nil {
			return fmt.Errorf("listing end offsets: %w", err)
		}
		starts, err := adm.ListStartOffsets(ctx, proto.TopicName)
		if err != nil {
			return fmt.Errorf("listing start offsets: %w", err)
		}
		ends = map[int32]int64{}
		lo.Each(func(o kadm.ListedOffset) {
			if _, ok := from[o.Partition]; !ok {
				return
			}
			s, _ := starts.Lookup(proto.TopicName, o.Partition)
			if o.Offset > s.Offset {
				ends[o.Partition] = o.Offset
			}
		})
	}
	for follow || len(ends) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			if follow {
				return nil
			}
			return ctx.Err()
		}
		if err := fs.Err0(); err != nil {
			return err
		}
		var ferr error
		fs.EachRecord(func(r *kgo.Record) {
			if ferr != nil {
				return
			}
			ferr = fn(r)
			if end, ok := ends[r.Partition]; ok && r.Offset+1 >= end {
				delete(ends, r.Partition)
			}
		})
		if ferr != nil {
			return ferr
		}
	}
	return nil
}

func newTailCmd(cf *clusterFlags, format *string) *cobra.Command {
	var (
		fromBeginning, follow bool
		last                  int64
		partition             int32
	)
	cmd := &cobra.Command{
		Use:   "tail [--from-beginning] [--follow]",
		Short: "Print the events of __remote_log_metadata as they are decoded",
		Long: `tail prints the records of __remote_log_metadata, decoded, with their metadata partition and
offset: in Kafka's console-formatter text (--format text, the default) or as JSON lines
(--format json). By default it prints the last --last records of each partition and stops;
--from-beginning starts at the earliest record; --follow keeps printing new records until
interrupted. A record that does not decode is printed with its error and does not stop tail.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if *format == "table" {
				*format = "text"
			}
			if err := checkFormat(*format, "text", "json"); err != nil {
				return err
			}
			ctx := cmd.Context()
			if !follow {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, cf.timeout)
				defer cancel()
			}
			opts, _, _, err := cf.kgoOptions()
			if err != nil {
				return err
			}
			probe, err := kgo.NewClient(opts...)
			if err != nil {
				return err
			}
			adm := kadm.NewClient(probe)
			ends, err := adm.ListEndOffsets(ctx, proto.TopicName)
			probe.Close()
			if err != nil {
				return fmt.Errorf("reading %s: %w", proto.TopicName, err)
			}
			from := map[int32]kgo.Offset{}
			ends.Each(func(o kadm.ListedOffset) {
				if partition >= 0 && o.Partition != partition {
					return
				}
				switch {
				case fromBeginning:
					from[o.Partition] = kgo.NewOffset().AtStart()
				default:
					from[o.Partition] = kgo.NewOffset().At(max(o.Offset-last, 0))
				}
			})
			if len(from) == 0 {
				return fmt.Errorf("%s has no partition %d", proto.TopicName, partition)
			}
			out := cmd.OutOrStdout()
			return scanTopic(ctx, cf, from, follow, func(r *kgo.Record) error { return printEvent(out, *format, r) })
		},
	}
	cmd.Flags().BoolVar(&fromBeginning, "from-beginning", false, "start at the earliest record of each partition")
	cmd.Flags().BoolVar(&follow, "follow", false, "keep printing new records until interrupted")
	cmd.Flags().Int64Var(&last, "last", 10, "without --from-beginning, how many of the latest records of each partition to print first")
	cmd.Flags().Int32Var(&partition, "partition", -1, "only this metadata partition")
	return cmd
}

func printEvent(w io.Writer, format string, r *kgo.Record) error {
	rec, derr := proto.Decode(r.Value)
	if format == "json" {
		ev := tailEvent{Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli()}
		if derr != nil {
			ev.Error = derr.Error()
		} else {
			ev.Record, _ = proto.MarshalRecordJSON(rec)
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	if derr != nil {
		_, err := fmt.Fprintf(w, "partition: %d, offset: %d, error: %v\n", r.Partition, r.Offset, derr)
		return err
	}
	_, err := fmt.Fprintln(w, proto.FormatKafka(r.Partition, r.Offset, rec))
	return err
}
