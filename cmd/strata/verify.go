package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rsm"
)

// Kinds of anomaly verify reports.
const (
	kindStuckCopy       = "stuck-copy"           // COPY_SEGMENT_STARTED for longer than the threshold
	kindStuckDelete     = "stuck-delete"         // DELETE_SEGMENT_STARTED for longer than the threshold
	kindGap             = "gap"                  // offsets missing between two finished segments
	kindOverlap         = "overlap"              // two finished segments share offsets
	kindMissingObjects  = "missing-objects"      // a finished segment whose log is not in storage
	kindOrphan          = "orphan"               // an object of a segment the metadata does not know
	kindStray           = "stray-object"         // an object no segment can own: temporary or unknown file
	kindPartitionDelete = "unfinished-partition" // MARKED or STARTED for deletion, not finished
	kindUndecodable     = "halted-partition"     // a metadata partition stopped at a record it cannot read
	kindSkipped         = "skipped-record"       // a record skipped because it could not be read
)

// anomaly is one finding of verify.
type anomaly struct {
	Kind        string           `json:"kind"`
	Partition   string           `json:"partition,omitempty"` // <topicId>:<topic>-<p>
	Segment     *proto.SegmentID `json:"-"`
	SegmentID   string           `json:"segmentId,omitempty"`
	StartOffset int64            `json:"startOffset,omitempty"`
	Object      string           `json:"object,omitempty"`
	AgeMs       *int64           `json:"ageMs,omitempty"`
	Detail      string           `json:"detail"`

	tp  proto.TopicIDPartition
	seg *proto.SegmentMetadata
	obj *rsm.Object
}

type verifyOptions struct {
	stuckAfter time.Duration
	now        time.Time
}

func ageOf(now time.Time, ms int64) *int64 {
	a := now.UnixMilli() - ms
	return &a
}

// findAnomalies checks the metadata (and the storage, when st is not nil) and returns every
// anomaly in a stable order: partition by partition, then storage, then the topic itself.
func findAnomalies(ctx context.Context, c *cluster, st rsm.Manager, o verifyOptions) ([]anomaly, error) {
	var out []anomaly
	infos, err := partitionsOf(c, "", -1)
	if err != nil {
		return nil, err
	}
	live := map[proto.UUID]bool{}
	for _, in := range infos {
		tp := in.Partition
		segs, err := c.m.View().Segments(tp)
		if err != nil && !isNotFound(err) {
			return nil, err
		}
		var finished []proto.SegmentMetadata
		for i := range segs {
			s := segs[i]
			live[s.SegmentID.ID] = true
			age := time.Duration(o.now.UnixMilli()-s.EventTimestampMs) * time.Millisecond
			switch {
			case s.State == proto.CopySegmentStarted && age > o.stuckAfter:
				out = append(out, anomaly{Kind: kindStuckCopy, tp: tp, seg: &s, AgeMs: ageOf(o.now, s.EventTimestampMs),
					Detail: fmt.Sprintf("COPY_SEGMENT_STARTED for %s: the copy never finished", age.Round(time.Second))})
			case s.State == proto.DeleteSegmentStarted && age > o.stuckAfter:
				out = append(out, anomaly{Kind: kindStuckDelete, tp: tp, seg: &s, AgeMs: ageOf(o.now, s.EventTimestampMs),
					Detail: fmt.Sprintf("DELETE_SEGMENT_STARTED for %s: the delete never finished", age.Round(time.Second))})
			case s.State == proto.CopySegmentFinished:
				finished = append(finished, s)
			}
		}
		slices.SortFunc(finished, func(a, b proto.SegmentMetadata) int { return cmp.Compare(a.StartOffset, b.StartOffset) })
		for i := 1; i < len(finished); i++ {
			prev, cur := finished[i-1], finished[i]
			switch {
			case cur.StartOffset > prev.EndOffset+1:
				out = append(out, anomaly{Kind: kindGap, tp: tp, seg: &finished[i],
					Detail: fmt.Sprintf("offsets %d-%d are in no finished segment (between %s and %s)", prev.EndOffset+1, cur.StartOffset-1, prev.SegmentID.ID, cur.SegmentID.ID)})
			case cur.StartOffset <= prev.EndOffset:
				out = append(out, anomaly{Kind: kindOverlap, tp: tp, seg: &finished[i],
					Detail: fmt.Sprintf("offsets %d-%d are in both %s and %s", cur.StartOffset, min(prev.EndOffset, cur.EndOffset), prev.SegmentID.ID, cur.SegmentID.ID)})
			}
		}
		if in.HasDeleteState && in.DeleteState != proto.DeletePartitionFinished {
			out = append(out, anomaly{Kind: kindPartitionDelete, tp: tp,
				Detail: fmt.Sprintf("%s with %d segments left: no remover finished it", in.DeleteState, len(segs))})
		}
		if st != nil && len(finished) > 0 {
			hasLog := map[proto.UUID]bool{}
			for obj, err := range st.List(ctx, tp) {
				if err != nil {
					return nil, fmt.Errorf("listing storage of %s: %w", tp, err)
				}
				if obj.Type == rsm.FileLog && obj.Problem == "" {
					hasLog[obj.Segment.ID] = true
				}
			}
			for i := range finished {
				if !hasLog[finished[i].SegmentID.ID] {
					out = append(out, anomaly{Kind: kindMissingObjects, tp: tp, seg: &finished[i],
						Detail: "COPY_SEGMENT_FINISHED but its log is not in storage: reads of these offsets will fail"})
				}
			}
		}
	}
	if st != nil {
		for obj, err := range st.ListAll(ctx) {
			if err != nil {
				return nil, fmt.Errorf("listing storage: %w", err)
			}
			switch {
			case obj.Problem != "" || !obj.Attributed():
				ob := obj
				out = append(out, anomaly{Kind: kindStray, Object: obj.Name, obj: &ob, tp: obj.Segment.TopicIDPartition, Detail: cmp.Or(obj.Problem, "a name no segment has")})
			case !live[obj.Segment.ID]:
				ob := obj
				seg := obj.Segment
				out = append(out, anomaly{Kind: kindOrphan, Object: obj.Name, obj: &ob, tp: seg.TopicIDPartition, Segment: &seg, StartOffset: obj.StartOffset,
					Detail: "no live segment owns it (deleted, or never finished being published)"})
			}
		}
	}
	for _, s := range c.m.Stats() {
		if s.Halt != nil {
			out = append(out, anomaly{Kind: kindUndecodable, Detail: s.Halt.Error()})
		}
	}
	skipped, err := c.m.View().Skipped()
	if err != nil {
		return nil, err
	}
	for _, sk := range skipped {
		out = append(out, anomaly{Kind: kindSkipped, Detail: fmt.Sprintf("%s-%d offset %d skipped: %s", proto.TopicName, sk.Partition, sk.Offset, sk.Reason)})
	}
	for i := range out {
		a := &out[i]
		if a.tp != (proto.TopicIDPartition{}) {
			a.Partition = a.tp.String()
		}
		if a.seg != nil {
			a.SegmentID, a.StartOffset = a.seg.SegmentID.ID.String(), a.seg.StartOffset
		} else if a.Segment != nil {
			a.SegmentID = a.Segment.ID.String()
		}
	}
	return out, nil
}

