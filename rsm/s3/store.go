package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"net/http"
	"net/http/httptrace"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/logging"
	"go.uber.org/zap"

	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rsm"
)

// cleanupTimeout bounds the abort of a failed multipart upload. It runs on a context detached
// from the caller's, because the caller's is often the reason the upload failed, and an
// upload left incomplete is one that Delete does not remove.
const cleanupTimeout = time.Minute

// Store is an rsm.Manager over an S3 bucket. It is safe for concurrent use.
type Store struct {
	cfg       Config
	bucket    string
	prefix    string
	client    *s3sdk.Client
	o         options
	log       *zap.Logger
	transport *http.Transport // nil when the caller supplied the HTTP client
	backoff   *retry.ExponentialJitterBackoff
}

var (
	_ rsm.Manager      = (*Store)(nil)
	_ rsm.BatchDeleter = (*Store)(nil)
)

// New returns a Store for cfg. It resolves the region and credentials but sends no request:
// call Check to find out at once whether the bucket is reachable with them. Errors in cfg or
// opts wrap rsm.ErrPermanent.
func New(ctx context.Context, cfg Config, opts ...Option) (*Store, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt.apply(&o)
	}
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("rsm/s3: %w: invalid option: %v", rsm.ErrPermanent, err)
	}
	if cfg.Bucket == "" {
		return nil, fmt.Errorf("rsm/s3: %w: no bucket in %v", rsm.ErrPermanent, cfg)
	}
	met, err := newMetrics(o.metrics)
	if err != nil {
		return nil, fmt.Errorf("rsm/s3: %w: %v", rsm.ErrPermanent, err)
	}
	if cfg.AccessKeyID == "" && (cfg.SecretAccessKey != "" || cfg.SessionToken != "") {
		return nil, fmt.Errorf("rsm/s3: %w: a secret access key or session token without an access key id in %v", rsm.ErrPermanent, cfg)
	}
	s := &Store{
		cfg:     cfg,
		bucket:  cfg.Bucket,
		prefix:  cfg.normalizedPrefix(),
		o:       o,
		log:     o.logger,
		backoff: retry.NewExponentialJitterBackoff(o.maxBackoff),
	}
	reqChecksum, respChecksum := aws.RequestChecksumCalculationWhenSupported, aws.ResponseChecksumValidationWhenSupported
	if o.checksum == "" {
		reqChecksum, respChecksum = aws.RequestChecksumCalculationWhenRequired, aws.ResponseChecksumValidationWhenRequired
	}
	load := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer { return newRetryer(o) }),
		config.WithRequestChecksumCalculation(reqChecksum),
		config.WithResponseChecksumValidation(respChecksum),
	}
	if cfg.Region != "" {
		load = append(load, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKeyID != "" {
		load = append(load, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(
			cfg.AccessKeyID, string(cfg.SecretAccessKey), string(cfg.SessionToken))))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("rsm/s3: %w: loading the AWS configuration for %v: %w", rsm.ErrPermanent, cfg, err)
	}
	if o.httpClient != nil {
		awsCfg.HTTPClient = bodySentClient{o.httpClient}
	} else {
		awsCfg.HTTPClient = bodySentClient{s.ownHTTPClient(awsCfg.HTTPClient)}
	}
	if awsCfg.Region == "" {
		if cfg.Endpoint == "" {
			return nil, fmt.Errorf("rsm/s3: %w: no region for %v: set Config.Region or AWS_REGION", rsm.ErrPermanent, cfg)
		}
		awsCfg.Region = "us-east-1"
	}
	// The SDK logs to stderr by default; its few messages belong in the Store's log.
	awsCfg.Logger = sdkLogger{s.log}
	s.client = s3sdk.NewFromConfig(awsCfg, func(so *s3sdk.Options) {
		if cfg.Endpoint != "" {
			so.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		so.UsePathStyle = cfg.PathStyle
		// Ranged GETs carry no checksum by design; saying so on every fetch is noise.
		so.DisableLogOutputChecksumValidationSkipped = true
		so.APIOptions = append(so.APIOptions, met.apiOptions()...)
		so.APIOptions = append(so.APIOptions, addStampStart)
	})
	s.log.Debug("rsm/s3: store opened", zap.Object("config", cfg), zap.String("region", awsCfg.Region))
	return s, nil
}

// ownHTTPClient builds the Store's HTTP client from the transport the SDK configured (a CA
// bundle from AWS_CA_BUNDLE or the shared config included), keeping the transport so that
// Close can close its idle connections.
func (s *Store) ownHTTPClient(sdk aws.HTTPClient) *http.Client {
	bc, ok := sdk.(*awshttp.BuildableClient)
	if !ok {
		bc = awshttp.NewBuildableClient()
	}
	t := bc.GetTransport()
	// Parts go out in parallel; the default of 2 idle connections per host would make most of
	// them dial anew.
	t.MaxIdleConnsPerHost = max(16, 2*s.o.concurrency)
	t.ResponseHeaderTimeout = min(time.Minute, s.o.retryBudget)
	t.TLSHandshakeTimeout = min(10*time.Second, s.o.retryBudget)
	t.DialContext = dialer(s.o.retryBudget).DialContext
	s.transport = t
	return &http.Client{
		Transport: t,
		// A redirect from S3 means a wrong region or endpoint; the SDK reports it, and
		// following it would only fail the signature elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// bodySentWait bounds how long bodySentClient waits for a request's body to be sent after its
// response has arrived: a body of a few hundred bytes is sent in microseconds, and a server that
// answered early and stopped reading a large one must not hold the answer up.
const bodySentWait = 100 * time.Millisecond

// bodySentClient returns a response only once the transport has finished sending the request
// (or after bodySentWait). A server may answer before it has read the request's body (versitygw
// refuses a bad signature on the headers alone, with Connection: close), and the SDK closes the
// body as soon as the response arrives. The transport, still sending it, then meets the closed
// body (the SDK's closed body answers net/http's final drain with io.EOF), takes it for a failed
// write and closes the connection under the response; the SDK, the error's body cut off, takes
// that for a failed connection and retries: a refused request would be sent again after a
// backoff of up to seconds, and S3's error code and message would be lost.
type bodySentClient struct{ c aws.HTTPClient }

func (b bodySentClient) Do(r *http.Request) (*http.Response, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return b.c.Do(r)
	}
	sent := make(chan struct{})
	var once sync.Once
	ctx := httptrace.WithClientTrace(r.Context(), &httptrace.ClientTrace{
		// Called when the request is written or its writing failed, once per attempt of the
		// transport's own (the first one ends the wait).
		WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(func() { close(sent) }) },
	})
	resp, err := b.c.Do(r.WithContext(ctx))
	if err == nil {
		t := time.NewTimer(bodySentWait)
		select {
		case <-sent:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	return resp, err
}

// sdkLogger passes the SDK's log messages to zap.
type sdkLogger struct{ l *zap.Logger }

func (s sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	if c == logging.Warn {
		s.l.Warn("rsm/s3: aws-sdk-go-v2: " + fmt.Sprintf(format, v...))
		return
	}
	s.l.Debug("rsm/s3: aws-sdk-go-v2: " + fmt.Sprintf(format, v...))
}

// newRetryer is the SDK's standard retryer (exponential backoff with jitter, a client-side
// retry budget that stops retry storms during an outage) with Store's limits, also retrying
// responses cut short: every request Store sends may be repeated.
//
// A mismatch between the endpoint and the server (an untrusted certificate, TLS against plain
// HTTP or the reverse) is never retried; nothing is retried once the retry budget is spent.
func newRetryer(o options) aws.Retryer {
	std := retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = o.maxAttempts
		so.MaxBackoff = min(o.maxBackoff, o.retryBudget/4)
		permanent := retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
			if classifyTransport(err) != nil {
				return aws.FalseTernary
			}
			return aws.UnknownTernary
		})
		so.Retryables = append([]retry.IsErrorRetryable{permanent}, so.Retryables...)
		so.Retryables = append(so.Retryables, retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return aws.TrueTernary
			}
			return aws.UnknownTernary
		}))
	})
	return budgetRetryer{RetryerV2: std, budget: o.retryBudget}
}

