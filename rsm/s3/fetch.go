package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.uber.org/zap"

	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rsm"
)

// corruptRetries is how many times FetchIndex fetches an index whose CRC does not match before
// it reports ErrCorrupt: a mismatch caused in transit goes away on a second read, one stored in
// the object does not.
const corruptRetries = 3

// FetchLog implements rsm.Manager with one GET: a plain GET for the whole log, whose S3 checksum
// the SDK verifies at the end of the stream, or a ranged GET otherwise. The stream reads under
// ctx. If the connection breaks part way, the stream resumes at the byte where it stopped with a
// ranged GET conditioned on the object's ETag, so it never splices two versions of an object.
func (s *Store) FetchLog(ctx context.Context, seg *proto.SegmentMetadata, start, end int64) (io.ReadCloser, error) {
	const op = "fetch log"
	end, empty, err := rsm.CheckFetch(op, seg, start, end)
	if err != nil {
		return nil, err
	}
	if empty {
		return rsm.EmptyReader(), nil
	}
	r := s.newReader(ctx, op, seg, s.key(seg, rsm.FileLog), start, end)
	// The first response is awaited here so that a missing segment or denied access is
	// FetchLog's error, not the first Read's.
	if err := r.ensureOpen(); err != nil {
		return nil, err
	}
	return r, nil
}

// FetchIndex implements rsm.Manager. It reads the bundle's header with a ranged GET of its first
// 256 KiB, which for all but large segments holds the offset, time and transaction indexes
// too; a larger index costs a second ranged GET. The index is verified against its CRC-32C
// before a byte of it is returned, so it is held in memory (Kafka bounds indexes by
// segment.index.bytes, 10 MiB by default).
func (s *Store) FetchIndex(ctx context.Context, seg *proto.SegmentMetadata, t rsm.IndexType) (io.ReadCloser, error) {
	op, err := rsm.CheckFetchIndex(ctx, seg, t)
	if err != nil {
		return nil, err
	}
	key := s.key(seg, rsm.FileIndexes)
	for range corruptRetries {
		var b []byte
		b, err = s.fetchIndex(ctx, op, seg, key, t)
		if err == nil {
			return io.NopCloser(bytes.NewReader(b)), nil
		}
		if !errors.Is(err, rsm.ErrCorrupt) {
			return nil, err
		}
		s.log.Warn("rsm/s3: index failed verification, reading it again", zap.String("key", key), zap.Error(err))
	}
	return nil, err
}

func (s *Store) fetchIndex(ctx context.Context, op string, seg *proto.SegmentMetadata, key string, t rsm.IndexType) ([]byte, error) {
	corrupt := func(format string, args ...any) error {
		return rsm.NewError(op, seg, s.url(key), fmt.Errorf("%w: %s", rsm.ErrCorrupt, fmt.Sprintf(format, args...)))
	}
	head := s.newReader(ctx, op, seg, key, 0, s.o.indexWindow)
	window, err := io.ReadAll(head)
	head.Close()
	if err != nil {
		return nil, err
	}
	entries, err := decodeBundleHeader(window, head.size)
	if err != nil {
		return nil, corrupt("%v", err)
	}
	code := codeOf(t)
	var e *bundleEntry
	for i := range entries {
		if entries[i].code == code {
			e = &entries[i]
			break
		}
	}
	if e == nil || !e.present {
		return nil, rsm.NewError(op, seg, s.url(key), fmt.Errorf("%w: the segment was copied without a %v index", rsm.ErrNotFound, t))
	}
	var data []byte
	if e.off+e.len <= uint64(len(window)) {
		data = window[e.off : e.off+e.len]
	} else {
		if e.len > 1<<31 {
			return nil, corrupt("index of %d bytes is beyond any Kafka index", e.len)
		}
		r := s.newReader(ctx, op, seg, key, int64(e.off), int64(e.off+e.len))
		r.etag = head.etag // the same version of the object as the header
		data, err = io.ReadAll(r)
		r.Close()
		if err != nil {
			return nil, err
		}
		if uint64(len(data)) != e.len {
			return nil, corrupt("read %d bytes of the %v index, the header says %d", len(data), t, e.len)
		}
	}
	if got := crc32.Checksum(data, castagnoli); got != e.crc {
		return nil, corrupt("%v index CRC-32C is %08x, the header says %08x", t, got, e.crc)
	}
	return data, nil
}

// objectReader streams bytes [pos, end) of an object, resuming after a broken connection.
type objectReader struct {
	s    *Store
	ctx  context.Context
	op   string
	seg  *proto.SegmentMetadata
	key  string
	pos  int64 // the next byte to return
	end  int64 // exclusive; EndOfLog until the first response gives it
	size int64 // the object's size when the first response said; 0 if it did not
	etag string

	body     io.ReadCloser
	whole    bool // body is a whole-object response, whose checksum the SDK verifies at its end
	failures int  // consecutive breaks without a byte in between
	err      error
}

func (s *Store) newReader(ctx context.Context, op string, seg *proto.SegmentMetadata, key string, start, end int64) *objectReader {
	return &objectReader{s: s, ctx: ctx, op: op, seg: seg, key: key, pos: start, end: end}
}

func (r *objectReader) fail(err error) error {
	r.closeBody()
	if r.err == nil {
		var re *rsm.Error
		if !errors.As(err, &re) {
			err = rsm.NewError(r.op, r.seg, r.s.url(r.key), err)
		}
		r.err = err
	}
	return r.err
}

func (r *objectReader) closeBody() {
	if r.body != nil {
		r.body.Close()
		r.body = nil
	}
}

