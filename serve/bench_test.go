package serve

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	rlmmv1 "github.com/stratalog/strata/api/rlmm/v1"
	"github.com/stratalog/strata/proto"
)

// lookupSegments is how many finished segments of tp0 the lookup benchmarks serve, 100
// offsets each.
const lookupSegments = 1000

// BenchmarkLookup: remoteLogSegmentMetadata as the Kafka plugin calls it, through a real Unix
// socket and a real gRPC client, against a partition of 1,000 finished segments; reports the
// latency percentiles of one call (p50-us, p99-us). Client and server share one Go runtime, whose
// scheduler hands a call between them without waking another thread most of the time: this is
// the floor of the server's own cost, not what a client in another process sees (see
// BenchmarkLookupOtherProcess).
func BenchmarkLookup(b *testing.B) {
	c := newCluster(b)
	h := serveManager(b, newManager(b, c))
	loadLookupSegments(b, h)
	benchmarkLookups(b, h.client)
}

// BenchmarkLookupOtherProcess is BenchmarkLookup with the server in a process of its own (this
// test binary again, running TestServeForBenchmark), as strata serve is to the Kafka plugin:
// every call crosses processes, so each side's wake-up from its poller is in the figure.
func BenchmarkLookupOtherProcess(b *testing.B) {
	path := socketPath(b)
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeForBenchmark$", "-test.count=1", "-test.timeout=30m")
	cmd.Env = append(os.Environ(), serveForBenchmarkEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	ready := make(chan bool, 1)
	go func() {
		// The child says ready on stdout once its segments are in; the rest is its test output.
		s := bufio.NewScanner(stdout)
		saw := false
		for s.Scan() {
			if !saw && s.Text() == serveForBenchmarkReady {
				saw = true
				ready <- true
			}
		}
		if !saw {
			ready <- false
		}
		exited <- cmd.Wait()
	}()
	b.Cleanup(func() {
		stdin.Close() // the child stops at EOF
		select {
		case err := <-exited:
			if err != nil {
				b.Errorf("server process: %v", err)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			b.Errorf("server process still running 30s after its stdin closed: killed")
			<-exited
		}
	})
	select {
	case ok := <-ready:
		if !ok {
			b.Fatal("server process ended before it was ready")
		}
	case <-time.After(2 * time.Minute):
		b.Fatal("server process not ready after 2 minutes")
	}
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	benchmarkLookups(b, rlmmv1.NewRemoteLogMetadataServiceClient(conn))
}

const (
	// serveForBenchmarkEnv names the socket TestServeForBenchmark serves on; unset, it skips.
	serveForBenchmarkEnv = "STRATA_SERVE_FOR_BENCHMARK"
	// serveForBenchmarkReady is the line it prints on stdout once it serves its segments.
	serveForBenchmarkReady = "serve-for-benchmark: ready"
)

// TestServeForBenchmark is BenchmarkLookupOtherProcess's server process: it serves
// BenchmarkLookup's segments on the socket serveForBenchmarkEnv names until its stdin ends.
func TestServeForBenchmark(t *testing.T) {
	path := os.Getenv(serveForBenchmarkEnv)
	if path == "" {
		t.Skip("the server process of BenchmarkLookupOtherProcess")
	}
	c := newCluster(t)
	h := serveManagerAt(t, newManager(t, c), path)
	loadLookupSegments(t, h)
	fmt.Println(serveForBenchmarkReady)
	if _, err := io.Copy(io.Discard, os.Stdin); err != nil {
		t.Fatal(err)
	}
}

// loadLookupSegments makes tp0 a leader and adds lookupSegments finished segments to it.
func loadLookupSegments(t testing.TB, h *harness) {
	t.Helper()
	h.assign(t, tp0)
	for i := int64(0); i < lookupSegments; i++ {
		md := segment(tp0, i*100, i*100+99, proto.EpochEntry{Epoch: 0, StartOffset: i * 100})
		h.add(t, md, true)
	}
}

// benchmarkLookups times one lookup of a random offset of loadLookupSegments' segments a loop.
func benchmarkLookups(b *testing.B, client rlmmv1.RemoteLogMetadataServiceClient) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rng := rand.New(rand.NewPCG(1, 2))
	lat := make([]time.Duration, 0, 1<<16)
	req := &rlmmv1.RemoteLogSegmentMetadataRequest{TopicIdPartition: pb(tp0)}
	for b.Loop() {
		req.Offset = rng.Int64N(lookupSegments * 100)
		start := time.Now()
		resp, err := client.RemoteLogSegmentMetadata(ctx, req)
		lat = append(lat, time.Since(start))
		if err != nil || resp.Record == nil {
			b.Fatalf("lookup(%d) = %v, %v", req.Offset, resp, err)
		}
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(pct(0.50), "p50-us")
	b.ReportMetric(pct(0.99), "p99-us")
}
