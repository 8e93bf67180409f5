package s3_test

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/stratalog/strata/rsm/s3"
)

// fault is what faultHandler does to one request.
type fault int

const (
	faultNone         fault = iota
	faultSlowDown           // 503 SlowDown, S3's throttling
	faultInternal           // 500 InternalError
	faultReset              // the connection is closed without a response
	faultTruncate           // the response's body stops half way and the connection closes
	faultCorrupt            // one bit of the response's body is flipped
	faultAccessDenied       // 403 AccessDenied
	faultNoBody             // the response's headers, then the connection closes
)

func (f fault) String() string {
	return [...]string{"none", "SlowDown", "InternalError", "reset", "truncate", "corrupt", "AccessDenied", "no body"}[f]
}

// rule decides the fault for a request; attempt counts from 1 the times this exact request
// (method, path, query, range) has been seen, so retries of one request are told apart from
// other requests.
type rule func(r *http.Request, attempt int) fault

// faultHandler wraps gofakes3 and injects faults at the HTTP level, as a proxy or a struggling
// S3 would.
type faultHandler struct {
	next http.Handler

	mu       sync.Mutex
	rule     rule
	attempts map[string]int
	injected map[fault]int
}

func (h *faultHandler) setRule(r rule) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rule = r
}

func (h *faultHandler) injectedCount(f fault) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.injected[f]
}

func (h *faultHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Method + " " + r.URL.Path + "?" + r.URL.RawQuery + " " + r.Header.Get("Range")
	h.mu.Lock()
	h.attempts[id]++
	attempt, rl := h.attempts[id], h.rule
	h.mu.Unlock()
	f := faultNone
	if rl != nil {
		f = rl(r, attempt)
	}
	if f != faultNone {
		h.mu.Lock()
		h.injected[f]++
		h.mu.Unlock()
	}
	switch f {
	case faultNone:
		h.next.ServeHTTP(w, r)
	case faultSlowDown:
		writeS3Error(w, r, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
	case faultInternal:
		writeS3Error(w, r, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
	case faultAccessDenied:
		writeS3Error(w, r, http.StatusForbidden, "AccessDenied", "Access Denied")
	case faultReset:
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST rather than FIN
		}
		conn.Close()
	case faultTruncate, faultCorrupt, faultNoBody:
		rec := httptest.NewRecorder()
		h.next.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		maps.Copy(w.Header(), rec.Header())
		if rec.Code >= 300 || len(body) < 2 {
			w.WriteHeader(rec.Code)
			w.Write(body)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.Code)
		if f == faultCorrupt {
			body[len(body)/2] ^= 0x10
			w.Write(body)
			return
		}
		if f == faultTruncate {
			w.Write(body[:len(body)/2])
		}
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // closes the connection short of Content-Length
	}
}

func writeS3Error(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message><RequestId>fault</RequestId></Error>`, code, msg)
	}
}

// counter counts requests by S3 operation, as the client sends them (retries included).
type counter struct {
	next http.RoundTripper
	mu   sync.Mutex
	ops  map[string]int
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.ops[operation(r)]++
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

// operation names the S3 operation of a request from its method and query, as S3 bills them.
func operation(r *http.Request) string {
	q := r.URL.Query()
	if id := q.Get("x-id"); id != "" {
		return id
	}
	_, uploads := q["uploads"]
	_, del := q["delete"]
	switch {
	case r.Method == http.MethodPost && uploads:
		return "CreateMultipartUpload"
	case r.Method == http.MethodPost && q.Has("uploadId"):
		return "CompleteMultipartUpload"
	case r.Method == http.MethodPost && del:
		return "DeleteObjects"
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		return "AbortMultipartUpload"
	case r.Method == http.MethodGet && q.Get("list-type") == "2":
		return "ListObjectsV2"
	case r.Method == http.MethodGet && uploads:
		return "ListMultipartUploads"
	case r.Method == http.MethodHead:
		return "Head"
	}
	return r.Method
}

// take returns the counts since the last take and resets them.
func (c *counter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.ops
	c.ops = map[string]int{}
	return m
}

// putRequests is what S3 bills as PUT requests: uploads of any kind.
func putRequests(ops map[string]int) int {
	return ops["PutObject"] + ops["CreateMultipartUpload"] + ops["UploadPart"] + ops["CompleteMultipartUpload"]
}

func formatOps(ops map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(ops)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, ops[k]))
	}
	return strings.Join(parts, " ")
}

const testBucket = "strata-test"

// fakeS3 is gofakes3 behind an HTTP server, behind the fault layer, and a client transport that
// counts requests.
type fakeS3 struct {
	server    *httptest.Server
	faults    *faultHandler
	count     *counter
	transport *http.Transport
}

func newFakeS3(tb testing.TB) *fakeS3 {
	tb.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(testBucket); err != nil {
		tb.Fatal(err)
	}
	faker := gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog()))
	f := &fakeS3{faults: &faultHandler{next: faker.Server(), attempts: map[string]int{}, injected: map[fault]int{}}}
	f.server = httptest.NewServer(f.faults)
	f.transport = http.DefaultTransport.(*http.Transport).Clone()
	f.transport.MaxIdleConnsPerHost = 16
	f.count = &counter{next: f.transport, ops: map[string]int{}}
	tb.Cleanup(func() {
		f.transport.CloseIdleConnections()
		f.server.Close()
	})
	return f
}

// config is the Config of a store on the fake, under prefix.
func (f *fakeS3) config(prefix string) s3.Config {
	return s3.Config{
		Bucket:          testBucket,
		Prefix:          prefix,
		Region:          "us-east-1",
		Endpoint:        f.server.URL,
		PathStyle:       true,
		AccessKeyID:     "AKIDTEST",
		SecretAccessKey: "test-secret",
	}
}

// Test defaults: parts at S3's 5 MiB minimum so that multipart uploads are cheap to test, and
// millisecond backoffs so that retries do not slow the tests.
var testOptions = []s3.Option{
	s3.WithPartSize(5 << 20),
	s3.WithMultipartThreshold(5 << 20),
	s3.WithConcurrency(3),
	s3.WithRetries(5, 2*time.Millisecond),
}

func (f *fakeS3) open(tb testing.TB, prefix string, opts ...s3.Option) *s3.Store {
	tb.Helper()
	all := append([]s3.Option{s3.WithHTTPClient(&http.Client{Transport: f.count})}, testOptions...)
	st, err := s3.New(tb.Context(), f.config(prefix), append(all, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// readPrefix reads r until it fails, returning what it returned and the error that ended it.
func readPrefix(r io.Reader) ([]byte, error) {
	var buf bytes.Buffer
	_, err := io.Copy(&buf, r)
	return buf.Bytes(), err
}
