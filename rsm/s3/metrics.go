package s3

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratalog/strata/rsm"
)

// WithMetrics registers the Store's S3 metrics on reg, by S3 operation (PutObject, UploadPart,
// GetObject, DeleteObjects, ...): calls, retries, errors by kind and latency, measured by a
// middleware on the SDK's stack around its retry loop. Every Store given the same reg reports
// into the same series. Nothing is registered without it.
func WithMetrics(reg prometheus.Registerer) Option {
	return optionFunc(func(o *options) { o.metrics = reg })
}

// Kinds of the errors counter: what classify makes of the error a call ended with.
const (
	errKindNotFound  = "not_found" // rsm.ErrNotFound: a missing object, which a caller may expect
	errKindPermanent = "permanent" // rsm.ErrPermanent: credentials, permissions, the bucket
	errKindCanceled  = "canceled"  // the caller's context ended
	errKindOther     = "other"     // retries exhausted or not retryable, transport errors
)

type metrics struct {
	requests, retries, errors *prometheus.CounterVec
	latency                   *prometheus.HistogramVec
	ops                       sync.Map // operation name -> *opMetrics
}

// opMetrics is one operation's series, resolved once.
type opMetrics struct {
	requests, retries prometheus.Counter
	latency           prometheus.Observer
}

// register registers c on reg, or returns the collector already registered under the same
// description, so that Stores share their series.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

// newMetrics registers the metrics on reg, or returns nil when reg is nil.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	var errs []error
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		c, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Subsystem: "s3", Name: name, Help: help}, labels))
		errs = append(errs, err)
		return c
	}
	m := &metrics{
		requests: counter("requests_total", "S3 calls by operation; each is one or more HTTP attempts (requests plus retries).", "operation"),
		retries:  counter("retries_total", "HTTP attempts beyond a call's first, by operation: throttling, server errors, broken connections.", "operation"),
		errors: counter("errors_total",
			"S3 calls that failed after their retries, by operation and kind: not_found, permanent (credentials, permissions, bucket), canceled, other.",
			"operation", "kind"),
	}
	latency, err := register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "strata", Subsystem: "s3", Name: "request_duration_seconds",
		Help:    "Duration of S3 calls by operation, retries and backoff included.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 15),
	}, []string{"operation"}))
	errs = append(errs, err)
	m.latency = latency
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}
	return m, nil
}

// apiOptions returns the SDK stack options that measure each call.
func (m *metrics) apiOptions() []func(*middleware.Stack) error {
	if m == nil {
		return nil
	}
	return []func(*middleware.Stack) error{m.addMiddleware}
}

// addMiddleware measures a call from the initialize step, around everything the SDK does for
// it, retries included. It goes after the SDK's own initialize middlewares, which put the
// operation's name in the context.
func (m *metrics) addMiddleware(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("StrataMetrics",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			start := time.Now()
			out, md, err := next.HandleInitialize(ctx, in)
			m.observe(awsmiddleware.GetOperationName(ctx), time.Since(start), md, err)
			return out, md, err
		}), middleware.After)
}

func (m *metrics) op(name string) *opMetrics {
	if v, ok := m.ops.Load(name); ok {
		return v.(*opMetrics)
	}
	v, _ := m.ops.LoadOrStore(name, &opMetrics{
		requests: m.requests.WithLabelValues(name),
		retries:  m.retries.WithLabelValues(name),
		latency:  m.latency.WithLabelValues(name),
	})
	return v.(*opMetrics)
}

func (m *metrics) observe(name string, d time.Duration, md middleware.Metadata, err error) {
	o := m.op(name)
	o.requests.Inc()
	o.latency.Observe(d.Seconds())
	if res, ok := retry.GetAttemptResults(md); ok && len(res.Results) > 1 {
		o.retries.Add(float64(len(res.Results) - 1))
	}
	if err == nil {
		return
	}
	kind := errKindOther
	switch err = classify(err); {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		kind = errKindCanceled
	case errors.Is(err, rsm.ErrNotFound):
		kind = errKindNotFound
	case errors.Is(err, rsm.ErrPermanent):
		kind = errKindPermanent
	}
	m.errors.WithLabelValues(name, kind).Inc()
}
