package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratalog/strata/audit"
	"github.com/stratalog/strata/rsm"
)

// stepJSON is one repair step as repair prints it in JSON.
type stepJSON struct {
	Action audit.Action `json:"action"`
	Kind   audit.Kind   `json:"kind"`
	Target string       `json:"target"`
	Detail string       `json:"detail"`
	Result string       `json:"result,omitempty"`
}

func resultText(s audit.Step) string {
	switch s.Result {
	case audit.Refused:
		return "refused: " + s.Why
	case audit.Failed:
		return "failed: " + s.Err.Error()
	}
	return string(s.Result)
}

func newRepairCmd() *cobra.Command {
	var (
		cf                    clusterFlags
		sf                    storageFlags
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
the normal events and prints each step's result. Before each step it reads the metadata again
and refuses a step no longer called for: it never deletes a live segment's data. A step that
fails makes the exit status 2.`,
		Args: cobra.NoArgs,
	}
	format := addFormat(cmd, "json: one array of steps", "table", "json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := notNegative("stuck-after", stuckAfter); err != nil {
			return err
		}
		if err := notNegative("orphan-age", orphanAge); err != nil {
			return err
		}
		return withAnomalies(cmd, &cf, &sf, stuckAfter, func(ctx context.Context, c *cluster, st rsm.Manager, found []audit.Anomaly, now time.Time) error {
			plan, err := audit.Plan(found, audit.PlanOptions{Storage: st != nil, OrphanAge: orphanAge, Now: now})
			if err != nil {
				return err
			}
			failed := 0
			if execute {
				failed = audit.Execute(ctx, c.m, c.m.View(), st, plan, audit.ExecuteOptions{BrokerID: -1, Logger: cf.logger(cmd.ErrOrStderr())})
			}
			if err := printPlan(cmd, format.value, plan, execute); err != nil {
				return err
			}
			if failed > 0 {
				return fmt.Errorf("%d repair steps failed", failed)
			}
			return nil
		})
	}
	cf.register(cmd, true)
	sf.register(cmd)
	cmd.Flags().BoolVar(&execute, "execute", false, "carry out the plan (without it, repair only prints it)")
	cmd.Flags().DurationVar(&stuckAfter, "stuck-after", time.Hour, "a segment COPY_ or DELETE_SEGMENT_STARTED for longer than this is stuck")
	cmd.Flags().DurationVar(&orphanAge, "orphan-age", 24*time.Hour, "delete orphans only once older than this, so that no copy in flight loses its data")
	return cmd
}

func printPlan(cmd *cobra.Command, format string, plan []audit.Step, executed bool) error {
	out := cmd.OutOrStdout()
	if format == "json" {
		rows := make([]stepJSON, len(plan))
		for i, s := range plan {
			rows[i] = stepJSON{Action: s.Action, Kind: s.Anomaly.Kind, Target: s.Target, Detail: s.Detail, Result: resultText(s)}
		}
		return writeJSON(out, rows)
	}
	if len(plan) == 0 {
		fmt.Fprintln(cmd.ErrOrStderr(), "strata repair: nothing to repair")
		return nil
	}
	headers := []string{"action", "kind", "target", "detail"}
	if executed {
		headers = append(headers, "result")
	}
	t := newTable(headers...)
	for _, s := range plan {
		row := []any{s.Action, s.Anomaly.Kind, s.Target, s.Detail}
		if executed {
			row = append(row, dash(resultText(s)))
		}
		t.add(row...)
	}
	if err := t.write(out); err != nil {
		return err
	}
	if !executed {
		fmt.Fprintln(cmd.ErrOrStderr(), "strata repair: this is the plan; run again with --execute to carry it out")
	}
	return nil
}
