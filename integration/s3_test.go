//go:build integration

package integration

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rsm"
	"github.com/stratalog/strata/rsm/s3"
)

// minPartSize is S3's smallest multipart part, and so the smallest part size and multipart
// threshold that keep both upload paths in the test while its segments stay small.
const minPartSize = 5 << 20

// TestS3Store runs Strata's S3 store against a real S3 server with real SigV4 signing: a small
// segment goes up in one PUT, one above the multipart threshold in parts, and each is read
// back whole and by ranges, its indexes one by one, listed, and deleted with Delete and with
// DeleteBatch.
func TestS3Store(t *testing.T) {
	e := requireS3(t)
	ctx := testContext(t, 2*time.Minute)
	requests := newRequestLog(e)
	st := s3Store(t, e, s3.WithPartSize(minPartSize), s3.WithMultipartThreshold(minPartSize),
		s3.WithHTTPClient(&http.Client{Transport: requests}))

	tpA := proto.TopicIDPartition{TopicID: proto.NewUUID(), Topic: "orders", Partition: 0}
	tpB := proto.TopicIDPartition{TopicID: proto.NewUUID(), Topic: "orders", Partition: 1}
	type stored struct {
		seg   *proto.SegmentMetadata
		files segmentFiles
		// The requests Copy sends (package s3's doc, "Requests per segment"): the index
		// bundle's PUT, then the log's PUT or, above the threshold, a multipart upload.
		wantCopy []string
	}
	const uploadPart = "PUT partNumber,uploadId"
	// The large log needs three parts: two full ones and a short last one.
	small := stored{newSegment(tpA, 0, 99, 0), writeSegmentFiles(t, 100<<10, true), []string{"PUT", "PUT"}}
	large := stored{newSegment(tpA, 100, 9999, 0), writeSegmentFiles(t, 2*minPartSize+123457, false),
		[]string{"PUT", "POST uploads", uploadPart, uploadPart, uploadPart, "POST uploadId"}}
	other := stored{newSegment(tpB, 0, 9, 0), writeSegmentFiles(t, 1000, true), []string{"PUT", "PUT"}}
	all := []stored{small, large, other}
	for _, s := range all {
		s.seg.SegmentSizeInBytes = int32(len(s.files.Log))
		start, mark := time.Now(), requests.mark()
		custom, err := st.Copy(ctx, s.seg, s.files.Data)
		if err != nil {
			t.Fatalf("copy %s (%d bytes): %v", s.seg.SegmentID, len(s.files.Log), err)
		}
		sent := requests.since(mark)
		t.Logf("copied a %d-byte log in %v with %d requests", len(s.files.Log), time.Since(start).Round(time.Millisecond), len(sent))
		// The parts go out concurrently, so their order among themselves is free.
		if !sameElements(sent, s.wantCopy) || sent[0] != s.wantCopy[0] || sent[len(sent)-1] != s.wantCopy[len(s.wantCopy)-1] {
			t.Errorf("copy of a %d-byte log sent %q, want %q", len(s.files.Log), sent, s.wantCopy)
		}
		if custom != nil {
			t.Errorf("copy %s returned custom metadata %x, want none", s.seg.SegmentID, custom)
		}
	}

	// Whole logs and ranges, the part boundaries of the large one included. FetchLog's end is
	// exclusive, clipped to the log; a start at or past the end reads nothing.
	for _, s := range all {
		n := int64(len(s.files.Log))
		for _, r := range [][2]int64{
			{0, rsm.EndOfLog}, {0, n}, {1, 2}, {7, 7}, {n / 3, n / 2}, {n - 10, n + 1000}, {n, rsm.EndOfLog}, {n + 5, n + 10},
			{minPartSize - 7, minPartSize + 9}, {2*minPartSize - 1, 2*minPartSize + 1},
		} {
			lo, hi := min(r[0], n), r[1]
			if hi < 0 || hi > n {
				hi = n
			}
			if lo > hi {
				lo = hi
			}
			want := s.files.Log[lo:hi]
			start, mark := time.Now(), requests.mark()
			got := readAll(t, func() (io.ReadCloser, error) { return st.FetchLog(ctx, s.seg, r[0], r[1]) })
			if !bytes.Equal(got, want) {
				t.Errorf("FetchLog(%s, %d, %d): %d bytes, want %d bytes of the log from %d", s.seg.SegmentID, r[0], r[1], len(got), len(want), lo)
			}
			// One GET for any range, none for a range empty by its arguments. A start past the
			// end of the log needs the GET to find that out.
			wantReqs := []string{"GET"}
			if r[1] >= 0 && r[0] >= r[1] {
				wantReqs = nil
			}
			if sent := requests.since(mark); !slices.Equal(sent, wantReqs) {
				t.Errorf("FetchLog(%s, %d, %d) sent %q, want %q", s.seg.SegmentID, r[0], r[1], sent, wantReqs)
			}
			if r[0] == 0 && r[1] == rsm.EndOfLog {
				t.Logf("fetched a whole %d-byte log in %v", n, time.Since(start).Round(time.Millisecond))
			}
		}
	}
	if _, err := st.FetchLog(ctx, small.seg, 10, 5); !errors.Is(err, rsm.ErrPermanent) {
		t.Errorf("FetchLog with end before start: %v, want ErrPermanent", err)
	}

	// Every index, byte for byte; the segment copied without a transaction index has none.
	for _, s := range all {
		for _, it := range rsm.IndexTypes {
			want, ok := s.files.Contents[it]
			rc, err := st.FetchIndex(ctx, s.seg, it)
			if !ok {
				if !errors.Is(err, rsm.ErrNotFound) {
					t.Errorf("FetchIndex(%s, %s) of a segment copied without it: %v, want ErrNotFound", s.seg.SegmentID, it, err)
				}
				if err == nil {
					rc.Close()
				}
				continue
			}
			got := readAll(t, func() (io.ReadCloser, error) { return rc, err })
			if !bytes.Equal(got, want) {
				t.Errorf("FetchIndex(%s, %s): %d bytes, want the %d copied", s.seg.SegmentID, it, len(got), len(want))
			}
		}
	}

	// List names each segment's two objects in ascending name order, which Kafka's 20-digit
	// file names make start-offset order, with the sizes stored.
	wantObjects := func(tp proto.TopicIDPartition, segs ...stored) []string {
		var names []string
		for _, s := range segs {
			for _, ft := range []rsm.FileType{rsm.FileLog, rsm.FileIndexes} {
				names = append(names, st.Config().Prefix+rsm.PartitionDirName(tp)+"/"+rsm.SegmentFileName(s.seg.StartOffset, s.seg.SegmentID.ID, ft))
			}
		}
		slices.Sort(names)
		return names
	}
	objsA := listObjects(t, st.List(ctx, tpA))
	if got, want := objectNames(objsA), wantObjects(tpA, small, large); !slices.Equal(got, want) {
		t.Fatalf("List(%s) = %q, want %q", tpA, got, want)
	}
	for _, o := range objsA {
		s := small
		if o.Segment.ID == large.seg.SegmentID.ID {
			s = large
		}
		if o.Problem != "" || o.Segment != s.seg.SegmentID || o.StartOffset != s.seg.StartOffset || o.Modified.IsZero() {
			t.Errorf("List(%s): object %+v, want a regular part of segment %s at %d with a modification time", tpA, o, s.seg.SegmentID, s.seg.StartOffset)
		}
		if o.Type == rsm.FileLog && o.Size != int64(len(s.files.Log)) {
			t.Errorf("List(%s): %s has %d bytes, want %d", tpA, o.Name, o.Size, len(s.files.Log))
		}
	}
	if got, want := objectNames(listObjects(t, st.ListAll(ctx))), append(wantObjects(tpA, small, large), wantObjects(tpB, other)...); !sameElements(got, want) {
		t.Fatalf("ListAll = %q, want %q", got, want)
	}

	// Delete one segment, then the rest and one never stored with DeleteBatch: deleting what is
	// not stored succeeds, so that a retry after a partial failure finishes the job.
	mark := requests.mark()
	if err := st.Delete(ctx, small.seg); err != nil {
		t.Fatalf("Delete(%s): %v", small.seg.SegmentID, err)
	}
	if sent := requests.since(mark); !slices.Equal(sent, []string{"POST delete"}) {
		t.Errorf("Delete sent %q, want one DeleteObjects request for the log and the bundle", sent)
	}
	if err := st.Delete(ctx, small.seg); err != nil {
		t.Errorf("Delete(%s) again: %v, want success", small.seg.SegmentID, err)
	}
	if _, err := st.FetchLog(ctx, small.seg, 0, rsm.EndOfLog); !errors.Is(err, rsm.ErrNotFound) {
		t.Errorf("FetchLog of a deleted segment: %v, want ErrNotFound", err)
	}
	if _, err := st.FetchIndex(ctx, small.seg, rsm.IndexOffset); !errors.Is(err, rsm.ErrNotFound) {
		t.Errorf("FetchIndex of a deleted segment: %v, want ErrNotFound", err)
	}
	never := newSegment(tpB, 10, 19, 10)
	mark = requests.mark()
	for i, err := range st.DeleteBatch(ctx, []*proto.SegmentMetadata{large.seg, other.seg, never}) {
		if err != nil {
			t.Errorf("DeleteBatch, segment %d: %v", i, err)
		}
	}
	if sent := requests.since(mark); !slices.Equal(sent, []string{"POST delete"}) {
		t.Errorf("DeleteBatch of 3 segments sent %q, want one DeleteObjects request", sent)
	}
	if objs := listObjects(t, st.ListAll(ctx)); len(objs) != 0 {
		t.Errorf("ListAll after deleting everything = %q, want nothing", objectNames(objs))
	}
}

