package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/remover"
	"github.com/stratalog/strata/rsm"
	"github.com/stratalog/strata/tier"
)

// Repair actions.
const (
	actDeleteSegment   = "delete-segment"   // a stuck copy or delete: DELETE_SEGMENT_STARTED, delete, DELETE_SEGMENT_FINISHED
	actDeleteOrphan    = "delete-orphan"    // remove an orphan's objects from storage
	actFinishPartition = "finish-partition" // finish a partition deletion as the remover does
	actManual          = "manual"           // needs an operator: nothing safe to do automatically
	actWait            = "wait"             // an orphan younger than the safety age: it may belong to a copy in flight
)

type repairStep struct {
	Action  string `json:"action"`
	Kind    string `json:"kind"`
	Target  string `json:"target"`
	Detail  string `json:"detail"`
	Result  string `json:"result,omitempty"`
	anomaly anomaly
}

// planRepair turns anomalies into steps. Only anomalies whose fix goes through the normal
// events, or removes data no live segment owns, get an automatic action.
func planRepair(found []anomaly, storage bool, orphanAge time.Duration, now time.Time) []repairStep {
	var plan []repairStep
	for _, a := range found {
		s := repairStep{Kind: a.Kind, anomaly: a, Target: dash(a.SegmentID)}
		switch a.Kind {
		case kindStuckCopy:
			s.Action, s.Detail = actDeleteSegment, "publish DELETE_SEGMENT_STARTED, delete its objects, publish DELETE_SEGMENT_FINISHED"
			if !storage {
				s.Action, s.Detail = actManual, "give --s3-bucket or --local-dir so the segment's objects can be deleted"
			}
		case kindStuckDelete:
			s.Action, s.Detail = actDeleteSegment, "delete its objects, publish DELETE_SEGMENT_FINISHED"
			if !storage {
				s.Action, s.Detail = actManual, "give --s3-bucket or --local-dir so the segment's objects can be deleted"
			}
		case kindPartitionDelete:
			s.Target = a.Partition
			s.Action, s.Detail = actFinishPartition, "delete its remaining segments and publish DELETE_PARTITION_FINISHED"
			if !storage {
				s.Action, s.Detail = actManual, "give --s3-bucket or --local-dir so the partition's objects can be deleted"
			}
		case kindOrphan:
			s.Target = a.Object
			age, known := objectAge(a.obj, now)
			switch {
			case known && age >= orphanAge:
				s.Action, s.Detail = actDeleteOrphan, fmt.Sprintf("no live segment owns it; %s old", age.Round(time.Second))
			case known:
				s.Action, s.Detail = actWait, fmt.Sprintf("only %s old, under --orphan-age %s: it may belong to a copy in flight", age.Round(time.Second), orphanAge)
			default:
				s.Action, s.Detail = actWait, "its age is unknown; delete by hand once sure no copy is in flight"
			}
		case kindStray:
			s.Target, s.Action, s.Detail = a.Object, actManual, a.Detail+": remove by hand once no copy is running"
		case kindGap:
			s.Action, s.Detail = actManual, "the offsets are lost to remote storage unless a broker still holds them locally"
		case kindOverlap:
			s.Action, s.Detail = actManual, "both copies are kept; the older one is released when retention deletes it"
		case kindMissingObjects:
			s.Action, s.Detail = actManual, "the data is gone from storage; check the bucket and the broker's local log"
		default:
			s.Action, s.Detail = actManual, a.Detail
		}
		plan = append(plan, s)
	}
	return plan
}

// objectAge is how old an object is, when its storage says.
func objectAge(o *rsm.Object, now time.Time) (time.Duration, bool) {
	if o == nil || o.Modified.IsZero() {
		return 0, false
	}
	return now.Sub(o.Modified), true
}

// executeRepair carries out the plan's automatic steps, recording each result. It re-checks
// every orphan against the metadata just before deleting it, so a live segment's data is never
// deleted.
func executeRepair(ctx context.Context, c *cluster, st rsm.Manager, plan []repairStep, log *zap.Logger) (failed int) {
	tr := tier.New(c.m, st, tier.WithLogger(log))
	for i := range plan {
		s := &plan[i]
		var err error
		switch s.Action {
		case actDeleteSegment:
			err = tr.Delete(ctx, []proto.SegmentMetadata{*s.anomaly.seg})
		case actFinishPartition:
			err = remover.FinishPartition(ctx, c.m, tr, -1, s.anomaly.tp, log)
		case actDeleteOrphan:
			id := *s.anomaly.Segment
			if _, live, lerr := c.m.View().Segment(id); lerr == nil && live {
				s.Result = "skipped: the segment is live now"
				continue
			}
			err = st.Delete(ctx, &proto.SegmentMetadata{SegmentID: id, StartOffset: s.anomaly.StartOffset})
		default:
			continue
		}
		if err != nil {
			s.Result = "failed: " + err.Error()
			failed++
		} else {
			s.Result = "done"
		}
	}
	return failed
}

func newRepairCmd(cf *clusterFlags, sf *storageFlags, format *string) *cobra.Command {
	var (
		stuckAfter, orphanAge time.Duration
		execute               bool
	)
	cmd := &cobra.Command{
		Use:   "repair [--execute]",
		Short: "Plan, and with --execute carry out, the fixes for what verify finds",
		Long: `repair runs verify's checks and prints a plan: a stuck copy becomes DELETE_SEGMENT_STARTED,
delete, DELETE_SEGMENT_FINISHED; a stuck delete is finished; an unfinished partition deletion is
finished as the remover would; orphans older than --orphan-age are deleted from storage. Everything
else needs an operator and is listed as manual. With --execute it carries the plan out through
the normal events and prints each step's result. It never deletes a live segment's data.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAnomalies(cmd, cf, sf, *format, stuckAfter, func(ctx context.Context, c *cluster, st rsm.Manager, found []anomaly, now time.Time) error {
				plan := planRepair(found, st != nil, orphanAge, now)
				failed := 0
				if execute {
					failed = executeRepair(ctx, c, st, plan, cf.logger(cmd.ErrOrStderr()))
				}
				out := cmd.OutOrStdout()
				if *format == "json" {
					if plan == nil {
						plan = []repairStep{}
					}
					if err := writeJSON(out, plan); err != nil {
						return err
					}
				} else if len(plan) == 0 {
					fmt.Fprintln(cmd.ErrOrStderr(), "strata repair: nothing to repair")
				} else {
					headers := []string{"action", "kind", "target", "detail"}
					if execute {
						headers = append(headers, "result")
					}
					t := newTable(headers...)
					for _, s := range plan {
						row := []any{s.Action, s.Kind, s.Target, s.Detail}
						if execute {
							row = append(row, dash(s.Result))
						}
						t.add(row...)
					}
					if err := t.write(out); err != nil {
						return err
					}
					if !execute {
						fmt.Fprintln(cmd.ErrOrStderr(), "strata repair: this is the plan; run again with --execute to carry it out")
					}
				}
				if failed > 0 {
					return &reportedError{fmt.Sprintf("%d repair steps failed", failed)}
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&execute, "execute", false, "carry out the plan (without it, repair only prints it)")
	cmd.Flags().DurationVar(&stuckAfter, "stuck-after", time.Hour, "a segment COPY_ or DELETE_SEGMENT_STARTED for longer than this is stuck")
	cmd.Flags().DurationVar(&orphanAge, "orphan-age", 24*time.Hour, "delete orphans only once older than this, so that no copy in flight loses its data")
	return cmd
}