func newVerifyCmd(cf *clusterFlags, sf *storageFlags, format *string) *cobra.Command {
	var stuckAfter time.Duration
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Report anomalies in remote storage and its metadata; non-zero exit when there are any",
		Long: `verify reads the whole metadata topic (and, with --s3-bucket or --local-dir, lists the storage)
and reports: segments stuck in COPY_SEGMENT_STARTED or DELETE_SEGMENT_STARTED for longer than
--stuck-after; gaps and overlaps among a partition's finished segments; finished segments whose
objects are missing from storage; objects no live segment owns (orphans); partitions MARKED or
STARTED for deletion and never finished; records that could not be decoded or applied. It exits
with status 1 when it finds any. It changes nothing; repair plans the fixes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAnomalies(cmd, cf, sf, *format, stuckAfter, func(_ context.Context, _ *cluster, _ rsm.Manager, found []anomaly, _ time.Time) error {
				if err := printAnomalies(cmd, *format, found); err != nil {
					return err
				}
				if len(found) > 0 {
					return &reportedError{fmt.Sprintf("%d anomalies", len(found))}
				}
				return nil
			})
		},
	}
	cmd.Flags().DurationVar(&stuckAfter, "stuck-after", time.Hour, "a segment COPY_ or DELETE_SEGMENT_STARTED for longer than this is stuck")
	return cmd
}

// withAnomalies opens the storage (when configured) and the cluster, finds the anomalies and
// runs fn with them.
func withAnomalies(cmd *cobra.Command, cf *clusterFlags, sf *storageFlags, format string, stuckAfter time.Duration,
	fn func(ctx context.Context, c *cluster, st rsm.Manager, found []anomaly, now time.Time) error) error {
	return withCluster(cmd, cf, format, func(ctx context.Context, c *cluster) error {
		st, err := sf.open(ctx)
		if err != nil {
			return err
		}
		if st == nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "strata %s: no --s3-bucket or --local-dir: checking the metadata only, not the storage\n", cmd.Name())
		} else {
			defer st.Close()
		}
		now := time.Now()
		found, err := findAnomalies(ctx, c, st, verifyOptions{stuckAfter: stuckAfter, now: now})
		if err != nil {
			return err
		}
		return fn(ctx, c, st, found, now)
	})
}

func printAnomalies(cmd *cobra.Command, format string, found []anomaly) error {
	out := cmd.OutOrStdout()
	if format == "json" {
		if found == nil {
			found = []anomaly{}
		}
		return writeJSON(out, found)
	}
	if len(found) == 0 {
		fmt.Fprintln(cmd.ErrOrStderr(), "strata verify: no anomalies")
		return nil
	}
	t := newTable("kind", "partition", "segment", "object", "detail")
	for _, a := range found {
		t.add(a.Kind, dash(a.Partition), dash(a.SegmentID), dash(a.Object), a.Detail)
	}
	return t.write(out)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