// TestS3WrongCredentials: a store whose credentials the server refuses says so at once, as a
// permanent error, after one request: retrying cannot help, and a broker must not spend its
// retry budget (minutes with the default backoff) finding that out.
func TestS3WrongCredentials(t *testing.T) {
	e := requireS3(t)
	files := writeSegmentFiles(t, 1000, false)
	type outcome struct {
		sentinel error  // what errors.Is must find
		says     string // what the message must say
		requests int64  // requests sent
	}
	refused := outcome{rsm.ErrPermanent, "bad credentials", 1}
	for _, tc := range []struct {
		name                 string
		accessKey, secretKey string
		// The outcome of Check, Copy, FetchLog and Delete.
		check, copy, fetch, del outcome
	}{
		{
			// S3's SignatureDoesNotMatch, HTTP 403. HeadBucket's answer has no body, so Check
			// can only say access was denied.
			name: "wrong secret", accessKey: e.AccessKey, secretKey: e.SecretKey + "x",
			check: outcome{rsm.ErrPermanent, "access denied", 1}, copy: refused, fetch: refused, del: refused,
		},
		{
			// AWS answers an unknown access key with InvalidAccessKeyId, HTTP 403. versitygw
			// answers XAdminUserNotFound, HTTP 404 (TestS3Answers): still S3's way of saying
			// the credentials are refused, never that the object is missing. HeadBucket's 404
			// has no body, so Check cannot tell it from a missing bucket; it must still be
			// permanent.
			name: "unknown access key", accessKey: "STRATAUNKNOWNKEY0000", secretKey: e.SecretKey,
			check: outcome{rsm.ErrPermanent, "", 1}, copy: refused, fetch: refused, del: refused,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t, time.Minute)
			requests := newRequestLog(e)
			st, err := s3.New(ctx, s3Config(t, e, tc.accessKey, tc.secretKey), s3.WithHTTPClient(&http.Client{Transport: requests}))
			if err != nil {
				t.Fatalf("s3.New: %v", err)
			}
			defer st.Close()
			seg := newSegment(proto.TopicIDPartition{TopicID: proto.NewUUID(), Topic: "orders", Partition: 0}, 0, 9, 1000)
			for _, op := range []struct {
				name string
				want outcome
				call func() error
			}{
				{"Check", tc.check, func() error { return st.Check(ctx) }},
				{"Copy", tc.copy, func() error { _, err := st.Copy(ctx, seg, files.Data); return err }},
				{"FetchLog", tc.fetch, func() error { _, err := st.FetchLog(ctx, seg, 0, rsm.EndOfLog); return err }},
				{"Delete", tc.del, func() error { return st.Delete(ctx, seg) }},
			} {
				mark := requests.mark()
				err := op.call()
				sent := requests.since(mark)
				if !errors.Is(err, op.want.sentinel) || !strings.Contains(fmt.Sprint(err), op.want.says) {
					t.Errorf("%s with the %s: %v\nwant an error that is %v and says %q", op.name, tc.name, err, op.want.sentinel, op.want.says)
				}
				if int64(len(sent)) != op.want.requests {
					t.Errorf("%s with the %s sent %q, want %d requests: refused credentials are not retried", op.name, tc.name, sent, op.want.requests)
				}
			}
		})
	}
}

