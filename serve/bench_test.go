package serve

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	rlmmv1 "github.com/stratalog/strata/api/rlmm/v1"
	"github.com/stratalog/strata/proto"
)

// BenchmarkLookup: remoteLogSegmentMetadata as the Kafka plugin calls it, through a real Unix
// socket and a real gRPC client, against a partition of 1,000 finished segments; reports the
// latency percentiles of one call (p50-us, p99-us).
func BenchmarkLookup(b *testing.B) {
	const segments = 1000
	c := newCluster(b)
	h := serveManager(b, newManager(b, c))
	h.assign(b, tp0)
	for i := int64(0); i < segments; i++ {
		md := segment(tp0, i*100, i*100+99, proto.EpochEntry{Epoch: 0, StartOffset: i * 100})
		h.add(b, md, true)
	}
	ctx := ctxT(b)
	rng := rand.New(rand.NewPCG(1, 2))
	lat := make([]time.Duration, 0, 1<<16)
	req := &rlmmv1.RemoteLogSegmentMetadataRequest{TopicIdPartition: pb(tp0)}
	for b.Loop() {
		req.Offset = rng.Int64N(segments * 100)
		start := time.Now()
		resp, err := h.client.RemoteLogSegmentMetadata(ctx, req)
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
