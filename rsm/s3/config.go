package s3

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Secret is a credential. It prints as "(redacted)" through fmt (every verb), encoding/json,
// encoding.TextMarshaler and zap, so that a Config can be logged whole.
type Secret string

const redacted = "(redacted)"

// Format implements fmt.Formatter: every verb, %#v and %x included, prints "(redacted)".
func (Secret) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// String implements fmt.Stringer.
func (Secret) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return redacted }

// MarshalText implements encoding.TextMarshaler, which encoding/json and zap's reflection use.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Config says which bucket and prefix a Store uses and how it reaches and authenticates to
// them. Everything about how it transfers data is an Option.
//
// Config prints with its secrets redacted (String, fmt, JSON, zap), so it may be logged.
type Config struct {
	// Bucket is the bucket holding the segments. Required.
	Bucket string
	// Prefix is prepended to every key; a '/' is appended if it lacks one. Several stores (one
	// per cluster) can share a bucket under different prefixes. Default: none.
	Prefix string
	// Region is the bucket's region. Default: the SDK's chain (AWS_REGION, the shared config
	// file); with an Endpoint and no region anywhere, "us-east-1", which S3-compatible
	// servers accept.
	Region string
	// Endpoint is the base URL of an S3-compatible server, e.g. "http://127.0.0.1:9000".
	// Default: AWS.
	Endpoint string
	// PathStyle addresses the bucket in the path ("host/bucket/key") rather than the host name
	// ("bucket.host/key"), as most S3-compatible servers require.
	PathStyle bool
	// AccessKeyID, SecretAccessKey and SessionToken are static credentials. With AccessKeyID
	// empty the SDK's default chain is used: environment, shared files, SSO, web identity,
	// container and EC2 instance roles (config.LoadDefaultConfig).
	AccessKeyID     string
	SecretAccessKey Secret
	SessionToken    Secret
}

// String prints the configuration with its secrets redacted.
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "s3://%s/%s", c.Bucket, c.normalizedPrefix())
	if c.Region != "" {
		fmt.Fprintf(&b, " region=%s", c.Region)
	}
	if c.Endpoint != "" {
		fmt.Fprintf(&b, " endpoint=%s", c.Endpoint)
	}
	if c.PathStyle {
		b.WriteString(" path-style")
	}
	if c.AccessKeyID != "" {
		fmt.Fprintf(&b, " access-key-id=%s secret-access-key=%s", c.AccessKeyID, redacted)
		if c.SessionToken != "" {
			b.WriteString(" session-token=" + redacted)
		}
	} else {
		b.WriteString(" credentials=default-chain")
	}
	return b.String()
}

// GoString prints the configuration as String does, so %#v redacts as well.
func (c Config) GoString() string { return "s3.Config{" + c.String() + "}" }

// MarshalLogObject implements zapcore.ObjectMarshaler.
func (c Config) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("bucket", c.Bucket)
	enc.AddString("prefix", c.normalizedPrefix())
	enc.AddString("region", c.Region)
	enc.AddString("endpoint", c.Endpoint)
	enc.AddBool("pathStyle", c.PathStyle)
	enc.AddString("accessKeyID", c.AccessKeyID)
	if c.SecretAccessKey != "" {
		enc.AddString("secretAccessKey", redacted)
	}
	if c.SessionToken != "" {
		enc.AddString("sessionToken", redacted)
	}
	return nil
}

func (c Config) normalizedPrefix() string {
	if c.Prefix != "" && !strings.HasSuffix(c.Prefix, "/") {
		return c.Prefix + "/"
	}
	return c.Prefix
}

// Environment variables ConfigFromEnv reads.
const (
	EnvBucket    = "STRATA_S3_BUCKET"
	EnvPrefix    = "STRATA_S3_PREFIX"
	EnvEndpoint  = "STRATA_S3_ENDPOINT"
	EnvPathStyle = "STRATA_S3_PATH_STYLE"
)

// ConfigFromEnv builds a Config from STRATA_S3_BUCKET (required), STRATA_S3_PREFIX,
// STRATA_S3_ENDPOINT and STRATA_S3_PATH_STYLE ("true" or "false"; default true when an
// endpoint is set, since S3-compatible servers mostly need it). Region and credentials are left
// to the SDK's chain, which reads AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN and the rest.
func ConfigFromEnv() (Config, error) {
	c := Config{
		Bucket:   os.Getenv(EnvBucket),
		Prefix:   os.Getenv(EnvPrefix),
		Endpoint: os.Getenv(EnvEndpoint),
	}
	if c.Bucket == "" {
		return Config{}, fmt.Errorf("rsm/s3: %s is not set", EnvBucket)
	}
	c.PathStyle = c.Endpoint != ""
	if v := os.Getenv(EnvPathStyle); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Config{}, fmt.Errorf("rsm/s3: %s=%q is not true or false", EnvPathStyle, v)
		}
		c.PathStyle = b
	}
	return c, nil
}

// Option tunes how a Store transfers data.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// Limits S3 sets on multipart uploads.
const (
	minPartSize = 5 << 20
	maxPartSize = 5 << 30
	maxParts    = 10000
)

