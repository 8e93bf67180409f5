//go:build integration

package integration

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/proto"
)

// metadataRecord is one record of __remote_log_metadata as Kafka stored it, and what Strata
// decodes it to.
type metadataRecord struct {
	Partition int32
	Offset    int64
	Value     []byte
	Decoded   proto.Record
}

// metadataLog reads __remote_log_metadata from its start with a plain consumer and keeps every
// record. A record Strata cannot decode fails the test: Strata must read all Kafka writes.
type metadataLog struct {
	t       testing.TB
	cl      *kgo.Client
	Records []metadataRecord // in offset order within each partition
}

func newMetadataLog(t testing.TB) *metadataLog {
	t.Helper()
	cl := kafkaClient(t,
		kgo.ConsumeTopics(proto.TopicName),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	return &metadataLog{t: t, cl: cl}
}

// waitFor reads on until done reports true, and fails the test if that takes longer than
// timeout. done is called between fetches, so it also serves to poll files.
func (m *metadataLog) waitFor(what string, timeout time.Duration, done func() bool) {
	m.t.Helper()
	deadline := time.Now().Add(timeout)
	for !done() {
		if time.Now().After(deadline) {
			m.t.Fatalf("%s: not within %v", what, timeout)
		}
		m.poll(500 * time.Millisecond)
	}
}

// poll fetches what arrives within d.
func (m *metadataLog) poll(d time.Duration) {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	fs := m.cl.PollFetches(ctx)
	fs.EachError(func(topic string, p int32, err error) {
		if !errors.Is(err, context.DeadlineExceeded) {
			m.t.Fatalf("fetch %s-%d: %v", topic, p, err)
		}
	})
	fs.EachRecord(func(r *kgo.Record) {
		dec, err := proto.Decode(r.Value)
		if err != nil {
			m.t.Fatalf("decode %s-%d offset %d (%x): %v", r.Topic, r.Partition, r.Offset, r.Value, err)
		}
		m.Records = append(m.Records, metadataRecord{
			Partition: r.Partition,
			Offset:    r.Offset,
			Value:     slices.Clone(r.Value),
			Decoded:   dec,
		})
	})
}

// segmentEvents groups the segment records about user partition tp by segment id, in the order
// Kafka published them.
func segmentEvents(records []metadataRecord, tp proto.TopicIDPartition) map[proto.UUID][]metadataRecord {
	out := make(map[proto.UUID][]metadataRecord)
	for _, r := range records {
		var id proto.SegmentID
		switch d := r.Decoded.(type) {
		case *proto.SegmentMetadata:
			id = d.SegmentID
		case *proto.SegmentMetadataUpdate:
			id = d.SegmentID
		default:
			continue
		}
		if id.TopicIDPartition == tp {
			out[id.ID] = append(out[id.ID], r)
		}
	}
	return out
}

// segmentState is the state a segment's last record gave it.
func segmentState(events []metadataRecord) proto.SegmentState {
	switch d := events[len(events)-1].Decoded.(type) {
	case *proto.SegmentMetadata:
		return d.State
	case *proto.SegmentMetadataUpdate:
		return d.State
	}
	panic("segmentEvents holds only segment records")
}

// tieredSegment is one segment in Kafka's LocalTieredStorage, as the files Kafka wrote show it.
type tieredSegment struct {
	ID          proto.UUID // from the file name
	StartOffset int64      // from the file name
	LogFile     string

	// Read from the .log file by readLogFile, once the copy has finished.
	Size           int64
	FirstOffset    int64 // base offset of the first batch
	EndOffset      int64 // last offset of the last batch
	MaxTimestampMs int64
	Epochs         []proto.EpochEntry // each leader epoch and the first offset written in it
}

// tieredPartitionDir is where LocalTieredStorage keeps a partition's segments:
// <rsm.config.dir>/kafka-tiered-storage/<topic>-<partition>-<topic id>.
func tieredPartitionDir(t testing.TB, tp proto.TopicIDPartition) string {
	t.Helper()
	return filepath.Join(requireEnv(t, envTieredDir), "kafka-tiered-storage",
		fmt.Sprintf("%s-%d-%s", tp.Topic, tp.Partition, tp.TopicID))
}

// listTieredSegments lists the segments whose .log file is in dir, by start offset. A segment
// whose copy is under way may be listed before its files are complete.
func listTieredSegments(t testing.TB, dir string) []tieredSegment {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("list tiered segments: %v", err)
	}
	var segs []tieredSegment
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), ".log")
		if !ok {
			continue
		}
		// <20-digit start offset>-<segment id, 22 characters of base64, which may hold '-'>
		offset, id, ok := strings.Cut(base, "-")
		if !ok || len(offset) != 20 {
			t.Fatalf("tiered segment file %s: want <20-digit offset>-<segment id>.log", e.Name())
		}
		start, err := strconv.ParseInt(offset, 10, 64)
		if err != nil {
			t.Fatalf("tiered segment file %s: %v", e.Name(), err)
		}
		uuid, err := proto.ParseUUID(id)
		if err != nil {
			t.Fatalf("tiered segment file %s: %v", e.Name(), err)
		}
		segs = append(segs, tieredSegment{ID: uuid, StartOffset: start, LogFile: filepath.Join(dir, e.Name())})
	}
	slices.SortFunc(segs, func(a, b tieredSegment) int { return cmp.Compare(a.StartOffset, b.StartOffset) })
	return segs
}

