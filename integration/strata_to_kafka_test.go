//go:build integration

package integration

import (
	"encoding/hex"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/proto"
)

// TestKafkaReadsStrata is the other direction of TestStrataReadsKafka: Strata's manager
// publishes every record type in every state, with the edge cases of the format, to the
// broker's __remote_log_metadata, and Kafka's own RemoteLogMetadataFormatter, run by Kafka's
// console consumer, prints each record exactly as `strata decode --format text` prints the same
// bytes, behind the partition and offset prefix Kafka prints (proto.FormatKafka).
func TestKafkaReadsStrata(t *testing.T) {
	requireTool(t, "java")
	requireEnv(t, envKafkaLibs)
	ctx := testContext(t, 2*time.Minute)
	m := newManager(t, t.TempDir())

	// Every user partition's events go to one metadata partition, so that one run of the
	// console consumer prints them all, in the order they were published.
	topic := uniqueTopic(t)
	a := newPartition(t, topic, 0)
	mp := proto.MetadataPartition(a, kafkaMetadataPartitions)
	// A topic name is any string to the format, whatever Kafka allows topics to be called.
	b := newPartitionOn(t, mp, "strata-ünïcødé-日本語-🚀-"+topic, 7)
	c := newPartitionOn(t, mp, topic+":with-colons-and-dashes", math.MaxInt32)
	assignReady(t, m, a, b, c)

	epochs := make([]proto.EpochEntry, 64)
	for i := range epochs {
		epochs[i] = proto.EpochEntry{Epoch: int32(3 * i), StartOffset: 1000 + int64(i)*1_000_000}
	}
	seg := func(tp proto.TopicIDPartition, start, end int64, custom []byte, txnEmpty bool, epochs ...proto.EpochEntry) *proto.SegmentMetadata {
		s := newSegment(tp, start, end, 4096, epochs...)
		s.CustomMetadata, s.TxnIndexEmpty = custom, txnEmpty
		return s
	}
	upd := func(s *proto.SegmentMetadata, st proto.SegmentState, custom []byte) *proto.SegmentMetadataUpdate {
		u := updateOf(s, st)
		u.CustomMetadata = custom
		return u
	}
	del := func(tp proto.TopicIDPartition, st proto.PartitionDeleteState) *proto.PartitionDeleteMetadata {
		return &proto.PartitionDeleteMetadata{TopicIDPartition: tp, BrokerID: 1, EventTimestampMs: time.Now().UnixMilli(), State: st}
	}

	// s1: null custom metadata, an empty transaction index, no timestamp (-1, as Kafka writes
	// for a segment without one). s2: empty (not null) custom metadata, a transaction index,
	// 64 leader epochs, extreme values. s3: a non-ASCII topic name, custom metadata, two epochs
	// with a gap between them. s4: copied, then deleted without ever finishing.
	s1 := seg(a, 0, 999, nil, true)
	s1.MaxTimestampMs = -1
	s2 := seg(a, 1000, math.MaxInt64/2, []byte{}, false, epochs...)
	s2.BrokerID, s2.SegmentSizeInBytes, s2.EventTimestampMs = math.MaxInt32, math.MaxInt32, 0
	s3 := seg(b, 0, 99, []byte("strata custom metadata"), false, proto.EpochEntry{Epoch: 5, StartOffset: 0}, proto.EpochEntry{Epoch: 9, StartOffset: 40})
	s4 := seg(b, 100, 199, []byte{0}, true)
	published := []proto.Record{
		s1, s2, s3,
		upd(s1, proto.CopySegmentFinished, nil),
		upd(s2, proto.CopySegmentFinished, []byte{}),
		upd(s3, proto.CopySegmentFinished, []byte{0xff, 0x00, 0x7f}),
		upd(s1, proto.DeleteSegmentStarted, nil),
		upd(s1, proto.DeleteSegmentFinished, nil),
		s4,
		upd(s4, proto.DeleteSegmentStarted, []byte("x")),
		del(c, proto.DeletePartitionMarked),
		del(c, proto.DeletePartitionMarked), // a repeated marker, as a controller failover sends
		del(c, proto.DeletePartitionStarted),
		del(c, proto.DeletePartitionFinished),
		del(b, proto.DeletePartitionMarked),
	}
	from := endOffset(t, mp)
	for _, r := range published {
		var err error
		switch r := r.(type) {
		case *proto.SegmentMetadata:
			err = m.AddSegment(ctx, r)
		case *proto.SegmentMetadataUpdate:
			err = m.UpdateSegment(ctx, r)
		case *proto.PartitionDeleteMetadata:
			err = m.PutPartitionDelete(ctx, r)
		}
		if err != nil {
			t.Fatalf("publish %s: %v", r, err)
		}
	}
	records := readMetadata(t, mp, from, endOffset(t, mp))

	// What the topic holds is what was published, in order, value for value: null and empty
	// custom metadata stay distinct. Kafka's own manager may have written to the same metadata
	// partition meanwhile; its records are compared with Kafka's formatter below all the same.
	var ours []proto.Record
	for _, r := range records {
		if tp, ok := proto.UserPartition(r.Decoded); ok && (tp == a || tp == b || tp == c) {
			ours = append(ours, r.Decoded)
		}
	}
	if len(ours) != len(published) {
		t.Fatalf("%s-%d holds %d records of the test's partitions from offset %d, want the %d published", proto.TopicName, mp, len(ours), from, len(published))
	}
	for i := range published {
		if !reflect.DeepEqual(ours[i], published[i]) {
			t.Errorf("record %d: the topic holds\n  %s\nStrata published\n  %s", i, ours[i], published[i])
		}
	}
	compareWithKafka(t, proto.TopicName, mp, records)
}

