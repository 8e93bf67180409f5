package serve

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	rlmmv1 "github.com/stratalog/strata/api/rlmm/v1"
	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rlmm"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// metadataTopic is __remote_log_metadata, which the tests write to directly.
const metadataTopic = "__remote_log_metadata"

var (
	topicID = mustUUID("Bp9TDduJRGa9Q5rlvCJOxg")
	// With 5 metadata partitions, Kafka's partitioner maps partitions 0, 1 and 3 of this topic
	// to metadata partitions 2, 2 and 4.
	tp0 = proto.TopicIDPartition{TopicID: topicID, Topic: "foo", Partition: 0}
	tp1 = proto.TopicIDPartition{TopicID: topicID, Topic: "foo", Partition: 1}
	tp3 = proto.TopicIDPartition{TopicID: topicID, Topic: "foo", Partition: 3}
)

func mustUUID(s string) proto.UUID {
	u, err := proto.ParseUUID(s)
	if err != nil {
		panic(err)
	}
	return u
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newCluster(t testing.TB) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func newManager(t testing.TB, c *kfake.Cluster, opts ...rlmm.Option) *rlmm.Manager {
	t.Helper()
	base := []rlmm.Option{
		rlmm.WithBootstrapServers(c.ListenAddrs()...),
		rlmm.WithCacheDir(t.TempDir()),
		rlmm.WithMetadataPartitions(5),
		rlmm.WithReplicationFactor(1),
		rlmm.WithMinISR(1),
		rlmm.WithConsumeWait(20 * time.Second),
	}
	if tt, ok := t.(*testing.T); ok {
		base = append(base, rlmm.WithLogger(zaptest.NewLogger(tt)))
	}
	m, err := rlmm.New(ctxT(t), append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// socketPath is a fresh Unix socket path short enough for sun_path (108 bytes), which
// t.TempDir's long names can exceed.
func socketPath(t testing.TB) string {
	dir, err := os.MkdirTemp("", "strata-serve")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "rlmm.sock")
}

// harness is a manager served on a real Unix socket, and a real client of it.
type harness struct {
	m      *rlmm.Manager
	client rlmmv1.RemoteLogMetadataServiceClient
	stop   func() error // stops the server and returns what Serve returned
}

func serveManager(t testing.TB, m *rlmm.Manager, opts ...Option) *harness {
	t.Helper()
	return serveManagerAt(t, m, socketPath(t), opts...)
}

// serveManagerAt is serveManager on the socket path.
func serveManagerAt(t testing.TB, m *rlmm.Manager, path string, opts ...Option) *harness {
	t.Helper()
	client, stop := serveOn(t, New(m, opts...), path)
	return &harness{m: m, client: client, stop: stop}
}

// serveOn serves s on a Unix socket at path until the test ends, and returns a client of it
// and what stops it (returning what Serve returned).
func serveOn(t testing.TB, s *Server, path string) (rlmmv1.RemoteLogMetadataServiceClient, func() error) {
	t.Helper()
	lis, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis) }()
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	var once atomic.Bool
	var served error
	stop := func() error {
		if once.CompareAndSwap(false, true) {
			cancel()
			served = <-done
			conn.Close()
		}
		return served
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return rlmmv1.NewRemoteLogMetadataServiceClient(conn), stop
}

func newHarness(t testing.TB, opts ...rlmm.Option) (*harness, *kfake.Cluster) {
	c := newCluster(t)
	return serveManager(t, newManager(t, c, opts...)), c
}

func pb(tp proto.TopicIDPartition) *rlmmv1.TopicIdPartition { return topicIDPartitionPB(tp) }

func encode(t testing.TB, r proto.Record) []byte {
	t.Helper()
	b, err := proto.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func segment(tp proto.TopicIDPartition, start, end int64, epochs ...proto.EpochEntry) *proto.SegmentMetadata {
	if len(epochs) == 0 {
		epochs = []proto.EpochEntry{{Epoch: 0, StartOffset: start}}
	}
	return &proto.SegmentMetadata{
		SegmentID:   proto.SegmentID{TopicIDPartition: tp, ID: proto.NewUUID()},
		StartOffset: start, EndOffset: end, BrokerID: 1, MaxTimestampMs: end, EventTimestampMs: 1700000000000,
		LeaderEpochs: epochs, SegmentSizeInBytes: int32(end-start+1) * 10, State: proto.CopySegmentStarted, TxnIndexEmpty: true,
	}
}

func update(md *proto.SegmentMetadata, state proto.SegmentState) *proto.SegmentMetadataUpdate {
	return &proto.SegmentMetadataUpdate{SegmentID: md.SegmentID, BrokerID: 1, EventTimestampMs: 1700000000001, State: state}
}

// assign makes tps leaders through the service and waits, through IsReady, until they are ready.
func (h *harness) assign(t testing.TB, tps ...proto.TopicIDPartition) {
	t.Helper()
	ctx := ctxT(t)
	req := &rlmmv1.OnPartitionLeadershipChangesRequest{}
	for _, tp := range tps {
		req.LeaderPartitions = append(req.LeaderPartitions, pb(tp))
	}
	if _, err := h.client.OnPartitionLeadershipChanges(ctx, req); err != nil {
		t.Fatal(err)
	}
	for _, tp := range tps {
		for {
			r, err := h.client.IsReady(ctx, &rlmmv1.IsReadyRequest{TopicIdPartition: pb(tp)})
			if err != nil {
				t.Fatal(err)
			}
			if r.Ready {
				break
			}
			if r.Reason.GetKind() != rlmmv1.ErrorKind_ERROR_KIND_NOT_READY {
				t.Fatalf("IsReady(%s) = %v", tp, r)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func (h *harness) add(t testing.TB, md *proto.SegmentMetadata, finish bool) {
	t.Helper()
	ctx := ctxT(t)
	if _, err := h.client.AddRemoteLogSegmentMetadata(ctx, &rlmmv1.AddRemoteLogSegmentMetadataRequest{Record: encode(t, md)}); err != nil {
		t.Fatal(err)
	}
	if finish {
		if _, err := h.client.UpdateRemoteLogSegmentMetadata(ctx, &rlmmv1.UpdateRemoteLogSegmentMetadataRequest{Record: encode(t, update(md, proto.CopySegmentFinished))}); err != nil {
			t.Fatal(err)
		}
	}
}

// decodeSegment decodes a reply's record, which must be a RemoteLogSegmentMetadata.
func decodeSegment(t testing.TB, b []byte) *proto.SegmentMetadata {
	t.Helper()
	r, err := proto.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	md, ok := r.(*proto.SegmentMetadata)
	if !ok {
		t.Fatalf("record is a %s", r.TypeName())
	}
	return md
}

func rawClient(t testing.TB, c *kfake.Cluster) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func produceRaw(t testing.TB, c *kfake.Cluster, mp int32, vals ...[]byte) {
	t.Helper()
	var recs []*kgo.Record
	for _, v := range vals {
		recs = append(recs, &kgo.Record{Topic: metadataTopic, Partition: mp, Value: v})
	}
	if err := rawClient(t, c).ProduceSync(ctxT(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// failFetches makes every fetch from c fail with NOT_LEADER_OR_FOLLOWER, a retriable error
// under which the manager's consumer never advances, until the returned function is called.
func failFetches(c *kfake.Cluster) (stop func()) {
	var stopped atomic.Bool
	c.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if stopped.Load() {
			c.DropControl()
			return nil, nil, false
		}
		c.KeepControl()
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		for _, rt := range req.(*kmsg.FetchRequest).Topics {
			st := kmsg.NewFetchResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, 6
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return func() { stopped.Store(true) }
}
