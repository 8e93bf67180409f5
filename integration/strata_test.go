//go:build integration

package integration

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rlmm"
	"github.com/stratalog/strata/rsm"
	"github.com/stratalog/strata/rsm/s3"
)

// Helpers of the tests in which Strata itself writes: its metadata manager publishing to the
// broker's __remote_log_metadata, and its S3 store writing to the test S3 server.

// kafkaMetadataPartitions is the partition count Kafka's own metadata manager gives
// __remote_log_metadata (TestKafkaAnswers checks it). Strata's managers share that topic and
// must agree on the count, since the partitioner's mapping depends on it.
const kafkaMetadataPartitions = 50

// newManager opens a Strata metadata manager on the test broker with its store in dir, closed
// when the test ends unless the test closes it first. It shares __remote_log_metadata with
// the broker's own manager: RF 1 and min ISR 1 as the single broker allows, in case it is the
// one to create the topic.
func newManager(t testing.TB, dir string, opts ...rlmm.Option) *rlmm.Manager {
	t.Helper()
	base := []rlmm.Option{
		rlmm.WithBootstrapServers(kafkaBrokers(t)...),
		rlmm.WithCacheDir(dir),
		rlmm.WithMetadataPartitions(kafkaMetadataPartitions),
		rlmm.WithReplicationFactor(1),
		rlmm.WithMinISR(1),
		rlmm.WithConsumeWait(30 * time.Second),
		rlmm.WithInitRetry(100*time.Millisecond, 30*time.Second),
		rlmm.WithLogger(zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))),
	}
	m, err := rlmm.New(testContext(t, time.Minute), append(base, opts...)...)
	if err != nil {
		t.Fatalf("open a metadata manager on %v: %v", kafkaBrokers(t), err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close the metadata manager: %v", err)
		}
	})
	return m
}

// assignReady assigns leaders to m and waits until they are ready.
func assignReady(t testing.TB, m *rlmm.Manager, leaders ...proto.TopicIDPartition) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	if err := m.AssignPartitions(ctx, leaders, nil); err != nil {
		t.Fatalf("assign %v: %v", leaders, err)
	}
	if err := m.WaitReady(ctx, leaders...); err != nil {
		t.Fatalf("wait until %v are ready: %v", leaders, err)
	}
}

// statsOf returns m's progress on metadata partition mp, or fails the test if m does not
// consume it.
func statsOf(t testing.TB, m *rlmm.Manager, mp int32) rlmm.PartitionStats {
	t.Helper()
	for _, s := range m.Stats() {
		if s.Partition == mp {
			return s
		}
	}
	t.Fatalf("the manager does not consume %s-%d", proto.TopicName, mp)
	return rlmm.PartitionStats{}
}

// newPartition returns a user partition no Kafka topic and no other test has: a fresh random
// topic id, so that nothing Strata publishes about it collides with Kafka's own events in the
// shared metadata topic. When the test ends the partition is forgotten (see forgetPartitions).
func newPartition(t testing.TB, topic string, partition int32) proto.TopicIDPartition {
	t.Helper()
	tp := proto.TopicIDPartition{TopicID: proto.NewUUID(), Topic: topic, Partition: partition}
	forgetPartitions(t, tp)
	return tp
}

// newPartitionOn is newPartition with a topic id chosen so that the partition's events go to
// metadata partition mp: tests that read one metadata partition back put all their events there.
func newPartitionOn(t testing.TB, mp int32, topic string, partition int32) proto.TopicIDPartition {
	t.Helper()
	for {
		tp := proto.TopicIDPartition{TopicID: proto.NewUUID(), Topic: topic, Partition: partition}
		if proto.MetadataPartition(tp, kafkaMetadataPartitions) == mp {
			forgetPartitions(t, tp)
			return tp
		}
	}
}