// readLogFile reads the record batches of s's .log file (Kafka's on-disk format, magic 2) for
// what Kafka's metadata must say about the segment.
func (s *tieredSegment) readLogFile(t testing.TB) {
	t.Helper()
	b, err := os.ReadFile(s.LogFile)
	if err != nil {
		t.Fatalf("read tiered segment: %v", err)
	}
	s.Size = int64(len(b))
	s.MaxTimestampMs = -1
	s.Epochs = nil
	// Batch header: baseOffset int64, batchLength int32, partitionLeaderEpoch int32, magic int8,
	// crc int32, attributes int16, lastOffsetDelta int32, baseTimestamp int64, maxTimestamp
	// int64, ...; batchLength counts the bytes after itself.
	const headerLen = 43
	for pos, n := 0, 0; pos < len(b); n++ {
		if len(b)-pos < headerLen {
			t.Fatalf("%s: batch %d at byte %d: truncated header", s.LogFile, n, pos)
		}
		h := b[pos:]
		base := int64(binary.BigEndian.Uint64(h[0:]))
		size := 12 + int(binary.BigEndian.Uint32(h[8:]))
		epoch := int32(binary.BigEndian.Uint32(h[12:]))
		if magic := h[16]; magic != 2 {
			t.Fatalf("%s: batch %d at byte %d: magic %d, want 2", s.LogFile, n, pos, magic)
		}
		last := base + int64(int32(binary.BigEndian.Uint32(h[23:])))
		maxTs := int64(binary.BigEndian.Uint64(h[35:]))
		if size < headerLen || pos+size > len(b) {
			t.Fatalf("%s: batch %d at byte %d: length %d overruns the file of %d bytes", s.LogFile, n, pos, size, len(b))
		}
		if n == 0 {
			s.FirstOffset = base
		}
		s.EndOffset = last
		s.MaxTimestampMs = max(s.MaxTimestampMs, maxTs)
		if len(s.Epochs) == 0 || s.Epochs[len(s.Epochs)-1].Epoch != epoch {
			s.Epochs = append(s.Epochs, proto.EpochEntry{Epoch: epoch, StartOffset: base})
		}
		pos += size
	}
}

// tieredTopic is a topic partition Kafka has tiered, and everything Kafka's metadata manager
// had published when tierSomeSegments returned.
type tieredTopic struct {
	TP       proto.TopicIDPartition // partition 0 of the topic
	BrokerID int32                  // the partition's leader, which tiered it
	Dir      string                 // the partition's LocalTieredStorage folder
	Segments []tieredSegment        // by start offset, each read from its .log file
	Log      *metadataLog           // __remote_log_metadata read so far; read on with waitFor
}

// minTieredSegments is how many segments tierSomeSegments has Kafka tier at least.
const minTieredSegments = 3