// Config returns the configuration the Store was opened with.
func (s *Store) Config() Config { return s.cfg }

// Close closes the idle connections of the Store's own HTTP client. Requests still running
// finish normally. The Store must not be used afterwards. It always returns nil, the second time
// too.
func (s *Store) Close() error {
	if s.transport != nil {
		s.transport.CloseIdleConnections()
	}
	return nil
}

// Check sends one HeadBucket request and reports, as an rsm.ErrPermanent error, what no retry
// will fix: missing bucket, denied access, bad credentials, wrong region. Use it at startup to
// fail fast rather than on the first copy.
func (s *Store) Check(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3sdk.HeadBucketInput{Bucket: aws.String(s.bucket)})
	if err == nil {
		return nil
	}
	var sc statusCoder
	if errors.As(err, &sc) && sc.HTTPStatusCode() == 404 {
		err = fmt.Errorf("%w: the bucket does not exist: %w", rsm.ErrPermanent, err)
	} else {
		err = classify(err)
	}
	return &rsm.Error{Op: "check", Object: "s3://" + s.bucket, Err: err}
}

func (s *Store) key(seg *proto.SegmentMetadata, t rsm.FileType) string {
	return s.prefix + rsm.PartitionDirName(seg.SegmentID.TopicIDPartition) + "/" +
		rsm.SegmentFileName(seg.StartOffset, seg.SegmentID.ID, t)
}

