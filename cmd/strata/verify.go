package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/spf13/cobra"

	"github.com/stratalog/strata/audit"
	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rsm"
)

// anomalyJSON is one anomaly as verify prints it in JSON.
type anomalyJSON struct {
	Kind              audit.Kind `json:"kind"`
	Partition         string     `json:"partition,omitempty"` // <topicId>:<topic>-<p>
	SegmentID         string     `json:"segmentId,omitempty"`
	StartOffset       *int64     `json:"startOffset,omitempty"`
	Object            string     `json:"object,omitempty"`
	MetadataPartition *int32     `json:"metadataPartition,omitempty"`
	Offset            *int64     `json:"offset,omitempty"`
	AgeMs             *int64     `json:"ageMs,omitempty"`
	Detail            string     `json:"detail"`
}

func toJSON(a audit.Anomaly) anomalyJSON {
	j := anomalyJSON{Kind: a.Kind, Detail: a.Detail}
	if a.Partition != (proto.TopicIDPartition{}) {
		j.Partition = a.Partition.String()
	}
	if id := a.SegmentID(); id != proto.ZeroUUID {
		j.SegmentID = id.String()
	}
	switch {
	case a.Segment != nil:
		j.StartOffset = &a.Segment.StartOffset
	case a.Object != nil && a.Object.Attributed():
		j.StartOffset = &a.Object.StartOffset
	}
	if a.Object != nil {
		j.Object = a.Object.Name
	}
	if a.Offset >= 0 {
		j.MetadataPartition, j.Offset = &a.MetadataPartition, &a.Offset
	}
	if a.Age > 0 {
		ms := a.Age.Milliseconds()
		j.AgeMs = &ms
	}
	return j
}

func newVerifyCmd() *cobra.Command {
	var (
		cf         clusterFlags
		sf         storageFlags
		stuckAfter time.Duration
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Report anomalies in remote storage and its metadata; exit status 1 when there are any",
		Long: `verify reads the whole metadata topic (and, with --s3-bucket or --local-dir, lists the storage)
and reports: segments stuck in COPY_SEGMENT_STARTED or DELETE_SEGMENT_STARTED for longer than
--stuck-after; gaps and overlaps among a partition's finished segments; finished segments whose
objects are missing from storage; objects no live segment owns (orphans) and objects no segment
can own (stray); partitions MARKED or STARTED for deletion and never finished; metadata
partitions halted at a record they cannot read; records skipped; and every record the metadata
could not apply (an update of a segment never added, an invalid transition, a duplicate add, a
record of a partition already deleted), with where it is and why. It exits with status 1
when it finds any. It changes nothing; repair plans the fixes.

--format prometheus prints the count of each kind of anomaly, zero included, and the time of
the run in Prometheus' text exposition format, for a cron job to hand to node_exporter's
textfile collector.`,
		Example: `  strata verify --local-dir /var/kafka/tiered
  strata verify --s3-bucket tiered --format prometheus > /var/lib/node_exporter/strata.prom.tmp; mv /var/lib/node_exporter/strata.prom.tmp /var/lib/node_exporter/strata.prom`,
		Args: cobra.NoArgs,
	}
	format := addFormat(cmd, "prometheus: anomaly counts by kind in the text exposition format", "table", "json", "prometheus")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := notNegative("stuck-after", stuckAfter); err != nil {
			return err
		}
		return withAnomalies(cmd, &cf, &sf, stuckAfter, func(_ context.Context, _ *cluster, _ rsm.Manager, found []audit.Anomaly, now time.Time) error {
			if err := printAnomalies(cmd, format.value, found, now); err != nil {
				return err
			}
			if len(found) > 0 {
				return &findingsError{fmt.Sprintf("verify found %d anomalies", len(found))}
			}
			return nil
		})
	}
	cf.register(cmd, true)
	sf.register(cmd)
	cmd.Flags().DurationVar(&stuckAfter, "stuck-after", time.Hour, "a segment COPY_ or DELETE_SEGMENT_STARTED for longer than this is stuck")
	return cmd
}

// withAnomalies opens the storage (when configured) and the cluster, finds the anomalies and
// runs fn with them.
func withAnomalies(cmd *cobra.Command, cf *clusterFlags, sf *storageFlags, stuckAfter time.Duration,
	fn func(ctx context.Context, c *cluster, st rsm.Manager, found []audit.Anomaly, now time.Time) error) error {
	return withCluster(cmd, cf, func(ctx context.Context, c *cluster) error {
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
		found, err := audit.Find(ctx, c.m.View(), st, audit.Options{StuckAfter: stuckAfter, Now: now, Halts: c.haltList()})
		if err != nil {
			return err
		}
		return fn(ctx, c, st, found, now)
	})
}

func printAnomalies(cmd *cobra.Command, format string, found []audit.Anomaly, now time.Time) error {
	out := cmd.OutOrStdout()
	switch format {
	case "json":
		rows := make([]anomalyJSON, len(found))
		for i, a := range found {
			rows[i] = toJSON(a)
		}
		return writeJSON(out, rows)
	case "prometheus":
		return writePrometheus(out, found, now)
	}
	if len(found) == 0 {
		fmt.Fprintln(cmd.ErrOrStderr(), "strata verify: no anomalies")
		return nil
	}
	t := newTable("kind", "partition", "segment", "object", "detail")
	for _, a := range found {
		j := toJSON(a)
		t.add(a.Kind, dash(j.Partition), dash(j.SegmentID), dash(j.Object), a.Detail)
	}
	return t.write(out)
}

// writePrometheus prints the anomaly counts by kind, every kind included, and the time of the
// run, in Prometheus' text exposition format.
func writePrometheus(w io.Writer, found []audit.Anomaly, now time.Time) error {
	reg := prometheus.NewRegistry()
	anomalies := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "strata_verify_anomalies",
		Help: "Anomalies strata verify found in remote storage and its metadata, by kind.",
	}, []string{"kind"})
	last := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "strata_verify_timestamp_seconds",
		Help: "When the strata verify run that found these anomalies started, in seconds since the Unix epoch.",
	})
	reg.MustRegister(anomalies, last)
	for _, k := range audit.Kinds {
		anomalies.WithLabelValues(string(k))
	}
	for _, a := range found {
		anomalies.WithLabelValues(string(a.Kind)).Inc()
	}
	last.Set(float64(now.UnixMilli()) / 1000)
	mfs, err := reg.Gather()
	if err != nil {
		return err
	}
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(w, mf); err != nil {
			return err
		}
	}
	return nil
}
