//go:build faults

package faults

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// action is what the proxy does with one request.
type action struct {
	kind   actionKind
	status int           // actError: the HTTP status
	code   string        // actError: the S3 error code
	delay  time.Duration // actStall: how long to hold the request before passing it on
}

type actionKind int

const (
	actPass  actionKind = iota
	actError            // answer with an S3 error instead of passing the request on
	actStall            // hold the request for delay (or until the client gives up), then pass it on
	actHold             // hold the request until the rule changes or the client gives up, then close the connection
	actReset            // close the connection without an answer
)

// rule decides what happens to a request; n counts the requests the rule has seen, from 1.
type rule func(r *http.Request, n int64) action

func passAll(*http.Request, int64) action { return action{} }

// faultProxy is an HTTPS reverse proxy on loopback between Strata and the S3 server that
// injects errors, stalls and broken connections by a rule. It serves the S3 server's own
// certificate (made for 127.0.0.1, any port), so clients trust it through AWS_CA_BUNDLE, and
// forwards each request with its Host header as signed.
type faultProxy struct {
	URL string

	srv *http.Server
	ln  net.Listener

	mu      sync.Mutex
	rule    rule
	seen    int64
	changed chan struct{} // closed and replaced when the rule changes: held requests end

	held     chan struct{} // receives when a request is held (actHold)
	injected [5]atomic.Int64
	inFlight atomic.Int64 // requests being served
}

// waitIdle waits until no request is in flight, within timeout. A request stalled past its
// client's deadline still reaches the server afterwards, as a delayed request does on a real
// network: repair, which deletes orphans, runs only once none is left.
func (p *faultProxy) waitIdle(timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); p.inFlight.Load() > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("fault proxy: %d requests still in flight after %v", p.inFlight.Load(), timeout)
		}
	}
	return nil
}

func newFaultProxy(t testing.TB, e env) *faultProxy {
	t.Helper()
	target, err := url.Parse(e.s3Endpoint)
	if err != nil {
		t.Fatalf("S3 endpoint %q: %v", e.s3Endpoint, err)
	}
	pem, err := os.ReadFile(e.s3Cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", e.s3Cert)
	}
	cert, err := tls.LoadX509KeyPair(e.s3Cert, e.s3Key)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
	p := &faultProxy{rule: passAll, changed: make(chan struct{}), held: make(chan struct{}, 64)}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // the client signed this Host
		},
		Transport: tr,
		// A client that gave up on a stalled request is the fault working, not news.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("fault proxy: %v", err)
	}
	p.ln = ln
	p.URL = "https://" + ln.Addr().String()
	p.srv = &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.serve(w, r, rp) }),
		ReadHeaderTimeout: 30 * time.Second,
		// HTTP/1.1 only, so that a reset can hijack the connection.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		p.setRule(passAll)
		_ = p.srv.Close()
		<-done
		tr.CloseIdleConnections()
	})
	return p
}

// setRule makes r the rule from now on; requests held by the previous rule are dropped.
func (p *faultProxy) setRule(r rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rule, p.seen = r, 0
	close(p.changed)
	p.changed = make(chan struct{})
}

// takeCounts returns how many requests got each kind of fault, and resets the counts.
func (p *faultProxy) takeCounts() map[string]int64 {
	names := map[actionKind]string{actError: "errors", actStall: "stalls", actHold: "held", actReset: "resets"}
	out := map[string]int64{}
	for k, n := range names {
		if v := p.injected[k].Swap(0); v > 0 {
			out[n] = v
		}
	}
	return out
}

func (p *faultProxy) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	p.inFlight.Add(1)
	defer p.inFlight.Add(-1)
	p.mu.Lock()
	p.seen++
	a := p.rule(r, p.seen)
	changed := p.changed
	p.mu.Unlock()
	if a.kind != actPass {
		p.injected[a.kind].Add(1)
	}
	switch a.kind {
	case actError:
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(a.status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected by the fault suite</Message></Error>`, a.code)
		return
	case actStall:
		select {
		case <-time.After(a.delay):
		case <-r.Context().Done():
			return
		}
	case actHold:
		select {
		case p.held <- struct{}{}:
		default:
		}
		select {
		case <-changed:
		case <-r.Context().Done():
		}
		reset(w)
		return
	case actReset:
		reset(w)
		return
	}
	next.ServeHTTP(w, r)
}

// reset closes the request's connection without an answer: a handler that returned without
// writing would answer 200.
func reset(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}