func (s *Store) url(key string) string { return "s3://" + s.bucket + "/" + key }

// Copy implements rsm.Manager: one PUT for the index bundle, then the log with one PUT or, above
// the multipart threshold, a multipart upload. The bundle goes first because it is small: denied
// access or a missing bucket shows before a long upload starts.
func (s *Store) Copy(ctx context.Context, seg *proto.SegmentMetadata, data rsm.SegmentData) ([]byte, error) {
	const op = "copy"
	if err := rsm.CheckCall(ctx, op, seg); err != nil {
		return nil, err
	}
	bundle, path, err := readBundle(data)
	if err != nil {
		return nil, rsm.NewError(op, seg, path, err)
	}
	if data.LogPath == "" {
		return nil, rsm.NewError(op, seg, "", fmt.Errorf("%w: invalid argument: no path for the log", rsm.ErrPermanent))
	}
	log, err := os.Open(data.LogPath)
	if err != nil {
		return nil, rsm.NewError(op, seg, data.LogPath, localErr(err))
	}
	defer log.Close()
	st, err := log.Stat()
	if err != nil {
		return nil, rsm.NewError(op, seg, data.LogPath, localErr(err))
	}

	logKey, idxKey := s.key(seg, rsm.FileLog), s.key(seg, rsm.FileIndexes)
	if err := s.putObject(ctx, idxKey, bytes.NewReader(bundle), int64(len(bundle))); err != nil {
		return nil, s.copyFailed(ctx, seg, idxKey, err, idxKey)
	}
	if st.Size() <= s.o.threshold {
		err = s.putObject(ctx, logKey, io.NewSectionReader(log, 0, st.Size()), st.Size())
	} else {
		err = s.putMultipart(ctx, logKey, log, st.Size())
	}
	if err != nil {
		return nil, s.copyFailed(ctx, seg, logKey, err, idxKey, logKey)
	}
	return nil, nil
}