// tierSomeSegments creates a one-partition topic with remote storage enabled and 1 MiB
// segments, produces about 5 MiB to it, and waits until Kafka has tiered every record produced
// into LocalTieredStorage and nothing is being tiered any more: at least minTieredSegments .log
// files are there, __remote_log_metadata holds a COPY_SEGMENT_STARTED and a
// COPY_SEGMENT_FINISHED for each of them and for no other segment, and the last of them ends at
// the last offset produced. The topic is deleted when the test ends.
func tierSomeSegments(t *testing.T) *tieredTopic {
	t.Helper()
	adm := kafkaAdmin(t)
	topic := uniqueTopic(t)
	topicID := createTopic(t, adm, topic, tieredTopicConfigs())
	tp := proto.TopicIDPartition{TopicID: proto.UUID(topicID), Topic: topic, Partition: 0}

	brokerID := topicDetail(t, adm, topic).Partitions[0].Leader

	// Uncompressed 4 KiB values in batches of at most 128 KiB: every 1 MiB segment holds
	// several batches, and 5 MiB close at least four segments.
	producer := kafkaClient(t,
		kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(128<<10),
	)
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := testContext(t, 2*time.Minute)
	var lastOffset int64
	for range 20 {
		recs := make([]*kgo.Record, 64)
		for i := range recs {
			v := make([]byte, 4<<10)
			for j := 0; j < len(v); j += 8 {
				binary.LittleEndian.PutUint64(v[j:], rng.Uint64())
			}
			recs[i] = &kgo.Record{Value: v}
		}
		res := producer.ProduceSync(ctx, recs...)
		if err := res.FirstErr(); err != nil {
			t.Fatalf("produce to %s: %v", topic, err)
		}
		for _, r := range res {
			lastOffset = max(lastOffset, r.Record.Offset)
		}
	}

	dir := tieredPartitionDir(t, tp)
	log := newMetadataLog(t)
	var segs []tieredSegment
	log.waitFor(fmt.Sprintf("Kafka tiering every record of %s into %s", topic, dir), 3*time.Minute,
		func() bool {
			// Kafka tiers the closed segments, then, since local.retention.ms is a second, also
			// rolls the active segment once it is a second old and tiers it: until the last
			// offset produced is in a tiered segment, another segment is still to come.
			segs = listTieredSegments(t, dir)
			events := segmentEvents(log.Records, tp)
			if len(segs) < minTieredSegments || len(events) != len(segs) {
				return false
			}
			var end int64 = -1
			for _, s := range segs {
				ev, ok := events[s.ID]
				if !ok || segmentState(ev) != proto.CopySegmentFinished {
					return false
				}
				if m, ok := ev[0].Decoded.(*proto.SegmentMetadata); ok {
					end = max(end, m.EndOffset)
				}
			}
			return end == lastOffset
		})
	for i := range segs {
		segs[i].readLogFile(t)
	}
	return &tieredTopic{TP: tp, BrokerID: brokerID, Dir: dir, Segments: segs, Log: log}
}

// TestStrataReadsKafka is issue 5's test 3: Kafka tiers segments with its own metadata manager
// and LocalTieredStorage, and Strata reads __remote_log_metadata to exactly what Kafka wrote:
// every record decodes, sits on the partition Strata's partitioner picks, and the segments it
// lists are those whose files Kafka wrote. Then Kafka deletes the topic and Strata sees each
// segment deleted. At the end, Kafka's own RemoteLogMetadataFormatter prints every record of
// that metadata partition exactly as Strata's FormatKafka does.
func TestStrataReadsKafka(t *testing.T) {
	// Everything the test needs, checked before it spends time on Kafka.
	requireTool(t, "java")
	requireEnv(t, envKafkaLibs)
	requireEnv(t, envTieredDir)
	tt := tierSomeSegments(t)
	tp, log := tt.TP, tt.Log

	adm := kafkaAdmin(t)
	numPartitions := int32(len(topicDetail(t, adm, proto.TopicName).Partitions))
	metaPartition := proto.MetadataPartition(tp, numPartitions)

	// Every event about tp sits on the metadata partition Strata's partitioner computes.
	checkPlacement := func() {
		t.Helper()
		for _, r := range log.Records {
			if u, ok := proto.UserPartition(r.Decoded); ok && u == tp && r.Partition != metaPartition {
				t.Errorf("%s at %s-%d@%d, want partition %d of %d", r.Decoded.TypeName(), proto.TopicName,
					r.Partition, r.Offset, metaPartition, numPartitions)
			}
		}
	}
	checkPlacement()

	// The segments Strata lists, folded from the records: exactly the files, field by field.
	events := segmentEvents(log.Records, tp)
	if len(events) != len(tt.Segments) {
		t.Fatalf("records name %d segments of %s, LocalTieredStorage holds %d", len(events), tp, len(tt.Segments))
	}
	for _, s := range tt.Segments {
		ev := events[s.ID]
		if ev == nil {
			t.Errorf("segment %s (offset %d) has files but no record", s.ID, s.StartOffset)
			continue
		}
		checkSegment(t, tt, s, ev)
	}

	// Kafka deletes a deleted topic's tiered segments itself (docs/KAFKA_SEMANTICS.md section 7):
	// DELETE_SEGMENT_STARTED, the files removed, DELETE_SEGMENT_FINISHED, for each segment.
	resp, err := adm.DeleteTopics(testContext(t, 30*time.Second), tp.Topic)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("delete topic %s: %v", tp.Topic, err)
	}
	log.waitFor(fmt.Sprintf("Kafka deleting the tiered segments of deleted topic %s", tp.Topic), 3*time.Minute,
		func() bool {
			events := segmentEvents(log.Records, tp)
			for _, s := range tt.Segments {
				if segmentState(events[s.ID]) != proto.DeleteSegmentFinished {
					return false
				}
			}
			return len(listTieredSegments(t, tt.Dir)) == 0
		})
	checkPlacement()
	events = segmentEvents(log.Records, tp)
	want := []proto.SegmentState{proto.CopySegmentStarted, proto.CopySegmentFinished,
		proto.DeleteSegmentStarted, proto.DeleteSegmentFinished}
	for _, s := range tt.Segments {
		var got []proto.SegmentState
		for _, r := range events[s.ID] {
			switch d := r.Decoded.(type) {
			case *proto.SegmentMetadata:
				got = append(got, d.State)
			case *proto.SegmentMetadataUpdate:
				got = append(got, d.State)
				if d.BrokerID != tt.BrokerID {
					t.Errorf("segment %s: %s from broker %d, want %d", s.ID, d.State, d.BrokerID, tt.BrokerID)
				}
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("segment %s went through %v, want %v", s.ID, got, want)
		}
	}

	// Kafka's formatter and Strata print every record of the metadata partition alike.
	var records []metadataRecord
	for _, r := range log.Records {
		if r.Partition == metaPartition {
			records = append(records, r)
		}
	}
	lines := kafkaFormatterLines(t, metaPartition, len(records))
	for i, r := range records {
		if want := proto.FormatKafka(r.Partition, r.Offset, r.Decoded); lines[i] != want {
			t.Errorf("Kafka's formatter printed\n  %s\nStrata prints\n  %s", lines[i], want)
		}
	}
}

