//go:build integration

package integration

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/rsm"
	"github.com/stratalog/strata/rsm/s3"
)

// TestS3EndpointFaultsFailInTime points a store with default options at endpoints that cannot
// work and measures how long Check takes to say so. What no retry fixes (an untrusted CA,
// http:// against the HTTPS server, https:// against a plain HTTP one) must fail at once and
// permanently; what might come back (a refused connection, a server that accepts and never
// answers) within the default retry budget. Each case's time is logged, for the record.
func TestS3EndpointFaultsFailInTime(t *testing.T) {
	e := requireS3(t)
	if !strings.HasPrefix(e.Endpoint, "https://") {
		t.Skip("the harness's S3 server does not use TLS")
	}
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer plain.Close()
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedAddr := refused.Addr().String()
	refused.Close()
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // never read from nor answered
		}
	}()
	// held is the accepting goroutine's until it has returned.
	defer func() {
		hang.Close()
		<-accepting
		for _, c := range held {
			c.Close()
		}
	}()
	const permanentWithin = 5 * time.Second
	const budgetWithin = s3.DefaultRetryBudget + 15*time.Second
	for _, tc := range []struct {
		name      string
		endpoint  string
		noCA      bool
		permanent bool
		says      string
	}{
		{"untrusted CA", e.Endpoint, true, true, "certificate"},
		{"http:// against HTTPS", "http://" + strings.TrimPrefix(e.Endpoint, "https://"), false, true, "TLS"},
		{"https:// against plain HTTP", "https://" + strings.TrimPrefix(plain.URL, "http://"), false, true, "TLS"},
		{"connection refused", "https://" + refusedAddr, false, false, "refused"},
		{"accepts and hangs", "https://" + hang.Addr().String(), false, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.noCA {
				t.Setenv(envCABundle, "")
			}
			cfg := s3Config(t, e, e.AccessKey, e.SecretKey)
			cfg.Endpoint = tc.endpoint
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			st, err := s3.New(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			start := time.Now()
			err = st.Check(ctx)
			took := time.Since(start)
			t.Logf("%s: Check failed after %.1fs: %v", tc.name, took.Seconds(), err)
			if err == nil {
				t.Fatal("Check succeeded")
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Check ran into the caller's 5-minute deadline")
			}
			limit := budgetWithin
			if tc.permanent {
				limit = permanentWithin
				if !errors.Is(err, rsm.ErrPermanent) {
					t.Errorf("error does not wrap rsm.ErrPermanent: nothing a retry can fix")
				}
			}
			if took > limit {
				t.Errorf("took %v, want at most %v", took, limit)
			}
			if tc.says != "" && !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error does not say %q", tc.says)
			}
		})
	}
}