// copyFailed removes what a failed copy may have written and returns the copy's error.
func (s *Store) copyFailed(ctx context.Context, seg *proto.SegmentMetadata, key string, err error, written ...string) error {
	err = classify(err)
	switch {
	case errors.Is(err, rsm.ErrPermanent):
		// Denied access or a missing bucket wrote nothing and would refuse the delete as well.
	case ctx.Err() != nil:
		// The caller's deadline passed or it gave up: removing what was written would outlive
		// it (against a server that stalls, by as long as the server stalls). The objects are
		// under the segment's own keys, so Delete of the segment removes them; List reports
		// them until then.
		err = fmt.Errorf("%w (what was written stays until the segment is deleted: no time was left to remove it)", err)
	default:
		failed, derr := s.deleteObjects(ctx, written)
		if derr == nil && len(failed) > 0 {
			derr = joinKeyErrors(failed)
		}
		if derr != nil {
			s.log.Warn("rsm/s3: could not remove the objects of a failed copy; List reports them",
				zap.Strings("keys", written), zap.Error(derr))
			err = fmt.Errorf("%w (removing what was written failed too: %v)", err, derr)
		}
	}
	return rsm.NewError("copy", seg, s.url(key), err)
}

// readBundle reads the index files of data into an index bundle. It returns the path of the
// file that failed.
func readBundle(data rsm.SegmentData) ([]byte, string, error) {
	indexes := map[rsm.IndexType][]byte{rsm.IndexLeaderEpoch: data.LeaderEpochCheckpoint}
	if indexes[rsm.IndexLeaderEpoch] == nil {
		indexes[rsm.IndexLeaderEpoch] = []byte{}
	}
	for _, f := range []struct {
		t        rsm.IndexType
		path     string
		optional bool
	}{
		{rsm.IndexOffset, data.OffsetIndexPath, false},
		{rsm.IndexTimestamp, data.TimeIndexPath, false},
		{rsm.IndexTransaction, data.TransactionIndexPath, true},
		{rsm.IndexProducerSnapshot, data.ProducerSnapshotPath, false},
	} {
		if f.path == "" {
			if f.optional {
				continue
			}
			return nil, "", fmt.Errorf("%w: invalid argument: no path for the %v index", rsm.ErrPermanent, f.t)
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			return nil, f.path, localErr(err)
		}
		indexes[f.t] = b
	}
	return encodeBundle(indexes), "", nil
}

// localErr classifies an error reading the broker's own files: a missing or unreadable file is
// the caller's mistake, not storage's.
func localErr(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w: reading the segment: %w", rsm.ErrPermanent, err)
	}
	return fmt.Errorf("reading the segment: %w", err)
}

// putObject uploads body with one PUT; body must be seekable so that the SDK can checksum
// it, sign it and rewind it for a retry.
func (s *Store) putObject(ctx context.Context, key string, body io.ReadSeeker, size int64) error {
	_, err := s.client.PutObject(ctx, &s3sdk.PutObjectInput{
		Bucket:            aws.String(s.bucket),
		Key:               aws.String(key),
		Body:              body,
		ContentLength:     aws.Int64(size),
		ChecksumAlgorithm: s.o.checksum,
	})
	return classify(err)
}

// Delete implements rsm.Manager with one DeleteObjects request for the log and the bundle. S3
// reports keys that do not exist as deleted, which makes Delete idempotent. An incomplete
// multipart upload of the log (a copy killed mid-way) is not aborted here; List reports it.
func (s *Store) Delete(ctx context.Context, seg *proto.SegmentMetadata) error {
	return s.DeleteBatch(ctx, []*proto.SegmentMetadata{seg})[0]
}