type options struct {
	logger      *zap.Logger
	httpClient  *http.Client
	partSize    int64
	threshold   int64
	concurrency int
	maxAttempts int
	maxBackoff  time.Duration
	checksum    types.ChecksumAlgorithm
	indexWindow int64
	retryBudget time.Duration
	metrics     prometheus.Registerer // see WithMetrics
}

func defaultOptions() options {
	return options{
		logger:      zap.NewNop(),
		partSize:    64 << 20,
		threshold:   1 << 30,
		concurrency: 4,
		maxAttempts: 10,
		maxBackoff:  20 * time.Second,
		checksum:    types.ChecksumAlgorithmCrc32c,
		indexWindow: 256 << 10,
		retryBudget: DefaultRetryBudget,
	}
}

func (o *options) validate() error {
	switch {
	case o.partSize < minPartSize || o.partSize > maxPartSize:
		return fmt.Errorf("part size %d is outside S3's limits [%d, %d]", o.partSize, minPartSize, maxPartSize)
	case o.threshold < 0 || o.threshold > maxPartSize:
		return fmt.Errorf("multipart threshold %d is outside [0, %d] (a single PUT is at most 5 GiB)", o.threshold, int64(maxPartSize))
	case o.concurrency < 1:
		return fmt.Errorf("concurrency %d is below 1", o.concurrency)
	case o.maxAttempts < 1:
		return fmt.Errorf("max attempts %d is below 1", o.maxAttempts)
	case o.maxBackoff <= 0:
		return fmt.Errorf("max backoff %v is not positive", o.maxBackoff)
	case o.retryBudget <= 0:
		return fmt.Errorf("retry budget %v is not positive", o.retryBudget)
	}
	return nil
}

// WithLogger sets the logger. The Store logs at Warn what it cannot report through an error (a
// cleanup that failed after the error was decided) and at Debug each resumed download. It never
// logs credentials. Default: discard.
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(o *options) {
		if l != nil {
			o.logger = l
		}
	})
}

// WithHTTPClient makes the Store send its requests through c, for proxies, custom TLS or
// instrumentation. c is used as it is: a CA bundle named by AWS_CA_BUNDLE or the shared config
// is not added to it, and the Store does not close its idle connections on Close. Default: a
// client of the Store's own, built from the SDK's transport with the CA bundle if one is
// configured, that does not follow redirects, waits at most a minute for response headers
// once a request is sent, and whose idle connections Close closes.
func WithHTTPClient(c *http.Client) Option {
	return optionFunc(func(o *options) { o.httpClient = c })
}

// WithPartSize sets the size of each part of a multipart upload: between 5 MiB and 5 GiB
// (S3's limits). A log that would need more than 10,000 parts uses larger ones. Larger parts
// mean fewer requests; memory does not depend on it, since parts are read from the log file as
// they are sent. Default: 64 MiB.
func WithPartSize(n int64) Option {
	return optionFunc(func(o *options) { o.partSize = n })
}

// WithMultipartThreshold sets the log size above which a log is uploaded in parts rather than
// with one PUT; at most 5 GiB. Default: 1 GiB, Kafka's default segment.bytes, so that a segment
// of Kafka's default size costs 2 PUTs and is written by the server once (a server that
// assembles parts, as versitygw's posix backend does, writes every byte twice). One PUT is one
// stream; a broker copies many segments at once (remote.log.manager.copier.thread.pool.size),
// so that seldom limits it. Lower the threshold where one stream to S3 is slow, or where
// resending a whole log after a failed PUT costs too much: parts are retried one by one.
func WithMultipartThreshold(n int64) Option {
	return optionFunc(func(o *options) { o.threshold = n })
}

// WithConcurrency sets how many parts of one log are sent at once. Default: 4.
func WithConcurrency(n int) Option {
	return optionFunc(func(o *options) { o.concurrency = n })
}

// WithRetries sets how many times a request is attempted (the first attempt included) and the
// longest backoff between attempts; backoff is exponential with full jitter. Throttling (503
// SlowDown), server errors (500, 502, 503, 504), broken connections and truncated responses are
// retried; errors that retrying cannot fix are not (see rsm.ErrPermanent). A download that
// breaks part way resumes where it stopped with the same budget, renewed whenever bytes arrive.
// Default: 10 attempts, 20 s.
func WithRetries(maxAttempts int, maxBackoff time.Duration) Option {
	return optionFunc(func(o *options) { o.maxAttempts, o.maxBackoff = maxAttempts, maxBackoff })
}

// WithChecksumAlgorithm sets the checksum sent with every upload for S3 to verify, and checked
// on whole-object downloads: types.ChecksumAlgorithmCrc32c (default), Crc32, Crc64nvme, Sha1 or
// Sha256. The empty algorithm sends none, for S3-compatible servers that reject these headers;
// the index bundle's own CRC-32C still guards indexes.
func WithChecksumAlgorithm(a types.ChecksumAlgorithm) Option {
	return optionFunc(func(o *options) { o.checksum = a })
}
