package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	probes "github.com/stratalog/strata/health"
	"github.com/stratalog/strata/rlmm"
)

// metricsRegistry returns the registry of --metrics-addr and the manager's options that
// register on it; neither without the flag. The process owns this registry, so it also
// carries Go's runtime and the process's own metrics.
func (f *serveFlags) metricsRegistry() (*prometheus.Registry, []rlmm.Option) {
	if f.metricsAddr == "" {
		return nil, nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg, []rlmm.Option{rlmm.WithMetrics(reg)}
}

// checkMetricsAddr refuses, before the manager starts, a --metrics-addr that is not loopback:
// the endpoints have no authentication, and a scraper on the host reaches loopback.
func (f *serveFlags) checkMetricsAddr() error {
	if f.metricsAddr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(f.metricsAddr)
	if err != nil {
		return fmt.Errorf("--metrics-addr %q: %w", f.metricsAddr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--metrics-addr %q: only a loopback address (127.0.0.1, ::1, localhost) is allowed", f.metricsAddr)
	}
	return nil
}

// serveMetrics serves /metrics, /healthz and /readyz (package health) for m on --metrics-addr
// until the returned stop is called; stop waits for the server's goroutine. Without the flag it
// serves nothing and stop does nothing.
func (f *serveFlags) serveMetrics(reg *prometheus.Registry, m *rlmm.Manager, log *zap.Logger) (stop func(), err error) {
	if f.metricsAddr == "" {
		return func() {}, nil
	}
	lis, err := net.Listen("tcp", f.metricsAddr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	srv := &http.Server{
		Handler: probes.Handler(probes.WithGatherer(reg),
			probes.WithReadiness("rlmm", m.CheckReady), probes.WithLiveness("rlmm", m.CheckLive)),
		ReadHeaderTimeout: 10 * time.Second,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", zap.Error(err))
		}
	}()
	log.Info("serving metrics and health", zap.Stringer("addr", lis.Addr()))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
		<-done
	}, nil
}
