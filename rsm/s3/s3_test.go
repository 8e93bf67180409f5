package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.uber.org/goleak"

	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rsm"
	"github.com/stratalog/strata/rsm/internal/rsmtest"
	"github.com/stratalog/strata/rsm/s3"
)

func TestMain(m *testing.M) {
	// Tests pass credentials and a region explicitly; nothing should wait on an instance
	// metadata service that is not there.
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	goleak.VerifyTestMain(m)
}

func TestConformance(t *testing.T) {
	f := newFakeS3(t)
	n := 0
	open := func(t *testing.T) rsm.Manager {
		n++
		return f.open(t, fmt.Sprintf("conformance-%d", n))
	}
	t.Run("SinglePut", func(t *testing.T) {
		rsmtest.Run(t, rsmtest.Harness{Open: open, LogSize: 64 << 10})
	})
	t.Run("Multipart", func(t *testing.T) {
		rsmtest.Run(t, rsmtest.Harness{Open: open, LogSize: 6<<20 + 12345})
	})
}

func mustUUID(t *testing.T, s string) proto.UUID {
	t.Helper()
	u, err := proto.ParseUUID(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// rawClient reaches the fake without Store, to look at what Store wrote.
func (f *fakeS3) rawClient(t *testing.T) *s3sdk.Client {
	return s3sdk.New(s3sdk.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(f.server.URL),
		UsePathStyle: true,
		HTTPClient:   &http.Client{Transport: f.transport},
		Credentials:  aws.AnonymousCredentials{},
	})
}

func (f *fakeS3) keys(t *testing.T) []string {
	t.Helper()
	out, err := f.rawClient(t).ListObjectsV2(t.Context(), &s3sdk.ListObjectsV2Input{Bucket: aws.String(testBucket)})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

func (f *fakeS3) get(t *testing.T, key string) []byte {
	t.Helper()
	out, err := f.rawClient(t).GetObject(t.Context(), &s3sdk.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The keys are Kafka's LocalTieredStorage names under the prefix, and the log object is the log
// file byte for byte.
func TestKeyLayout(t *testing.T) {
	f := newFakeS3(t)
	st := f.open(t, "cluster-1")
	for _, size := range []int64{1000, 6 << 20} {
		seg := rsmtest.Write(t, t.TempDir(), rsmtest.Spec{StartOffset: 11, LogSize: size, Txn: true, Seed: 1})
		seg.Meta.SegmentID = proto.SegmentID{
			TopicIDPartition: proto.TopicIDPartition{TopicID: mustUUID(t, "LWgrMmVrT0a__7a4SasuPA"), Topic: "topic", Partition: 0},
			ID:               mustUUID(t, "bCqX9U--S-6U8XUM9II25Q"),
		}
		rsmtest.Copy(t, st, seg)
		const base = "cluster-1/topic-0-LWgrMmVrT0a__7a4SasuPA/00000000000000000011-bCqX9U--S-6U8XUM9II25Q"
		keys := f.keys(t)
		if len(keys) != 2 || keys[0] != base+".indexes" || keys[1] != base+".log" {
			t.Fatalf("log of %d bytes: keys %q, want %s.{indexes,log}", size, keys, base)
		}
		if !bytes.Equal(f.get(t, base+".log"), seg.Log(t)) {
			t.Fatalf("log of %d bytes: the .log object is not the log file", size)
		}
	}
}

// A segment costs 2 PUTs below the multipart threshold, 3 + parts above it; fetches and deletes
// cost what the package documentation says.
func TestRequestsPerSegment(t *testing.T) {
	f := newFakeS3(t)
	st := f.open(t, "requests")
	ctx := t.Context()
	tp := rsmtest.Partition("requests", 0)
	small := rsmtest.Write(t, t.TempDir(), rsmtest.Spec{Partition: tp, StartOffset: 0, LogSize: 5 << 20, Txn: true, Seed: 1})
	large := rsmtest.Write(t, t.TempDir(), rsmtest.Spec{Partition: tp, StartOffset: 100, LogSize: 12 << 20, Seed: 2})

	check := func(what string, want map[string]int) {
		t.Helper()
		got := f.count.take()
		if formatOps(got) != formatOps(want) {
			t.Errorf("%s: requests %s, want %s", what, formatOps(got), formatOps(want))
		}
	}
	f.count.take()
	rsmtest.Copy(t, st, small)
	check("copy of a 5 MiB log", map[string]int{"PutObject": 2})
	rsmtest.Copy(t, st, large)
	check("copy of a 12 MiB log in 5 MiB parts", map[string]int{"PutObject": 1, "CreateMultipartUpload": 1, "UploadPart": 3, "CompleteMultipartUpload": 1})

	rsmtest.Read(t)(st.FetchLog(ctx, large.Meta, 0, rsm.EndOfLog))
	check("fetch of a whole log", map[string]int{"GetObject": 1})
	rsmtest.Read(t)(st.FetchLog(ctx, large.Meta, 1000, 9<<20))
	check("fetch of a range", map[string]int{"GetObject": 1})
	for _, it := range []rsm.IndexType{rsm.IndexOffset, rsm.IndexTimestamp, rsm.IndexTransaction, rsm.IndexLeaderEpoch, rsm.IndexProducerSnapshot} {
		rsmtest.Read(t)(st.FetchIndex(ctx, small.Meta, it))
		check("fetch of index "+it.String(), map[string]int{"GetObject": 1})
	}
	if err := st.Delete(ctx, small.Meta); err != nil {
		t.Fatal(err)
	}
	check("delete", map[string]int{"DeleteObjects": 1})
	if errs := rsm.DeleteBatch(ctx, st, []*proto.SegmentMetadata{small.Meta, large.Meta}); errors.Join(errs...) != nil {
		t.Fatal(errs)
	}
	check("batch delete of 2 segments", map[string]int{"DeleteObjects": 1})
	if keys := f.keys(t); len(keys) != 0 {
		t.Fatalf("after deleting every segment: %q", keys)
	}
}

// An index beyond the bundle's first 256 KiB costs a second ranged GET and still verifies.
func TestLargeIndex(t *testing.T) {
	f := newFakeS3(t)
	st := f.open(t, "large-index")
	dir := t.TempDir()
	seg := rsmtest.Write(t, dir, rsmtest.Spec{Partition: rsmtest.Partition("large", 0), LogSize: 100, Seed: 3})
	big := bytes.Repeat([]byte("0123456789abcdef"), 40<<10) // 640 KiB
	if err := os.WriteFile(seg.Data.ProducerSnapshotPath, big, 0o644); err != nil {
		t.Fatal(err)
	}
	rsmtest.Copy(t, st, seg)
	f.count.take()
	got := rsmtest.Read(t)(st.FetchIndex(t.Context(), seg.Meta, rsm.IndexProducerSnapshot))
	if !bytes.Equal(got, big) {
		t.Fatalf("producer snapshot of %d bytes came back as %d bytes", len(big), len(got))
	}
	if ops := f.count.take(); ops["GetObject"] != 2 {
		t.Fatalf("requests %s, want 2 GETs", formatOps(ops))
	}
}

// faultSeed picks faults deterministically from the request and the attempt.
func faultSeed(r *http.Request, attempt int) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s %s %s %s %d", r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Range"), attempt)
	return h.Sum64()
}

// exercise copies, fetches, lists and deletes a small and a multipart segment and checks every
// byte, then checks that nothing is left: no object, no multipart upload.
func exercise(t *testing.T, st *s3.Store) {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	tp := rsmtest.Partition("faults", 0)
	segs := []*rsmtest.Segment{
		rsmtest.Write(t, dir, rsmtest.Spec{Partition: tp, StartOffset: 0, LogSize: 300 << 10, Txn: true, Seed: 1}),
		rsmtest.Write(t, dir, rsmtest.Spec{Partition: tp, StartOffset: 1000, LogSize: 11 << 20, Seed: 2}),
	}
	for _, seg := range segs {
		rsmtest.Copy(t, st, seg)
		rsmtest.CheckStored(t, st, seg)
		log := seg.Log(t)
		got := rsmtest.Read(t)(st.FetchLog(ctx, seg.Meta, 777, int64(len(log))-555))
		if !bytes.Equal(got, log[777:len(log)-555]) {
			t.Fatalf("ranged fetch returned %d bytes that differ from the log", len(got))
		}
	}
	objs := rsmtest.Collect(t, st.List(ctx, tp))
	if len(objs) != 4 {
		t.Fatalf("List: %d objects, want 4: %+v", len(objs), objs)
	}
	for _, seg := range segs {
		if err := st.Delete(ctx, seg.Meta); err != nil {
			t.Fatal(err)
		}
	}
	expectEmpty(t, st)
}

// expectEmpty checks that the store holds nothing: no object and no incomplete upload.
func expectEmpty(t *testing.T, st *s3.Store) {
	t.Helper()
	if objs := rsmtest.Collect(t, st.ListAll(t.Context())); len(objs) != 0 {
		t.Fatalf("left behind: %+v", objs)
	}
}

// Transient faults on the first attempts of requests are retried away, downloads cut short
// resume, and every byte read back is the byte written.
func TestTransientFaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault fault
		rule  rule
	}{
		{"SlowDownFirstAttempt", faultSlowDown, func(r *http.Request, n int) fault { return pick(n == 1, faultSlowDown) }},
		{"InternalErrorFirstAttempt", faultInternal, func(r *http.Request, n int) fault { return pick(n == 1, faultInternal) }},
		{"ResetFirstAttempt", faultReset, func(r *http.Request, n int) fault { return pick(n == 1, faultReset) }},
		{"SlowDownTwice", faultSlowDown, func(r *http.Request, n int) fault { return pick(n <= 2, faultSlowDown) }},
		// Every response with a body is cut in half the first time, so each download resumes
		// several times and each XML response (complete, list, delete) is retried.
		{"TruncateFirstAttempt", faultTruncate, func(r *http.Request, n int) fault { return pick(n == 1, faultTruncate) }},
		{"Mixed", faultTruncate, func(r *http.Request, n int) fault {
			if n > 2 {
				return faultNone
			}
			return []fault{faultNone, faultNone, faultSlowDown, faultInternal, faultReset, faultTruncate}[faultSeed(r, n)%6]
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeS3(t)
			st := f.open(t, "transient")
			f.faults.setRule(tc.rule)
			exercise(t, st)
			if f.faults.injectedCount(tc.fault) == 0 {
				t.Fatalf("no %v fault was injected", tc.fault)
			}
		})
	}
}