// DeleteBatch implements rsm.BatchDeleter: the keys of up to 500 segments per DeleteObjects
// request (S3 takes 1000 keys a request).
func (s *Store) DeleteBatch(ctx context.Context, segs []*proto.SegmentMetadata) []error {
	const op = "delete"
	errs := make([]error, len(segs))
	type item struct {
		i    int
		keys [2]string
	}
	var items []item
	for i, seg := range segs {
		if err := rsm.CheckSegment(seg); err != nil {
			errs[i] = rsm.NewError(op, seg, "", err)
			continue
		}
		if err := ctx.Err(); err != nil {
			errs[i] = rsm.NewError(op, seg, "", err)
			continue
		}
		items = append(items, item{i, [2]string{s.key(seg, rsm.FileLog), s.key(seg, rsm.FileIndexes)}})
	}
	for chunk := range slices.Chunk(items, 500) {
		keys := make([]string, 0, 2*len(chunk))
		for _, it := range chunk {
			keys = append(keys, it.keys[:]...)
		}
		failed, err := s.deleteObjects(ctx, keys)
		for _, it := range chunk {
			seg := segs[it.i]
			switch {
			case err != nil:
				errs[it.i] = rsm.NewError(op, seg, s.url(it.keys[0]), err)
			case failed[it.keys[0]] != nil || failed[it.keys[1]] != nil:
				ke := map[string]error{}
				for _, k := range it.keys {
					if failed[k] != nil {
						ke[k] = failed[k]
					}
				}
				errs[it.i] = rsm.NewError(op, seg, s.url(it.keys[0]), joinKeyErrors(ke))
			}
		}
	}
	return errs
}

// deleteObjects deletes up to 1000 keys in one request. err is the request's failure; failed
// holds the keys S3 could not delete, by key.
func (s *Store) deleteObjects(ctx context.Context, keys []string) (failed map[string]error, err error) {
	if len(keys) == 0 {
		return nil, nil
	}
	ids := make([]types.ObjectIdentifier, len(keys))
	for i, k := range keys {
		ids[i] = types.ObjectIdentifier{Key: aws.String(k)}
	}
	out, err := s.client.DeleteObjects(ctx, &s3sdk.DeleteObjectsInput{
		Bucket:            aws.String(s.bucket),
		Delete:            &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		ChecksumAlgorithm: s.o.checksum,
	})
	if err != nil {
		return nil, classify(err)
	}
	for _, e := range out.Errors {
		if failed == nil {
			failed = map[string]error{}
		}
		code, msg := aws.ToString(e.Code), aws.ToString(e.Message)
		kerr := fmt.Errorf("%s: %s", code, msg)
		if why, ok := permanentCodes[code]; ok {
			kerr = fmt.Errorf("%w: %s: %s: %s", rsm.ErrPermanent, why, code, msg)
		}
		failed[aws.ToString(e.Key)] = kerr
	}
	return failed, nil
}

func joinKeyErrors(m map[string]error) error {
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
	errs := make([]error, len(keys))
	for i, k := range keys {
		errs[i] = fmt.Errorf("deleting %s: %w", k, m[k])
	}
	return errors.Join(errs...)
}

// List implements rsm.Manager: the objects under <prefix><topic>-<partition>-<topicId>/, then
// the incomplete multipart uploads there. It needs s3:ListBucket and
// s3:ListBucketMultipartUploads.
func (s *Store) List(ctx context.Context, tp proto.TopicIDPartition) iter.Seq2[rsm.Object, error] {
	return func(yield func(rsm.Object, error) bool) {
		prefix := s.prefix + rsm.PartitionDirName(tp) + "/"
		fail := func(err error) {
			yield(rsm.Object{}, &rsm.Error{Op: "list", Segment: proto.SegmentID{TopicIDPartition: tp}, Object: s.url(prefix), Err: err})
		}
		if err := rsm.CheckPartition(tp); err != nil {
			fail(err)
			return
		}
		attribute := func(key string) rsm.Object { return s.partitionObject(tp, key, key[len(prefix):]) }
		if s.listObjects(ctx, prefix, attribute, fail, yield) {
			s.listUploads(ctx, prefix, attribute, fail, yield)
		}
	}
}