// checkSegment compares the records Kafka published for segment s with its files.
func checkSegment(t *testing.T, tt *tieredTopic, s tieredSegment, events []metadataRecord) {
	t.Helper()
	if len(events) != 2 {
		t.Errorf("segment %s: %d records, want COPY_SEGMENT_STARTED and COPY_SEGMENT_FINISHED", s.ID, len(events))
		return
	}
	m, ok := events[0].Decoded.(*proto.SegmentMetadata)
	if !ok {
		t.Errorf("segment %s: first record is %s, want RemoteLogSegmentMetadata", s.ID, events[0].Decoded.TypeName())
		return
	}
	u, ok := events[1].Decoded.(*proto.SegmentMetadataUpdate)
	if !ok || u.State != proto.CopySegmentFinished {
		t.Errorf("segment %s: second record is %s, want an update to COPY_SEGMENT_FINISHED", s.ID, events[1].Decoded)
	}
	if s.FirstOffset != s.StartOffset {
		t.Errorf("segment %s: file name says start offset %d, its first batch %d", s.ID, s.StartOffset, s.FirstOffset)
	}
	want := proto.SegmentMetadata{
		SegmentID:          proto.SegmentID{TopicIDPartition: tt.TP, ID: s.ID},
		StartOffset:        s.StartOffset,
		EndOffset:          s.EndOffset,
		BrokerID:           tt.BrokerID,
		MaxTimestampMs:     s.MaxTimestampMs,
		LeaderEpochs:       s.Epochs,
		SegmentSizeInBytes: int32(s.Size),
		State:              proto.CopySegmentStarted,
		TxnIndexEmpty:      true, // nothing was produced in a transaction
	}
	if m.SegmentID != want.SegmentID || m.StartOffset != want.StartOffset || m.EndOffset != want.EndOffset ||
		m.BrokerID != want.BrokerID || m.MaxTimestampMs != want.MaxTimestampMs ||
		!slices.Equal(m.LeaderEpochs, want.LeaderEpochs) || m.SegmentSizeInBytes != want.SegmentSizeInBytes ||
		m.State != want.State || m.TxnIndexEmpty != want.TxnIndexEmpty {
		t.Errorf("segment %s: Kafka published\n  %s\nits files say\n  %s", s.ID, m, &want)
	}
	// Strata re-encodes what it decoded to the bytes Kafka wrote.
	for _, r := range events {
		b, err := proto.Encode(r.Decoded)
		if err != nil {
			t.Errorf("re-encode %s: %v", r.Decoded, err)
		} else if !slices.Equal(b, r.Value) {
			t.Errorf("re-encode %s:\n  got  %x\n  want %x", r.Decoded, b, r.Value)
		}
	}
}