func pick(cond bool, f fault) fault {
	if cond {
		return f
	}
	return faultNone
}

func isPart(r *http.Request, n int) bool {
	return r.Method == http.MethodPut && r.URL.Query().Get("partNumber") == fmt.Sprint(n)
}

// A part that keeps failing fails the copy with an error naming the bucket, key, part and
// segment; the upload is aborted and the bundle already written is deleted.
func TestPersistentPartFailure(t *testing.T) {
	f := newFakeS3(t)
	st := f.open(t, "persistent")
	f.faults.setRule(func(r *http.Request, n int) fault { return pick(isPart(r, 2), faultInternal) })
	seg := rsmtest.Write(t, t.TempDir(), rsmtest.Spec{Partition: rsmtest.Partition("persist", 0), LogSize: 12 << 20, Seed: 1})
	_, err := st.Copy(t.Context(), seg.Meta, seg.Data)
	if err == nil {
		t.Fatal("Copy succeeded although part 2 always fails")
	}
	for _, want := range []string{"s3://" + testBucket + "/persistent/", ".log", "part 2 of 3", seg.Meta.SegmentID.ID.String(), "InternalError"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if errors.Is(err, rsm.ErrPermanent) {
		t.Errorf("a server error is marked permanent: %v", err)
	}
	if got := f.faults.injectedCount(faultInternal); got != 5 {
		t.Errorf("part 2 was attempted %d times, want the 5 attempts configured", got)
	}
	f.faults.setRule(nil)
	expectEmpty(t, st)
}

// A copy canceled in the middle of a multipart upload aborts the upload all the same: Delete
// would not find an incomplete upload. The index bundle it wrote stays until Delete of the
// segment, since the caller gave up.
func TestCanceledMultipartUploadIsAborted(t *testing.T) {
	f := newFakeS3(t)
	st := f.open(t, "cancel", s3.WithConcurrency(1))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	f.faults.setRule(func(r *http.Request, n int) fault {
		if isPart(r, 2) {
			cancel()
			return faultInternal
		}
		return faultNone
	})
	seg := rsmtest.Write(t, t.TempDir(), rsmtest.Spec{Partition: rsmtest.Partition("cancel", 0), LogSize: 12 << 20, Seed: 1})
	if _, err := st.Copy(ctx, seg.Meta, seg.Data); !errors.Is(err, context.Canceled) {
		t.Fatalf("Copy: %v, want context.Canceled", err)
	}
	f.faults.setRule(nil)
	for o, err := range st.ListAll(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		if o.Type != rsm.FileIndexes {
			t.Errorf("left behind by the canceled copy: %+v, want only its index bundle", o)
		}
	}
	if err := st.Delete(t.Context(), seg.Meta); err != nil {
		t.Fatal(err)
	}
	expectEmpty(t, st)
}

// Errors no retry can fix are returned after one request, marked permanent; a missing bucket is
// not mistaken for a missing segment.
func TestPermanentErrors(t *testing.T) {
	f := newFakeS3(t)
	ctx := t.Context()
	seg := rsmtest.Write(t, t.TempDir(), rsmtest.Spec{Partition: rsmtest.Partition("perm", 0), LogSize: 1000, Seed: 1})

	st := f.open(t, "denied")
	f.faults.setRule(func(*http.Request, int) fault { return faultAccessDenied })
	f.count.take()
	_, err := st.Copy(ctx, seg.Meta, seg.Data)
	if !errors.Is(err, rsm.ErrPermanent) || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("Copy with access denied: %v", err)
	}
	if ops := f.count.take(); putRequests(ops) != 1 || len(ops) != 1 {
		t.Errorf("access denied took %s, want 1 PUT and nothing else", formatOps(ops))
	}
	if err := st.Check(ctx); !errors.Is(err, rsm.ErrPermanent) {
		t.Errorf("Check with access denied: %v", err)
	}
	f.faults.setRule(nil)

	cfg := f.config("nobucket")
	cfg.Bucket = "no-such-bucket"
	missing, err := s3.New(ctx, cfg, append([]s3.Option{s3.WithHTTPClient(&http.Client{Transport: f.count})}, testOptions...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer missing.Close()
	f.count.take()
	if _, err := missing.Copy(ctx, seg.Meta, seg.Data); !errors.Is(err, rsm.ErrPermanent) || !strings.Contains(err.Error(), "no-such-bucket") {
		t.Errorf("Copy to a missing bucket: %v", err)
	}
	if ops := f.count.take(); len(ops) != 1 || ops["PutObject"] != 1 {
		t.Errorf("a missing bucket took %s, want one PUT", formatOps(ops))
	}
	if _, err := missing.FetchLog(ctx, seg.Meta, 0, rsm.EndOfLog); !errors.Is(err, rsm.ErrPermanent) || errors.Is(err, rsm.ErrNotFound) {
		t.Errorf("FetchLog from a missing bucket: %v, want ErrPermanent and not ErrNotFound", err)
	}
	if err := missing.Check(ctx); !errors.Is(err, rsm.ErrPermanent) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Check of a missing bucket: %v", err)
	}
	if err := f.open(t, "ok").Check(ctx); err != nil {
		t.Errorf("Check of the bucket: %v", err)
	}
}

// A flipped bit in a whole-log download fails the stream at its end with ErrCorrupt (the SDK
// verifies the object's CRC-32C); a stream never ends in io.EOF after a corrupt byte.
func TestCorruptWholeObjectIsDetected(t *testing.T) {
	f := newFakeS3(t)
	st := f.open(t, "corrupt")
	seg := rsmtest.Write(t, t.TempDir(), rsmtest.Spec{Partition: rsmtest.Partition("corrupt", 0), LogSize: 200 << 10, Seed: 1})
	rsmtest.Copy(t, st, seg)
	f.faults.setRule(func(r *http.Request, n int) fault {
		return pick(r.Method == http.MethodGet && r.Header.Get("Range") == "" && strings.HasSuffix(r.URL.Path, ".log"), faultCorrupt)
	})
	rc, err := st.FetchLog(t.Context(), seg.Meta, 0, rsm.EndOfLog)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readPrefix(rc)
	rc.Close()
	if !errors.Is(err, rsm.ErrCorrupt) {
		t.Fatalf("reading a corrupted whole log: %d bytes, error %v, want ErrCorrupt", len(got), err)
	}
	if f.faults.injectedCount(faultCorrupt) != 1 {
		t.Fatal("the corruption was not injected")
	}
}

// A corrupted index is read again; one that stays corrupt is ErrCorrupt.
func TestCorruptIndexIsDetected(t *testing.T) {
	f := newFakeS3(t)
	st := f.open(t, "corrupt-index")
	seg := rsmtest.Write(t, t.TempDir(), rsmtest.Spec{Partition: rsmtest.Partition("corrupt", 1), LogSize: 1000, Txn: true, Seed: 2})
	rsmtest.Copy(t, st, seg)
	isIndexGet := func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, ".indexes")
	}

	f.faults.setRule(func(r *http.Request, n int) fault { return pick(isIndexGet(r) && n == 1, faultCorrupt) })
	for _, it := range rsm.IndexTypes {
		want, _ := seg.Index(it)
		if got := rsmtest.Read(t)(st.FetchIndex(t.Context(), seg.Meta, it)); !bytes.Equal(got, want) {
			t.Fatalf("%v: after one corrupted read, got %d bytes that differ", it, len(got))
		}
	}
	if f.faults.injectedCount(faultCorrupt) == 0 {
		t.Fatal("no corruption was injected")
	}

	f.faults.setRule(func(r *http.Request, n int) fault { return pick(isIndexGet(r), faultCorrupt) })
	_, err := st.FetchIndex(t.Context(), seg.Meta, rsm.IndexTimestamp)
	if !errors.Is(err, rsm.ErrCorrupt) || !strings.Contains(err.Error(), ".indexes") {
		t.Fatalf("FetchIndex of an index that stays corrupt: %v, want ErrCorrupt naming the key", err)
	}
}