// requestLog is an HTTP transport that logs each request it sends as "METHOD query-keys",
// e.g. "PUT partNumber,uploadId" for an UploadPart, so that a test can count S3 requests.
type requestLog struct {
	mu   sync.Mutex
	reqs []string
	next http.RoundTripper
}

func newRequestLog(e s3Env) *requestLog { return &requestLog{next: e.Transport} }

func (l *requestLog) RoundTrip(r *http.Request) (*http.Response, error) {
	keys := slices.Sorted(maps.Keys(r.URL.Query()))
	// The SDK adds x-id=<operation> to some requests; it says nothing the method does not.
	keys = slices.DeleteFunc(keys, func(k string) bool { return k == "x-id" })
	l.mu.Lock()
	l.reqs = append(l.reqs, strings.TrimSpace(r.Method+" "+strings.Join(keys, ",")))
	l.mu.Unlock()
	return l.next.RoundTrip(r)
}

// mark returns how many requests were sent so far, for since.
func (l *requestLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.reqs)
}

// since returns the requests sent after mark returned from.
func (l *requestLog) since(from int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.reqs[from:])
}

// readAll reads a stream to its end and closes it, failing the test on any error.
func readAll(t *testing.T, open func() (io.ReadCloser, error)) []byte {
	t.Helper()
	rc, err := open()
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

// listObjects collects what a List or ListAll yields, failing the test on an error.
func listObjects(t *testing.T, seq func(func(rsm.Object, error) bool)) []rsm.Object {
	t.Helper()
	var out []rsm.Object
	for o, err := range seq {
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		out = append(out, o)
	}
	return out
}

func objectNames(objs []rsm.Object) []string {
	names := make([]string, len(objs))
	for i, o := range objs {
		names[i] = o.Name
	}
	return names
}

// sameElements reports whether a and b hold the same strings, in any order.
func sameElements(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}