// newPartitionOff is newPartition with a topic id chosen so that the partition's events go to
// another metadata partition than other's.
func newPartitionOff(t testing.TB, other proto.TopicIDPartition, topic string, partition int32) proto.TopicIDPartition {
	t.Helper()
	avoid := proto.MetadataPartition(other, kafkaMetadataPartitions)
	for {
		tp := proto.TopicIDPartition{TopicID: proto.NewUUID(), Topic: topic, Partition: partition}
		if proto.MetadataPartition(tp, kafkaMetadataPartitions) != avoid {
			forgetPartitions(t, tp)
			return tp
		}
	}
}

// forgetPartitions publishes, when the test ends, DELETE_PARTITION_MARKED, _STARTED and
// _FINISHED for each of tps with a plain producer. A store applies FINISHED by dropping every
// row of the partition, as at the end of a topic's deletion, so the user partitions the test
// invented vanish from every later view of the shared topic: `strata verify` in a later test
// would otherwise report their segments, whose data no storage holds. A state the partition
// is already past is an invalid transition that stores drop, so the sequence works whatever
// state the test left the partition in, a failed test's included.
func forgetPartitions(t testing.TB, tps ...proto.TopicIDPartition) {
	t.Helper()
	// Made now, so that its own cleanup (closing it) runs after the one below.
	cl := kafkaClient(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	t.Cleanup(func() {
		var recs []*kgo.Record
		for _, tp := range tps {
			mp := proto.MetadataPartition(tp, kafkaMetadataPartitions)
			for _, st := range []proto.PartitionDeleteState{proto.DeletePartitionMarked, proto.DeletePartitionStarted, proto.DeletePartitionFinished} {
				b, err := proto.Encode(&proto.PartitionDeleteMetadata{
					TopicIDPartition: tp, BrokerID: -1, EventTimestampMs: time.Now().UnixMilli(), State: st,
				})
				if err != nil {
					t.Errorf("encode %s of %s: %v", st, tp, err)
					return
				}
				recs = append(recs, &kgo.Record{Topic: proto.TopicName, Partition: mp, Value: b})
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Errorf("forget the test's partitions %v: %v", tps, err)
		}
	})
}

// endOffset returns the end offset of metadata partition mp: the offset its next record gets.
func endOffset(t testing.TB, mp int32) int64 {
	t.Helper()
	offs, err := kafkaAdmin(t).ListEndOffsets(testContext(t, 30*time.Second), proto.TopicName)
	if err == nil {
		err = offs.Error()
	}
	if err != nil {
		t.Fatalf("list end offsets of %s: %v", proto.TopicName, err)
	}
	o, ok := offs.Lookup(proto.TopicName, mp)
	if !ok {
		t.Fatalf("no end offset for %s-%d", proto.TopicName, mp)
	}
	return o.Offset
}

// readMetadata reads offsets [from, to) of metadata partition mp with a plain consumer and
// decodes each record with Strata's codec; a record that does not decode fails the test.
func readMetadata(t testing.TB, mp int32, from, to int64) []metadataRecord {
	t.Helper()
	if from >= to {
		return nil
	}
	cl := kafkaClient(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		proto.TopicName: {mp: kgo.NewOffset().At(from)},
	}))
	var out []metadataRecord
	deadline := time.Now().Add(time.Minute)
	for int64(len(out)) < to-from {
		if time.Now().After(deadline) {
			t.Fatalf("read %s-%d offsets %d to %d: only %d records within a minute", proto.TopicName, mp, from, to, len(out))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("fetch %s-%d: %v", topic, p, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= to {
				return
			}
			dec, err := proto.Decode(r.Value)
			if err != nil {
				t.Fatalf("decode %s-%d offset %d (%x): %v", r.Topic, r.Partition, r.Offset, r.Value, err)
			}
			out = append(out, metadataRecord{Partition: r.Partition, Offset: r.Offset, Value: r.Value, Decoded: dec})
		})
	}
	return out
}

