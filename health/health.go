// Package health is the HTTP face an operator's monitoring scrapes and probes: /metrics in
// Prometheus's format, /healthz (liveness) and /readyz (readiness). A Go broker mounts
// Handler on its own server; `strata serve --metrics-addr` serves it on a loopback address.
//
// A probe answers 200 with "ok" when every check of its kind passes, and 503 with one line per
// failing check ("name: error") otherwise, so that the reason (a halted metadata partition and
// its offset, say) is in the probe's log. Checks run on every request and must be quick: the
// manager's (rlmm.Manager.CheckReady and CheckLive) only read its state under a lock.
package health

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check returns nil when what it checks is well, and otherwise an error saying what is not.
type Check func() error

// Option configures Handler.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type named struct {
	name  string
	check Check
}

type config struct {
	gatherer prometheus.Gatherer
	ready    []named
	live     []named
}

// WithGatherer serves g's metrics at /metrics (usually the *prometheus.Registry the components'
// WithMetrics options registered on). Without it /metrics answers 404.
func WithGatherer(g prometheus.Gatherer) Option {
	return optionFunc(func(c *config) { c.gatherer = g })
}

// WithReadiness adds a check to /readyz under name; for a manager,
// WithReadiness("rlmm", m.CheckReady).
func WithReadiness(name string, check Check) Option {
	return optionFunc(func(c *config) { c.ready = append(c.ready, named{name, check}) })
}

// WithLiveness adds a check to /healthz under name; for a manager,
// WithLiveness("rlmm", m.CheckLive).
func WithLiveness(name string, check Check) Option {
	return optionFunc(func(c *config) { c.live = append(c.live, named{name, check}) })
}

// Handler returns the handler of /metrics, /healthz and /readyz. With no check of a kind, its
// probe answers 200.
func Handler(opts ...Option) http.Handler {
	var c config
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	mux := http.NewServeMux()
	if c.gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(c.gatherer, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	}
	mux.Handle("GET /healthz", probe(c.live))
	mux.Handle("GET /readyz", probe(c.ready))
	return mux
}

func probe(checks []named) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var failed []string
		for _, n := range checks {
			if err := n.check(); err != nil {
				// One line per failure: errors.Join puts each joined error on its own line.
				failed = append(failed, n.name+": "+strings.ReplaceAll(err.Error(), "\n", "\n"+n.name+": "))
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if len(failed) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, strings.Join(failed, "\n"))
			return
		}
		fmt.Fprintln(w, "ok")
	})
}