// ensureOpen sends the first request unless the range is already known to be empty.
func (r *objectReader) ensureOpen() error {
	if r.err != nil || r.body != nil || (r.end >= 0 && r.pos >= r.end) {
		return r.err
	}
	if err := r.open(); err != nil {
		return r.fail(err)
	}
	return nil
}

func (r *objectReader) open() error {
	in := &s3sdk.GetObjectInput{Bucket: aws.String(r.s.bucket), Key: aws.String(r.key)}
	var optFns []func(*s3sdk.Options)
	r.whole = r.pos == 0 && r.end < 0
	if r.whole {
		if r.s.o.checksum != "" {
			in.ChecksumMode = types.ChecksumModeEnabled
		}
	} else {
		in.Range = aws.String(httpRange(r.pos, r.end))
		// A checksum covers a whole object, and S3 sends none with an arbitrary range; a
		// server that did send the whole object's would fail every ranged read.
		optFns = append(optFns, func(o *s3sdk.Options) {
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		})
	}
	if r.etag != "" {
		in.IfMatch = aws.String(r.etag)
	}
	out, err := r.s.client.GetObject(r.ctx, in, optFns...)
	if err != nil {
		switch {
		case r.etag == "" && isCode(err, "InvalidRange"):
			r.end = r.pos // the range starts at or past the end of the object
			return nil
		case isCode(err, "PreconditionFailed"):
			return fmt.Errorf("the object was replaced while it was being read, at byte %d: %w", r.pos, err)
		}
		return classify(err)
	}
	if out.ContentLength == nil {
		out.Body.Close()
		return errors.New("the response has no Content-Length")
	}
	n := *out.ContentLength
	if r.etag == "" {
		// S3 clips a range to the object, so the first response sets the end.
		r.etag = aws.ToString(out.ETag)
		r.end = r.pos + n
		if r.whole {
			r.size = n
		} else {
			r.size = contentRangeTotal(aws.ToString(out.ContentRange))
		}
	} else if r.pos+n != r.end {
		out.Body.Close()
		return fmt.Errorf("resuming at byte %d, the response has %d bytes where %d remain: the object changed", r.pos, n, r.end-r.pos)
	}
	r.body = out.Body
	return nil
}

func (r *objectReader) Read(p []byte) (int, error) {
	for {
		if r.err != nil {
			return 0, r.err
		}
		if r.body == nil {
			if r.end >= 0 && r.pos >= r.end {
				return 0, io.EOF
			}
			if err := r.open(); err != nil {
				return 0, r.fail(err)
			}
			continue
		}
		var n int
		var err error
		if r.pos < r.end {
			if rem := r.end - r.pos; int64(len(p)) > rem {
				p = p[:rem]
			}
			n, err = r.body.Read(p)
			r.pos += int64(n)
		} else {
			// Every byte is in. Read on to the body's end: the SDK checks a whole object's
			// checksum only when it sees EOF.
			var extra [1]byte
			var m int
			m, err = r.body.Read(extra[:])
			if m > 0 {
				return 0, r.fail(fmt.Errorf("%w: the response has more bytes than its Content-Length", rsm.ErrCorrupt))
			}
		}
		if n > 0 {
			r.failures = 0
		}
		switch {
		case err == nil:
			if n == 0 {
				continue
			}
			return n, nil
		case r.pos == r.end:
			r.closeBody()
			if err != io.EOF && r.whole {
				// After the last byte, the only error a whole-object body reports is the
				// SDK's checksum verdict. The bytes already returned must be discarded.
				return n, r.fail(fmt.Errorf("%w: %w", rsm.ErrCorrupt, err))
			}
			if n == 0 {
				continue
			}
			return n, nil
		}
		// The body ended early or the connection broke: resume at r.pos.
		r.closeBody()
		if cerr := r.ctx.Err(); cerr != nil {
			return n, r.fail(cerr)
		}
		r.failures++
		if r.failures >= r.s.o.maxAttempts {
			return n, r.fail(fmt.Errorf("the download broke %d times in a row at byte %d, before byte %d: %w", r.failures, r.pos, r.end, err))
		}
		r.s.log.Debug("rsm/s3: resuming a broken download", zap.String("key", r.key), zap.Int64("at", r.pos), zap.Error(err))
		if n > 0 {
			return n, nil
		}
		if werr := r.wait(err); werr != nil {
			return 0, r.fail(werr)
		}
	}
}

// wait sleeps the backoff before the next attempt, or until the context ends.
func (r *objectReader) wait(cause error) error {
	d, err := r.s.backoff.BackoffDelay(r.failures, cause)
	if err != nil || d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
}

// Close releases the connection. Reading after Close fails.
func (r *objectReader) Close() error {
	r.closeBody()
	if r.err == nil {
		r.err = rsm.NewError(r.op, r.seg, r.s.url(r.key), errors.New("read after Close"))
	}
	return nil
}

// httpRange is the Range header for [start, end); end EndOfLog means to the end.
func httpRange(start, end int64) string {
	if end < 0 {
		return "bytes=" + strconv.FormatInt(start, 10) + "-"
	}
	return "bytes=" + strconv.FormatInt(start, 10) + "-" + strconv.FormatInt(end-1, 10)
}

// contentRangeTotal returns the size in "bytes 0-99/1234", or 0 if the header does not say.
func contentRangeTotal(h string) int64 {
	slash := strings.LastIndexByte(h, '/')
	if slash < 0 {
		return 0
	}
	n, err := strconv.ParseInt(h[slash+1:], 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}
