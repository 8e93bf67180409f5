package workload

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/proto"
)

func params(events int64) Params {
	return Params{
		Brokers: "127.0.0.1:9092", MetadataPartitions: 50, Events: events,
		Lookups: 100, LookupWarmup: 10, LookupSeed: 42, PublishSegments: 20, PublishWarmup: 2,
	}
}

func TestNewLaysOutTheTopic(t *testing.T) {
	s, err := New(params(1_000_000))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(s.Partitions); got != Topics*PartitionsPerTopic {
		t.Fatalf("%d user partitions, want %d", got, Topics*PartitionsPerTopic)
	}
	if s.SegmentsPerPartition != 500 || s.Events() != 1_000_000 {
		t.Fatalf("%d segments per partition, %d events; want 500 and 1,000,000", s.SegmentsPerPartition, s.Events())
	}
	seen := map[proto.TopicIDPartition]bool{}
	mps := map[int32]bool{}
	for _, tp := range s.Partitions {
		if seen[tp] {
			t.Fatalf("%s appears twice", tp)
		}
		seen[tp] = true
		mps[proto.MetadataPartition(tp, s.MetadataPartitions)] = true
	}
	if len(mps) != 50 {
		t.Fatalf("user partitions map to %d metadata partitions, want all 50", len(mps))
	}
	if got := s.OffsetsPerPartition(); got != 500*SegmentSpan {
		t.Fatalf("OffsetsPerPartition = %d, want %d", got, 500*SegmentSpan)
	}
}

func TestNewRejectsEventCounts(t *testing.T) {
	for _, n := range []int64{0, -2000, 1000, 2001, 999_999} {
		if _, err := New(params(n)); err == nil {
			t.Errorf("New accepted %d events", n)
		}
	}
}

