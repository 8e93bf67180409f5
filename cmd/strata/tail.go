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

// offsetRange is where a scan of one metadata partition starts and, unless it follows, ends.
type offsetRange struct{ from, end int64 }

// metadataOffsets lists the start and end offsets of every metadata partition.
func metadataOffsets(ctx context.Context, adm *kadm.Client) (starts, ends map[int32]int64, err error) {
	lo, err := adm.ListEndOffsets(ctx, proto.TopicName)
	if err == nil {
		err = lo.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("listing the end offsets of %s: %w", proto.TopicName, err)
	}
	ls, err := adm.ListStartOffsets(ctx, proto.TopicName)
	if err == nil {
		err = ls.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("listing the start offsets of %s: %w", proto.TopicName, err)
	}
	starts, ends = map[int32]int64{}, map[int32]int64{}
	ls.Each(func(o kadm.ListedOffset) { starts[o.Partition] = o.Offset })
	lo.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	return starts, ends, nil
}

// scanTopic reads the metadata partitions of ranges through cl, which consumes nothing yet,
// and calls fn for each record in offset order per partition: until every partition reaches
// its end (follow false; a partition whose range is empty is not read at all) or until ctx
// ends (follow true).
func scanTopic(ctx context.Context, cl *kgo.Client, ranges map[int32]offsetRange, follow bool, fn func(r *kgo.Record) error) error {
	from := map[int32]kgo.Offset{}
	pending := map[int32]int64{}
	for p, r := range ranges {
		if !follow && r.from >= r.end {
			continue
		}
		from[p] = kgo.NewOffset().At(r.from)
		pending[p] = r.end
	}
	if len(from) == 0 {
		return nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{proto.TopicName: from})
	for follow || len(pending) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			if follow {
				return nil
			}
			return fmt.Errorf("reading %s: %w", proto.TopicName, ctx.Err())
		}
		if err := fs.Err0(); err != nil {
			return fmt.Errorf("reading %s: %w", proto.TopicName, err)
		}
		var ferr error
		fs.EachRecord(func(r *kgo.Record) {
			if ferr != nil {
				return
			}
			ferr = fn(r)
			if end, ok := pending[r.Partition]; ok && !follow && r.Offset+1 >= end {
				delete(pending, r.Partition)
			}
		})
		if ferr != nil {
			return ferr
		}
	}
	return nil
}

func newTailCmd() *cobra.Command {
	var (
		cf                    clusterFlags
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
interrupted. A record that does not decode is printed with its error and does not stop tail.
While a broker cannot be reached it says so on stderr after a few seconds, and again every
half minute.`,
		Args: cobra.NoArgs,
	}
	format := addFormat(cmd, "json: one object per line", "text", "json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := cf.validate(); err != nil {
			return err
		}
		if last < 0 {
			return fmt.Errorf("--last %d: must not be negative", last)
		}
		if cmd.Flags().Changed("partition") && partition < 0 {
			return fmt.Errorf("--partition %d: must not be negative", partition)
		}
		ctx := cmd.Context()
		if !follow {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, cf.timeout)
			defer cancel()
		}
		cl, cw, err := cf.newClient(cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		defer cw.Close()
		defer cl.Close()
		adm := kadm.NewClient(cl)
		n, err := metadataPartitions(ctx, adm, cf.brokers)
		if err != nil {
			return err
		}
		if partition >= n {
			return fmt.Errorf("--partition %d: %s has partitions 0 to %d", partition, proto.TopicName, n-1)
		}
		starts, ends, err := metadataOffsets(ctx, adm)
		if err != nil {
			return err
		}
		ranges := map[int32]offsetRange{}
		for p, end := range ends {
			if partition >= 0 && p != partition {
				continue
			}
			from := max(end-last, starts[p])
			if fromBeginning {
				from = starts[p]
			}
			ranges[p] = offsetRange{from: from, end: end}
		}
		out := cmd.OutOrStdout()
		return scanTopic(ctx, cl, ranges, follow, func(r *kgo.Record) error { return printEvent(out, format.value, r) })
	}
	cf.register(cmd, false)
	cmd.Flags().BoolVar(&fromBeginning, "from-beginning", false, "start at the earliest record of each partition")
	cmd.Flags().BoolVar(&follow, "follow", false, "keep printing new records until interrupted")
	cmd.Flags().Int64Var(&last, "last", 10, "without --from-beginning, how many of the latest records of each partition to print first")
	cmd.Flags().Int32Var(&partition, "partition", -1, "only this metadata partition (default all)")
	return cmd
}

func printEvent(w io.Writer, format string, r *kgo.Record) error {
	rec, derr := proto.Decode(r.Value)
	if format == "json" {
		ev := tailEvent{Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli()}
		if derr != nil {
			ev.Error = derr.Error()
		} else {
			b, err := proto.MarshalRecordJSON(rec)
			if err != nil {
				return err
			}
			ev.Record = b
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