// TestKafkaReadsSnapshotRecord: the fourth record type, RemoteLogSegmentMetadataSnapshotRecord
// (apiKey 3), which Kafka's manager never publishes and no manager can publish through its API,
// encoded by Strata and produced raw, prints in Kafka's formatter as Strata prints it. Kafka's
// formatter decodes and prints it without trouble; its toString ends with txnIdxEmpty, and
// omits the broker id and event timestamp the record carries.
//
// The records go to a scratch topic, not to __remote_log_metadata: Kafka's own manager, which
// consumes that topic, dies on a snapshot record (docs/KAFKA_SEMANTICS.md section 1), and the
// broker's tiering with it. Kafka's formatter decodes any topic's records alike.
func TestKafkaReadsSnapshotRecord(t *testing.T) {
	requireTool(t, "java")
	requireEnv(t, envKafkaLibs)
	adm := kafkaAdmin(t)
	topic := uniqueTopic(t)
	createTopic(t, adm, topic, nil)

	snapshots := []*proto.SegmentMetadataSnapshot{
		{
			SegmentUUID: proto.NewUUID(), StartOffset: 0, EndOffset: 99, BrokerID: 1, MaxTimestampMs: -1,
			EventTimestampMs: time.Now().UnixMilli(), LeaderEpochs: []proto.EpochEntry{{Epoch: 0, StartOffset: 0}},
			SegmentSizeInBytes: 1024, State: proto.CopySegmentStarted, TxnIndexEmpty: true,
		},
		{
			SegmentUUID: proto.NewUUID(), StartOffset: 100, EndOffset: math.MaxInt64 / 2, BrokerID: math.MaxInt32, MaxTimestampMs: time.Now().UnixMilli(),
			LeaderEpochs:       []proto.EpochEntry{{Epoch: 1, StartOffset: 100}, {Epoch: 4, StartOffset: 150}, {Epoch: 9, StartOffset: 1 << 40}},
			SegmentSizeInBytes: math.MaxInt32, CustomMetadata: []byte{}, State: proto.CopySegmentFinished,
		},
		{
			SegmentUUID: proto.NewUUID(), StartOffset: 5, EndOffset: 5, EventTimestampMs: 1, LeaderEpochs: []proto.EpochEntry{{Epoch: 7, StartOffset: 5}},
			CustomMetadata: []byte("custom"), State: proto.DeleteSegmentStarted,
		},
		{
			SegmentUUID: proto.NewUUID(), StartOffset: 0, EndOffset: 10, LeaderEpochs: []proto.EpochEntry{{Epoch: 0, StartOffset: 0}},
			State: proto.DeleteSegmentFinished, TxnIndexEmpty: true,
		},
	}
	producer := kafkaClient(t, kgo.DefaultProduceTopic(topic))
	var recs []*kgo.Record
	for _, s := range snapshots {
		v, err := proto.Encode(s)
		if err != nil {
			t.Fatalf("encode %s: %v", s, err)
		}
		recs = append(recs, &kgo.Record{Value: v})
	}
	if err := producer.ProduceSync(testContext(t, 30*time.Second), recs...).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
	var records []metadataRecord
	for i, r := range recs {
		dec, err := proto.Decode(r.Value)
		if err != nil {
			t.Fatalf("decode %x: %v", r.Value, err)
		}
		if !reflect.DeepEqual(dec, proto.Record(snapshots[i])) {
			t.Errorf("snapshot %d decodes to\n  %s\nwant\n  %s", i, dec, snapshots[i])
		}
		records = append(records, metadataRecord{Partition: r.Partition, Offset: r.Offset, Value: r.Value, Decoded: dec})
	}
	compareWithKafka(t, topic, 0, records)
}

// compareWithKafka checks that Kafka's RemoteLogMetadataFormatter prints records, consecutive
// records of partition p of topic, exactly as `strata decode --format text` prints their bytes,
// behind Kafka's "partition: P, offset: O, value: " prefix, and as proto.FormatKafka does.
func compareWithKafka(t *testing.T, topic string, p int32, records []metadataRecord) {
	t.Helper()
	if len(records) == 0 {
		t.Fatal("no records to compare")
	}
	var in strings.Builder
	for _, r := range records {
		in.WriteString(hex.EncodeToString(r.Value))
		in.WriteByte('\n')
	}
	res := runStrata(t, in.String(), "decode", "--format", "text")
	if res.Code != 0 || res.Stderr != "" {
		t.Fatalf("strata decode: exit status %d\nstderr:\n%s", res.Code, res.Stderr)
	}
	strata := strings.Split(strings.TrimSuffix(res.Stdout, "\n"), "\n")
	if len(strata) != len(records) {
		t.Fatalf("strata decode printed %d lines for %d records:\n%s", len(strata), len(records), res.Stdout)
	}
	kafka := kafkaFormatterLinesAt(t, topic, p, records[0].Offset, len(records))
	differ := 0
	for i, r := range records {
		want := fmt.Sprintf("partition: %d, offset: %d, value: %s", r.Partition, r.Offset, strata[i])
		if kafka[i] != want {
			differ++
			t.Errorf("%s-%d offset %d: Kafka's formatter printed\n  %s\nstrata decode printed\n  %s", topic, p, r.Offset, kafka[i], want)
		}
		if got := proto.FormatKafka(r.Partition, r.Offset, r.Decoded); got != want {
			t.Errorf("%s-%d offset %d: proto.FormatKafka printed\n  %s\nstrata decode printed\n  %s", topic, p, r.Offset, got, want)
		}
	}
	t.Logf("Kafka's formatter and strata decode print %d of the %d records of %s-%d from offset %d alike",
		len(records)-differ, len(records), topic, p, records[0].Offset)
}
