package rlmm

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/stratalog/strata/proto"
)

// loadMinRecords, when set, is every test manager's WithLoadMinRecords: with 1, every start
// on an empty store loads in bulk, and the whole suite runs through the load.
var loadMinRecords = flag.Int64("rlmm.load.min.records", -1, "WithLoadMinRecords of every test manager (-1: the default)")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newCluster starts an in-process Kafka cluster that the test closes.
func newCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// newManager starts a manager on c with a store in dir; the test closes it unless it does so
// itself first.
func newManager(t testing.TB, c *kfake.Cluster, dir string, opts ...Option) *Manager {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := []Option{
		WithBootstrapServers(c.ListenAddrs()...),
		WithCacheDir(dir),
		WithMetadataPartitions(5),
		WithReplicationFactor(1),
		WithMinISR(1),
		WithConsumeWait(20 * time.Second),
	}
	if *loadMinRecords >= 0 {
		base = append(base, WithLoadMinRecords(*loadMinRecords))
	}
	if tt, ok := t.(*testing.T); ok {
		base = append(base, WithLogger(zaptest.NewLogger(tt)))
	}
	m, err := New(ctx, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

var (
	topicID = mustUUID("Bp9TDduJRGa9Q5rlvCJOxg")
	// With 5 metadata partitions, Kafka's partitioner maps partitions 0..3 of this topic to
	// metadata partitions 2, 2, 2 and 4.
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

func segment(tp proto.TopicIDPartition, start, end int64, epochs ...proto.EpochEntry) *proto.SegmentMetadata {
	if len(epochs) == 0 {
		epochs = []proto.EpochEntry{{Epoch: 0, StartOffset: start}}
	}
	return &proto.SegmentMetadata{
		SegmentID:   proto.SegmentID{TopicIDPartition: tp, ID: proto.NewUUID()},
		StartOffset: start, EndOffset: end, BrokerID: 1, MaxTimestampMs: end, EventTimestampMs: time.Now().UnixMilli(),
		LeaderEpochs: epochs, SegmentSizeInBytes: int32(end-start+1) * 10, State: proto.CopySegmentStarted, TxnIndexEmpty: true,
	}
}

func finish(md *proto.SegmentMetadata, state proto.SegmentState) *proto.SegmentMetadataUpdate {
	return &proto.SegmentMetadataUpdate{SegmentID: md.SegmentID, BrokerID: 1, EventTimestampMs: time.Now().UnixMilli(), State: state}
}
