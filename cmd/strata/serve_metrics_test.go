package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// freeLoopbackAddr returns a loopback address nothing listens on now.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestServeMetricsAddr: --metrics-addr serves /metrics, /healthz and /readyz while serve runs,
// and nothing once it has stopped.
func TestServeMetricsAddr(t *testing.T) {
	c := serveCluster(t)
	dir := serveDir(t)
	props := filepath.Join(dir, "rlmm.properties")
	if err := os.WriteFile(props, []byte(brokerProperties(c, filepath.Join(dir, "logs"))), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeLoopbackAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"serve", "--properties", props, "--metrics-addr", addr}, strings.NewReader(""), &stdout, &stderr)
	}()
	get := func(path string) (int, string, error) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _, err := get("/readyz")
		if err == nil && code == http.StatusOK {
			break
		}
		select {
		case code := <-exited:
			t.Fatalf("serve exited with %d\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not 200 after 30s: %d %v", code, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, body, err := get("/healthz"); err != nil || code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz = %d %q %v", code, body, err)
	}
	code, body, err := get("/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("/metrics = %d %v", code, err)
	}
	for _, want := range []string{`strata_rlmm_partitions{state="ready"} 0`, "strata_cache_disk_usage_bytes ", "go_goroutines ", "strata_rlmm_kafka_"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no %q", want)
		}
	}
	cancel()
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	if _, _, err := get("/healthz"); err == nil {
		t.Error("the metrics server still answers after serve stopped")
	}
}

func TestServeMetricsAddrMustBeLoopback(t *testing.T) {
	var stdout, stderr syncBuffer
	dir := serveDir(t)
	props := filepath.Join(dir, "rlmm.properties")
	if err := os.WriteFile(props, []byte("log.dir="+dir+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code := run(context.Background(), []string{"serve", "--properties", props, "--metrics-addr", "0.0.0.0:9404"}, strings.NewReader(""), &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "--metrics-addr") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}
