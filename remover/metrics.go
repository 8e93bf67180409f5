package remover

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/stratalog/strata/tier"
)

// WithMetrics registers the remover's metrics on reg (nothing is registered without it):
// partitions pending, in progress and waiting to retry, deletions done and attempts failed,
// metadata partitions owned, read from the remover at scrape time; through tier.WithMetrics,
// Kafka's delete requests, errors and lag for the segments it deletes; and the franz-go metrics
// (kprom, strata_remover_kafka_*) of the client a JoinGroup opens.
// New registers them and Close unregisters the remover's own, so one open remover reports on a
// registry at a time; New fails for a second (ErrConfig). Wrap reg with
// prometheus.WrapRegistererWith to tell several apart.
func WithMetrics(reg prometheus.Registerer) Option {
	return optionFunc(func(r *Remover) {
		r.metReg = reg
		if reg != nil {
			r.tierOpts = append(r.tierOpts, tier.WithMetrics(reg))
		}
	})
}

// registerMetrics registers the remover's collector, if WithMetrics asked for it.
func (r *Remover) registerMetrics() error {
	if r.metReg == nil {
		return nil
	}
	c := newCollector(r)
	if err := r.metReg.Register(c); err != nil {
		return fmt.Errorf("%w: WithMetrics: registering the remover's metrics (is another remover open on this registry?): %w", ErrConfig, err)
	}
	r.metCollector = c
	return nil
}

func (r *Remover) unregisterMetrics() {
	if r.metCollector != nil {
		r.metReg.Unregister(r.metCollector)
	}
}

type collector struct {
	r                 *Remover
	partitions, owned *prometheus.Desc
	done, failures    *prometheus.Desc
}

func newCollector(r *Remover) *collector {
	return &collector{
		r: r,
		partitions: prometheus.NewDesc("strata_remover_partitions",
			"Partitions of owned metadata partitions whose deletion is not finished, by state: pending (waiting for a worker or a retry; retrying ones included), in_progress, retrying (the last attempt failed).",
			[]string{"state"}, nil),
		owned: prometheus.NewDesc("strata_remover_owned_metadata_partitions", "Metadata partitions this remover owns.", nil, nil),
		done:  prometheus.NewDesc("strata_remover_partitions_deleted_total", "Partition deletions this remover finished (DELETE_PARTITION_FINISHED published).", nil, nil),
		failures: prometheus.NewDesc("strata_remover_failures_total",
			"Attempts to delete a partition that failed and will be retried with backoff.", nil, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.partitions
	ch <- c.owned
	ch <- c.done
	ch <- c.failures
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	r := c.r
	r.mu.Lock()
	pending, inProgress, retrying, owned := r.pending, len(r.inFlight), len(r.retry), len(r.owned)
	done, failures := r.stats.Done, r.stats.Failures
	r.mu.Unlock()
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	gauge(c.partitions, pending, "pending")
	gauge(c.partitions, inProgress, "in_progress")
	gauge(c.partitions, retrying, "retrying")
	gauge(c.owned, owned)
	ch <- prometheus.MustNewConstMetric(c.done, prometheus.CounterValue, float64(done))
	ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(failures))
}

// groupClientMetrics returns the hooks that report a group client's metrics on the remover's
// registry: only while this remover's own collector is registered there (so no other remover
// reports on it) and for one group client at a time, since kprom cannot register twice.
func (r *Remover) groupClientMetrics() []kgo.Opt {
	if r.metCollector == nil || !r.groupMetrics.CompareAndSwap(false, true) {
		return nil
	}
	return []kgo.Opt{kgo.WithHooks(
		kprom.NewMetrics("strata", kprom.Registerer(r.metReg), kprom.Subsystem("remover_kafka")),
		groupClosed{r},
	)}
}

// groupClosed frees the group metrics for the next group client once kprom has unregistered
// (kprom's own OnClientClosed hook runs first: hooks run in order).
type groupClosed struct{ r *Remover }

func (g groupClosed) OnClientClosed(*kgo.Client) { g.r.groupMetrics.Store(false) }