// A download whose resumptions all fail ends in a clear error after the configured attempts,
// having returned only bytes of the log.
func TestBrokenDownloadFailsClearly(t *testing.T) {
	f := newFakeS3(t)
	st := f.open(t, "broken")
	seg := rsmtest.Write(t, t.TempDir(), rsmtest.Spec{Partition: rsmtest.Partition("broken", 0), LogSize: 300 << 10, Seed: 1})
	rsmtest.Copy(t, st, seg)
	f.faults.setRule(func(r *http.Request, n int) fault {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, ".log") {
			return faultNone
		}
		if r.Header.Get("Range") == "" {
			return faultTruncate
		}
		return faultNoBody // every resumption
	})
	rc, err := st.FetchLog(t.Context(), seg.Meta, 0, rsm.EndOfLog)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readPrefix(rc)
	rc.Close()
	if err == nil || errors.Is(err, rsm.ErrCorrupt) || !strings.Contains(err.Error(), "broke 5 times") || !strings.Contains(err.Error(), seg.Meta.SegmentID.ID.String()) {
		t.Fatalf("error %v, want one saying the download broke 5 times, naming the segment", err)
	}
	if len(got) != len(seg.Log(t))/2 || !bytes.Equal(got, seg.Log(t)[:len(got)]) {
		t.Fatalf("returned %d bytes, want the first half of the log exactly", len(got))
	}
}