func TestSegmentLayout(t *testing.T) {
	s, err := New(params(20_000))
	if err != nil {
		t.Fatal(err)
	}
	tp := s.Partitions[7]
	md := s.NewSegment(tp, 3, 1234)
	if md.StartOffset != 3000 || md.EndOffset != 3999 || md.State != proto.CopySegmentStarted ||
		len(md.LeaderEpochs) != 1 || md.LeaderEpochs[0] != (proto.EpochEntry{Epoch: 0, StartOffset: 3000}) ||
		md.SegmentID.TopicIDPartition != tp {
		t.Fatalf("segment 3: %+v", md)
	}
	if u := Finished(md, 1235); u.SegmentID != md.SegmentID || u.State != proto.CopySegmentFinished {
		t.Fatalf("finished: %+v", u)
	}
	for off, want := range map[int64]int64{0: 0, 999: 0, 1000: 1000, 3999: 3000} {
		if got := s.SegmentStart(off); got != want {
			t.Errorf("SegmentStart(%d) = %d, want %d", off, got, want)
		}
	}
	for _, r := range []proto.Record{md, Finished(md, 1235)} {
		if _, err := proto.Encode(r); err != nil {
			t.Errorf("encoding %v: %v", r, err)
		}
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	s, err := New(params(20_000))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Write(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if got.Brokers != s.Brokers || got.MetadataPartitions != s.MetadataPartitions ||
		got.SegmentsPerPartition != s.SegmentsPerPartition || got.SegmentSpan != s.SegmentSpan ||
		got.Lookups != s.Lookups || got.LookupWarmup != s.LookupWarmup || got.LookupSeed != s.LookupSeed ||
		got.PublishSegments != s.PublishSegments || got.PublishWarmup != s.PublishWarmup {
		t.Fatalf("read %+v, wrote %+v", got, s)
	}
	if len(got.Partitions) != len(s.Partitions) {
		t.Fatalf("read %d partitions, wrote %d", len(got.Partitions), len(s.Partitions))
	}
	for i := range s.Partitions {
		if got.Partitions[i] != s.Partitions[i] {
			t.Fatalf("partition %d: read %s, wrote %s", i, got.Partitions[i], s.Partitions[i])
		}
	}
}

func TestReadRejects(t *testing.T) {
	s, err := New(params(20_000))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Write(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.String()
	for name, tc := range map[string]struct{ text, want string }{
		"unknown setting":   {good + "colour blue\n", "unknown setting colour"},
		"repeated setting":  {good + "lookups 5\n", "lookups set twice"},
		"missing setting":   {strings.Replace(good, "lookups 100\n", "", 1), "missing setting lookups"},
		"not a number":      {strings.Replace(good, "lookups 100\n", "lookups many\n", 1), "lookups"},
		"events disagree":   {strings.Replace(good, "events 20000\n", "events 40000\n", 1), "events 40000"},
		"bad partition":     {good + "partition nope bench-000 0\n", "topic id"},
		"short partition":   {good + "partition AAAAAAAAAAAAAAAAAAAAAA bench\n", "want TOPIC_ID TOPIC PARTITION"},
		"three-word line":   {good + "a b c\n", "want \"key value\""},
		"no lookups wanted": {strings.Replace(good, "lookups 100\n", "lookups 0\n", 1), "lookups must be positive"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Read(strings.NewReader(tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Read: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// The Java side (LookupKeys.java) must draw the same numbers: these are SplitMix64's reference
// outputs for seed 0.
func TestLookupKeysAreSplitMix64(t *testing.T) {
	k := NewLookupKeys(0)
	for i, want := range []uint64{0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F} {
		if got := k.Next(); got != want {
			t.Fatalf("output %d: %#x, want %#x", i, got, want)
		}
	}
}

func TestLookupKeysStayInRange(t *testing.T) {
	s, err := New(params(20_000))
	if err != nil {
		t.Fatal(err)
	}
	k := NewLookupKeys(s.LookupSeed)
	var sum int64
	for i := range s.LookupWarmup + s.Lookups {
		key := s.NextKey(k)
		if key.Partition < 0 || key.Partition >= len(s.Partitions) || key.Offset < 0 || key.Offset >= s.OffsetsPerPartition() {
			t.Fatalf("key %d out of range: %+v", i, key)
		}
		if i >= s.LookupWarmup {
			sum += s.SegmentStart(key.Offset)
		}
	}
	if got := s.LookupChecksum(); got != sum {
		t.Fatalf("LookupChecksum = %d, the keys sum to %d", got, sum)
	}
}

// Consumer keys read one segment of one partition in ConsumerSteps steps from its start, the
// segment and partition drawn as NextKey draws a key; the checksum sums what they must find.
func TestConsumerKeysReadThroughSegments(t *testing.T) {
	s, err := New(params(20_000))
	if err != nil {
		t.Fatal(err)
	}
	c, k := s.NewConsumerKeys(s.LookupSeed), NewLookupKeys(s.LookupSeed)
	var sum int64
	for i := range s.LookupWarmup + s.Lookups {
		key := c.Next()
		step := int64(i % ConsumerSteps)
		if step == 0 {
			drawn := s.NextKey(k)
			if key.Partition != drawn.Partition || key.Offset != s.SegmentStart(drawn.Offset) {
				t.Fatalf("key %d: %+v, want partition %d from the start of the segment of %d", i, key, drawn.Partition, drawn.Offset)
			}
		}
		if want := s.SegmentStart(key.Offset) + step*s.SegmentSpan/ConsumerSteps; key.Offset != want {
			t.Fatalf("key %d (step %d): offset %d, want %d", i, step, key.Offset, want)
		}
		if i >= s.LookupWarmup {
			sum += s.SegmentStart(key.Offset)
		}
	}
	if got := s.ConsumerChecksum(); got != sum {
		t.Fatalf("ConsumerChecksum = %d, the keys sum to %d", got, sum)
	}
}

// Fill writes every event once, decodable, to its user partition's metadata partition, each
// segment's start before its finish.
func TestFill(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(5, "meta"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := params(4_000)
	p.MetadataPartitions = 5
	s, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := s.Fill(ctx, prod, "meta"); err != nil {
		t.Fatal(err)
	}

	cons, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("meta"))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	started := map[proto.SegmentID]bool{}
	finished := map[proto.SegmentID]bool{}
	for n := int64(0); n < s.Events(); {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("after %d events: %v", n, err)
		}
		for _, rec := range fs.Records() {
			n++
			r, err := proto.Decode(rec.Value)
			if err != nil {
				t.Fatalf("partition %d offset %d: %v", rec.Partition, rec.Offset, err)
			}
			tp, _ := proto.UserPartition(r)
			if want := proto.MetadataPartition(tp, 5); rec.Partition != want {
				t.Fatalf("%s in metadata partition %d, want %d", tp, rec.Partition, want)
			}
			switch r := r.(type) {
			case *proto.SegmentMetadata:
				started[r.SegmentID] = true
			case *proto.SegmentMetadataUpdate:
				if !started[r.SegmentID] {
					t.Fatalf("%s finished before it started", r.SegmentID)
				}
				finished[r.SegmentID] = true
			default:
				t.Fatalf("unexpected record %v", r)
			}
		}
	}
	if want := int(s.Events() / 2); len(started) != want || len(finished) != want {
		t.Fatalf("%d segments started and %d finished, want %d", len(started), len(finished), want)
	}
}