// ListAll implements rsm.Manager: every object under the prefix, then every incomplete
// multipart upload there.
func (s *Store) ListAll(ctx context.Context) iter.Seq2[rsm.Object, error] {
	return func(yield func(rsm.Object, error) bool) {
		fail := func(err error) {
			yield(rsm.Object{}, &rsm.Error{Op: "list", Object: s.url(s.prefix), Err: err})
		}
		attribute := func(key string) rsm.Object {
			rel := key[len(s.prefix):]
			slash := strings.IndexByte(rel, '/')
			if slash < 0 {
				return rsm.Object{Name: key, Problem: "not under a partition prefix <topic>-<partition>-<topicId>/"}
			}
			tp, err := rsm.ParsePartitionDirName(rel[:slash])
			if err != nil {
				return rsm.Object{Name: key, Problem: err.Error()}
			}
			return s.partitionObject(tp, key, rel[slash+1:])
		}
		if s.listObjects(ctx, s.prefix, attribute, fail, yield) {
			s.listUploads(ctx, s.prefix, attribute, fail, yield)
		}
	}
}

// partitionObject attributes the object named file under tp's prefix.
func (s *Store) partitionObject(tp proto.TopicIDPartition, key, file string) rsm.Object {
	o := rsm.Object{Name: key, Segment: proto.SegmentID{TopicIDPartition: tp}}
	start, id, t, err := rsm.ParseSegmentFileName(file)
	switch {
	case err != nil:
		o.Problem = err.Error()
	case t != rsm.FileLog && t != rsm.FileIndexes:
		o.Problem = fmt.Sprintf("a %v file, which the S3 layout does not use (it keeps indexes in one %s object)", t, rsm.FileIndexes.Suffix())
	default:
		o.Segment.ID, o.StartOffset, o.Type = id, start, t
	}
	return o
}

// listObjects yields every object under prefix; it returns false when the consumer stopped or
// an error was reported.
func (s *Store) listObjects(ctx context.Context, prefix string, attribute func(string) rsm.Object,
	fail func(error), yield func(rsm.Object, error) bool) bool {
	p := s3sdk.NewListObjectsV2Paginator(s.client, &s3sdk.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(prefix),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			fail(classify(err))
			return false
		}
		for _, obj := range page.Contents {
			o := attribute(aws.ToString(obj.Key))
			o.Size, o.Modified = aws.ToInt64(obj.Size), aws.ToTime(obj.LastModified)
			if !yield(o, nil) {
				return false
			}
		}
	}
	return true
}

// listUploads yields every incomplete multipart upload under prefix.
func (s *Store) listUploads(ctx context.Context, prefix string, attribute func(string) rsm.Object,
	fail func(error), yield func(rsm.Object, error) bool) {
	in := &s3sdk.ListMultipartUploadsInput{Bucket: aws.String(s.bucket), Prefix: aws.String(prefix)}
	for {
		page, err := s.client.ListMultipartUploads(ctx, in)
		if isCode(err, "NoSuchUpload") {
			// Some S3-compatible servers (gofakes3) say so for a bucket that never had an
			// upload, where S3 answers with an empty list.
			return
		}
		if err != nil {
			fail(classify(err))
			return
		}
		for _, u := range page.Uploads {
			o := attribute(aws.ToString(u.Key))
			o.Size, o.Modified = 0, aws.ToTime(u.Initiated)
			o.Problem = fmt.Sprintf("incomplete multipart upload %s started %s: its parts are stored and billed until it is aborted "+
				"(by hand, or by a lifecycle rule with AbortIncompleteMultipartUpload)",
				aws.ToString(u.UploadId), aws.ToTime(u.Initiated).UTC().Format(time.RFC3339))
			if !yield(o, nil) {
				return
			}
		}
		if !aws.ToBool(page.IsTruncated) {
			return
		}
		in.KeyMarker, in.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
}