// waitUntil calls cond every 20 ms until it holds, and fails the test if that takes longer
// than timeout.
func waitUntil(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// s3Store opens Strata's S3 store on the test server with real SigV4 credentials and a key
// prefix of its own, so that runs and tests sharing the bucket never see each other's objects.
func s3Store(t testing.TB, e s3Env, opts ...s3.Option) *s3.Store {
	t.Helper()
	st, err := s3.New(testContext(t, 30*time.Second), s3Config(t, e, e.AccessKey, e.SecretKey),
		append([]s3.Option{s3.WithLogger(zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))}, opts...)...)
	if err != nil {
		t.Fatalf("open the S3 store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Check(testContext(t, 30*time.Second)); err != nil {
		t.Fatalf("S3 store at %s, bucket %s: %v", e.Endpoint, e.Bucket, err)
	}
	return st
}

// s3Config is the configuration of a store on the test server with the given credentials and
// a prefix unique to the test.
func s3Config(t testing.TB, e s3Env, accessKey, secretKey string) s3.Config {
	t.Helper()
	return s3.Config{
		Bucket:          e.Bucket,
		Prefix:          uniqueTopic(t) + "/",
		Region:          e.Region,
		Endpoint:        e.Endpoint,
		PathStyle:       true,
		AccessKeyID:     accessKey,
		SecretAccessKey: s3.Secret(secretKey),
	}
}

// segmentFiles are the files of one closed segment as a broker hands them to Copy, and their
// contents.
type segmentFiles struct {
	Data     rsm.SegmentData
	Contents map[rsm.IndexType][]byte
	Log      []byte
}

// writeSegmentFiles writes a segment's files into a new directory: a log of logSize random
// bytes and small random indexes, a transaction index only if withTxn. The content is not
// Kafka's format; storage does not read it.
func writeSegmentFiles(t testing.TB, logSize int, withTxn bool) segmentFiles {
	t.Helper()
	dir := t.TempDir()
	random := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	f := segmentFiles{
		Log: random(logSize),
		Contents: map[rsm.IndexType][]byte{
			rsm.IndexOffset:           random(800),
			rsm.IndexTimestamp:        random(1200),
			rsm.IndexProducerSnapshot: random(60),
			// Kafka's leader-epoch checkpoint text: version, count, then epoch and start offset.
			rsm.IndexLeaderEpoch: []byte("0\n2\n0 0\n3 50\n"),
		},
	}
	f.Data = rsm.SegmentData{
		LogPath:               write("00000000000000000000.log", f.Log),
		OffsetIndexPath:       write("00000000000000000000.index", f.Contents[rsm.IndexOffset]),
		TimeIndexPath:         write("00000000000000000000.timeindex", f.Contents[rsm.IndexTimestamp]),
		ProducerSnapshotPath:  write("00000000000000000000.snapshot", f.Contents[rsm.IndexProducerSnapshot]),
		LeaderEpochCheckpoint: f.Contents[rsm.IndexLeaderEpoch],
	}
	if withTxn {
		f.Contents[rsm.IndexTransaction] = random(340)
		f.Data.TransactionIndexPath = write("00000000000000000000.txnindex", f.Contents[rsm.IndexTransaction])
	}
	return f
}

// newSegment is the COPY_SEGMENT_STARTED metadata of a segment of tp holding offsets
// [start, end], all in leader epoch 0 unless epochs are given.
func newSegment(tp proto.TopicIDPartition, start, end int64, size int32, epochs ...proto.EpochEntry) *proto.SegmentMetadata {
	if len(epochs) == 0 {
		epochs = []proto.EpochEntry{{Epoch: 0, StartOffset: start}}
	}
	return &proto.SegmentMetadata{
		SegmentID:          proto.SegmentID{TopicIDPartition: tp, ID: proto.NewUUID()},
		StartOffset:        start,
		EndOffset:          end,
		BrokerID:           1,
		MaxTimestampMs:     time.Now().UnixMilli(),
		EventTimestampMs:   time.Now().UnixMilli(),
		LeaderEpochs:       epochs,
		SegmentSizeInBytes: size,
		State:              proto.CopySegmentStarted,
		TxnIndexEmpty:      true,
	}
}

// updateOf is the update moving seg to state.
func updateOf(seg *proto.SegmentMetadata, state proto.SegmentState) *proto.SegmentMetadataUpdate {
	return &proto.SegmentMetadataUpdate{SegmentID: seg.SegmentID, BrokerID: 1, EventTimestampMs: time.Now().UnixMilli(), State: state}
}