// List reports what is not a complete part of a segment: an upload killed mid-way, a stray key,
// a file of Kafka's layout.
func TestListReportsStrays(t *testing.T) {
	f := newFakeS3(t)
	st := f.open(t, "strays")
	ctx := t.Context()
	tp := rsmtest.Partition("strays", 2)
	seg := rsmtest.Write(t, t.TempDir(), rsmtest.Spec{Partition: tp, StartOffset: 40, LogSize: 100, Seed: 1})
	rsmtest.Copy(t, st, seg)
	raw := f.rawClient(t)
	dir := "strays/" + rsm.PartitionDirName(tp) + "/"
	orphanID := proto.NewUUID()
	uploadKey := dir + rsm.SegmentFileName(90, orphanID, rsm.FileLog)
	if _, err := raw.CreateMultipartUpload(ctx, &s3sdk.CreateMultipartUploadInput{Bucket: aws.String(testBucket), Key: aws.String(uploadKey)}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"strays/README", dir + "notes.txt", dir + rsm.SegmentFileName(40, seg.Meta.SegmentID.ID, rsm.FileOffsetIndex), "strays/bad-dir/x.log"} {
		if _, err := raw.PutObject(ctx, &s3sdk.PutObjectInput{Bucket: aws.String(testBucket), Key: aws.String(k), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}
	problems := map[string]rsm.Object{}
	good := 0
	for _, o := range rsmtest.Collect(t, st.ListAll(ctx)) {
		if o.Problem != "" {
			problems[o.Name] = o
		} else {
			good++
		}
	}
	if good != 2 {
		t.Errorf("%d regular objects, want the segment's 2", good)
	}
	for _, k := range []string{"strays/README", dir + "notes.txt", dir + rsm.SegmentFileName(40, seg.Meta.SegmentID.ID, rsm.FileOffsetIndex), "strays/bad-dir/x.log", uploadKey} {
		if _, ok := problems[k]; !ok {
			t.Errorf("%s is not reported", k)
		}
	}
	if u := problems[uploadKey]; u.Segment.ID != orphanID || !strings.Contains(u.Problem, "incomplete multipart upload") {
		t.Errorf("the incomplete upload is reported as %+v", u)
	}
	if n := len(rsmtest.Collect(t, st.List(ctx, tp))); n != 5 {
		t.Errorf("List(partition) yields %d objects, want 2 regular, 2 strays and 1 upload", n)
	}
}

// Without WithHTTPClient the Store builds its own client from the SDK's transport (with the CA
// bundle of AWS_CA_BUNDLE when set) and closes its idle connections on Close.
func TestOwnHTTPClient(t *testing.T) {
	f := newFakeS3(t)
	st, err := s3.New(t.Context(), f.config("own-client"))
	if err != nil {
		t.Fatal(err)
	}
	seg := rsmtest.Write(t, t.TempDir(), rsmtest.Spec{Partition: rsmtest.Partition("own", 0), LogSize: 1 << 20, Txn: true, Seed: 1})
	rsmtest.Copy(t, st, seg)
	rsmtest.CheckStored(t, st, seg)
	if err := st.Delete(t.Context(), seg.Meta); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// A multipart upload says which checksum type its parts carry: a server told none may compute
// a checksum of its own over every byte (versitygw computes CRC-64/NVME), and COMPOSITE is
// what S3 assumes anyway for the algorithms that allow it.
func TestMultipartDeclaresChecksumType(t *testing.T) {
	for _, tc := range []struct {
		algorithm types.ChecksumAlgorithm
		want      string
	}{
		{types.ChecksumAlgorithmCrc32c, "COMPOSITE"},
		{types.ChecksumAlgorithmCrc32, "COMPOSITE"},
		{types.ChecksumAlgorithmSha256, "COMPOSITE"},
		{types.ChecksumAlgorithmCrc64nvme, "FULL_OBJECT"},
		{"", ""},
	} {
		t.Run(string(tc.algorithm), func(t *testing.T) {
			f := newFakeS3(t)
			st := f.open(t, "checksum-type", s3.WithChecksumAlgorithm(tc.algorithm))
			var mu sync.Mutex
			var creates []string
			f.faults.setRule(func(r *http.Request, _ int) fault {
				if r.Method == http.MethodPost && r.URL.Query().Has("uploads") {
					mu.Lock()
					creates = append(creates, r.Header.Get("x-amz-checksum-type"))
					mu.Unlock()
				}
				return faultNone
			})
			seg := rsmtest.Write(t, t.TempDir(), rsmtest.Spec{Partition: rsmtest.Partition("ck", 0), LogSize: 12 << 20, Seed: 1})
			rsmtest.Copy(t, st, seg)
			mu.Lock()
			defer mu.Unlock()
			if len(creates) != 1 || creates[0] != tc.want {
				t.Errorf("CreateMultipartUpload checksum types %q, want one %q", creates, tc.want)
			}
		})
	}
}

// A copy against a server that accepts requests and never answers returns by the caller's
// deadline: removing what it may have written would outlive the deadline by as long as the
// server stalls, so it is left for Delete of the segment.
func TestCopyReturnsByTheDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	defer close(release)
	st, err := s3.New(t.Context(), s3.Config{Bucket: "stall", Endpoint: srv.URL, PathStyle: true, Region: "us-east-1",
		AccessKeyID: "id", SecretAccessKey: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seg := rsmtest.Write(t, t.TempDir(), rsmtest.Spec{Partition: rsmtest.Partition("stall", 0), LogSize: 16 << 10, Seed: 1})
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := st.Copy(ctx, seg.Meta, seg.Data)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Copy: %v, want the deadline", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Copy still running 30s after its deadline")
	}
}

// An error that the server sends before it has read the request's body (versitygw refuses a
// bad signature as soon as it has the headers) is returned after one request, with its body:
// the client's transport is still writing the body when the response arrives, and the SDK,
// done with the request, closes the body under it; net/http then tears the connection down
// and the error's body is lost half read, which the SDK takes for a failed connection and
// retries. Here the client writes the body 30 ms after the headers and the server sends the
// second half of its answer 300 ms after the first, so that the SDK is reading the answer
// while the body is still being written.
func TestEarlyErrorIsNotRetried(t *testing.T) {
	const msg = "The request signature we calculated does not match the signature you provided."
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code><Message>` + msg + `</Message><RequestId>early</RequestId></Error>`
		w.Header().Set("Content-Type", "application/xml")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, body[:len(body)/2])
		w.(http.Flusher).Flush()
		select {
		case <-time.After(300 * time.Millisecond):
		case <-r.Context().Done():
		}
		io.WriteString(w, body[len(body)/2:])
	}))
	defer srv.Close()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		return &slowBodyConn{Conn: c}, err
	}
	count := &counter{next: tr, ops: map[string]int{}}
	st, err := s3.New(t.Context(), s3.Config{Bucket: "early", Endpoint: srv.URL, PathStyle: true, Region: "us-east-1",
		AccessKeyID: "id", SecretAccessKey: "wrong"}, append([]s3.Option{s3.WithHTTPClient(&http.Client{Transport: count})}, testOptions...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seg := rsmtest.Write(t, t.TempDir(), rsmtest.Spec{Partition: rsmtest.Partition("early", 0), LogSize: 1000, Seed: 1})
	err = st.Delete(t.Context(), seg.Meta)
	if !errors.Is(err, rsm.ErrPermanent) || !strings.Contains(err.Error(), msg) {
		t.Errorf("Delete refused before its body was read: %v\nwant ErrPermanent with the server's message", err)
	}
	if ops := count.take(); len(ops) != 1 || ops["DeleteObjects"] != 1 {
		t.Errorf("Delete refused before its body was read took %s, want one DeleteObjects", formatOps(ops))
	}
}

// slowBodyConn sends its first write (a request's headers) at once and each later one (the
// body) 30 ms late.
type slowBodyConn struct {
	net.Conn
	writes int
}

func (c *slowBodyConn) Write(p []byte) (int, error) {
	if c.writes++; c.writes > 1 {
		time.Sleep(30 * time.Millisecond)
	}
	return c.Conn.Write(p)
}
