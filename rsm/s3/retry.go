package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go/middleware"

	"github.com/stratalog/strata/rsm"
)

// DefaultRetryBudget is the retry budget of a Store opened without WithRetryBudget.
const DefaultRetryBudget = 30 * time.Second

// WithRetryBudget bounds the time one request may spend being retried: once d has passed since
// its first attempt began, a failed attempt is not retried and its error is returned. It also
// bounds each attempt's connection (dial, TLS handshake, waiting for response headers) and the
// backoff between attempts (at most a quarter of d), so that an endpoint that refuses, drops or
// never answers is reported after about d, not after every attempt of WithRetries has timed
// out. The transfer of a body is not bounded by it. Default DefaultRetryBudget (30 s); must be
// positive.
func WithRetryBudget(d time.Duration) Option {
	return optionFunc(func(o *options) { o.retryBudget = d })
}

// opStartKey carries the time an operation's first attempt began, for budgetRetryer.
type opStartKey struct{}

// stampStart records when an operation begins, before the SDK's retry loop.
var stampStart = middleware.InitializeMiddlewareFunc("strataRetryBudgetStart",
	func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		return next.HandleInitialize(context.WithValue(ctx, opStartKey{}, time.Now()), in)
	})

func addStampStart(stack *middleware.Stack) error {
	return stack.Initialize.Add(stampStart, middleware.Before)
}

// budgetRetryer stops retrying an operation once its retry budget is spent.
type budgetRetryer struct {
	aws.RetryerV2
	budget time.Duration
}

func (r budgetRetryer) GetRetryToken(ctx context.Context, opErr error) (func(error) error, error) {
	if start, ok := ctx.Value(opStartKey{}).(time.Time); ok && time.Since(start) >= r.budget {
		return nil, &budgetSpentError{budget: r.budget, err: opErr}
	}
	return r.RetryerV2.GetRetryToken(ctx, opErr)
}

// budgetSpentError is the last attempt's error, once the retry budget is spent.
type budgetSpentError struct {
	budget time.Duration
	err    error
}

func (e *budgetSpentError) Error() string {
	return fmt.Sprintf("retried for the retry budget of %s: %v", e.budget, e.err)
}

func (e *budgetSpentError) Unwrap() error { return e.err }

// permanentTransport says why err, met on the way to the server, is one that no retry fixes,
// or "" when a retry might succeed.
func permanentTransport(err error) string {
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	var he x509.HostnameError
	var rh tls.RecordHeaderError
	var ve *tls.CertificateVerificationError
	switch {
	case errors.As(err, &ua):
		return "the server's certificate is signed by an authority not trusted here (AWS_CA_BUNDLE names the CA to trust)"
	case errors.As(err, &he):
		return "the server's certificate is not for this host name"
	case errors.As(err, &ci):
		return "the server's certificate is not valid"
	case errors.As(err, &ve):
		return "the server's certificate cannot be verified"
	case errors.As(err, &rh), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return "the endpoint does not speak TLS: an https:// endpoint for a plain HTTP server?"
	}
	return ""
}

// notTLSAnswer reports whether the server answered a plain HTTP request with what a TLS
// server sends to one: an https:// server behind an http:// endpoint.
func notTLSAnswer(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "HTTP request to an HTTPS server") ||
		strings.Contains(msg, "malformed HTTP response \"\\x15\\x03")
}

// resetByTLSServer reports whether err is a plain HTTP request's connection dropped by a
// server that, asked again, completes a TLS handshake: an http:// endpoint for an HTTPS server
// that resets plain requests instead of answering them. The probe sends nothing but a
// handshake, to the endpoint's own host, and is made only for such a drop.
func resetByTLSServer(err error) bool {
	var ue *url.Error
	if !errors.As(err, &ue) || !strings.HasPrefix(ue.URL, "http://") ||
		!(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)) {
		return false
	}
	u, perr := url.Parse(ue.URL)
	if perr != nil {
		return false
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	// Only whether the server speaks TLS matters here, not whom it claims to be.
	c, derr := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", host, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec
	if derr != nil {
		return false
	}
	c.Close()
	return true
}

// classifyTransport marks err as rsm.ErrPermanent when it is a mismatch between the endpoint
// and the server that no retry fixes.
func classifyTransport(err error) error {
	if why := permanentTransport(err); why != "" {
		return fmt.Errorf("%w: %s: %w", rsm.ErrPermanent, why, err)
	}
	if notTLSAnswer(err) || resetByTLSServer(err) {
		return fmt.Errorf("%w: the server speaks TLS: an http:// endpoint for an HTTPS server?: %w", rsm.ErrPermanent, err)
	}
	return nil
}

// dialer bounds connecting to the server by the retry budget.
func dialer(budget time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: min(budget, 30*time.Second), KeepAlive: 30 * time.Second}
}
