package proto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

var (
	topicFoo = mustUUID("Bp9TDduJRGa9Q5rlvCJOxg")
	segA     = mustUUID("AAECAwQFBgcICQoLDA0ODw")
)

func mustUUID(s string) UUID {
	u, err := ParseUUID(s)
	if err != nil {
		panic(err)
	}
	return u
}

func tpFoo(p int32) TopicIDPartition {
	return TopicIDPartition{TopicID: topicFoo, Topic: "foo", Partition: p}
}

// goldenRecords are the records whose bytes are pinned in testdata/golden, one file each.
func goldenRecords() map[string]Record {
	return map[string]Record{
		"partition_delete_marked": &PartitionDeleteMetadata{TopicIDPartition: tpFoo(0), BrokerID: 0, EventTimestampMs: 123, State: DeletePartitionMarked},
		"segment_started": &SegmentMetadata{
			SegmentID: SegmentID{tpFoo(0), segA}, StartOffset: 0, EndOffset: 100, BrokerID: 1, MaxTimestampMs: -1, EventTimestampMs: 123,
			LeaderEpochs: []EpochEntry{{0, 0}, {1, 20}, {2, 80}}, SegmentSizeInBytes: 1024, CustomMetadata: make([]byte, 10),
			State: CopySegmentStarted, TxnIndexEmpty: true,
		},
		"segment_started_null_custom_txn_false": &SegmentMetadata{
			SegmentID: SegmentID{tpFoo(3), segA}, StartOffset: 101, EndOffset: 200, BrokerID: 2, MaxTimestampMs: 1700000000000, EventTimestampMs: 1700000000001,
			LeaderEpochs: []EpochEntry{{2, 101}}, SegmentSizeInBytes: 4096, State: CopySegmentStarted,
		},
		"segment_update_finished":        &SegmentMetadataUpdate{SegmentID: SegmentID{tpFoo(0), segA}, BrokerID: 1, EventTimestampMs: 456, CustomMetadata: []byte{}, State: CopySegmentFinished},
		"segment_update_delete_finished": &SegmentMetadataUpdate{SegmentID: SegmentID{tpFoo(0), segA}, BrokerID: 1, EventTimestampMs: 789, State: DeleteSegmentFinished},
		"snapshot": &SegmentMetadataSnapshot{SegmentUUID: segA, StartOffset: 5, EndOffset: 9, BrokerID: 3, MaxTimestampMs: 7, EventTimestampMs: 8,
			LeaderEpochs: []EpochEntry{{4, 5}}, SegmentSizeInBytes: 10, CustomMetadata: []byte("meta"), State: DeleteSegmentStarted, TxnIndexEmpty: true},
		"unknown_tags": &SegmentMetadata{
			SegmentID: SegmentID{TopicIDPartition{topicFoo, "tópico-ü", 7}, segA}, StartOffset: 1, EndOffset: 2, LeaderEpochs: []EpochEntry{{0, 1}, {1, 2}},
			State: CopySegmentStarted, TxnIndexEmpty: true,
			Unknown: &UnknownTags{
				Record:           []TaggedField{{Tag: 5, Data: []byte{0xaa}}, {Tag: 300, Data: []byte{}}},
				SegmentID:        []TaggedField{{Tag: 1, Data: []byte{1, 2}}},
				TopicIDPartition: []TaggedField{{Tag: 0, Data: []byte{9}}},
				Epochs:           [][]TaggedField{nil, {{Tag: 2, Data: []byte{3}}}},
			},
		},
	}
}

func TestGoldenBytes(t *testing.T) {
	for name, r := range goldenRecords() {
		t.Run(name, func(t *testing.T) {
			got, err := Encode(r)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "golden", name+".hex")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(hex.EncodeToString(got)+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want := readHex(t, path)
			if !bytes.Equal(got, want) {
				t.Fatalf("encoding differs from %s\n got %x\nwant %x", path, got, want)
			}
			back, err := Decode(want)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, r) {
				t.Fatalf("decode(golden) = %#v, want %#v", back, r)
			}
		})
	}
}

func readHex(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var clean strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		clean.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(clean.String())
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

// TestDerivedExample pins the 42-byte example of docs/KAFKA_SEMANTICS.md section 2, whose bytes were
// laid out field by field from Kafka's schema, independently of this encoder.
func TestDerivedExample(t *testing.T) {
	want := readHex(t, filepath.Join("testdata", "derived_partition_delete.hex"))
	if len(want) != 42 {
		t.Fatalf("vector has %d bytes, want 42", len(want))
	}
	r := &PartitionDeleteMetadata{TopicIDPartition: tpFoo(0), BrokerID: 0, EventTimestampMs: 123, State: DeletePartitionMarked}
	got, err := Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %x\nwant %x", got, want)
	}
	if topicFoo.Hex() != "069f530d-db89-4466-bd43-9ae5bc224ec6" {
		t.Fatalf("topic id hex = %s", topicFoo.Hex())
	}
}

// TestHandBuiltSegmentRecord checks a segment record against bytes assembled here from the
// schema's field order, not from the encoder.
func TestHandBuiltSegmentRecord(t *testing.T) {
	var b []byte
	b = append(b, 0x01, 0x00, 0x00)                               // frame version 1, apiKey 0, version 0
	b = append(b, 0x04, 'f', 'o', 'o')                            // Name
	b = append(b, topicFoo[:]...)                                 // Id
	b = append(b, 0, 0, 0, 0, 0x00)                               // Partition 0, TopicIdPartition tags
	b = append(b, segA[:]...)                                     // segment Id
	b = append(b, 0x00)                                           // RemoteLogSegmentId tags
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)                         // StartOffset 0
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 100)                       // EndOffset 100
	b = append(b, 0, 0, 0, 1)                                     // BrokerId 1
	b = append(b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff) // MaxTimestampMs -1
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 123)                       // EventTimestampMs 123
	b = append(b, 0x04)                                           // 3 epochs
	for _, e := range [][2]byte{{0, 0}, {1, 20}, {2, 80}} {
		b = append(b, 0, 0, 0, e[0], 0, 0, 0, 0, 0, 0, 0, e[1], 0x00)
	}
	b = append(b, 0, 0, 4, 0) // SegmentSizeInBytes 1024
	b = append(b, 0x0b)       // CustomMetadata: 10 bytes
	b = append(b, make([]byte, 10)...)
	b = append(b, 0x00)                   // COPY_SEGMENT_STARTED
	b = append(b, 0x01, 0x00, 0x01, 0x01) // tags: TxnIndexEmpty=true
	got, err := Encode(goldenRecords()["segment_started"])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, b) {
		t.Fatalf("got  %x\nwant %x", got, b)
	}
}

func TestRoundTripEdges(t *testing.T) {
	many := make([]EpochEntry, 1000)
	for i := range many {
		many[i] = EpochEntry{Epoch: int32(i * 3), StartOffset: int64(i) * 1000}
	}
	cases := map[string]Record{
		"null custom":        &SegmentMetadataUpdate{SegmentID: SegmentID{tpFoo(1), segA}, State: CopySegmentFinished},
		"empty custom":       &SegmentMetadataUpdate{SegmentID: SegmentID{tpFoo(1), segA}, CustomMetadata: []byte{}, State: CopySegmentFinished},
		"txn false":          &SegmentMetadata{SegmentID: SegmentID{tpFoo(1), segA}, LeaderEpochs: []EpochEntry{{0, 0}}, State: CopySegmentStarted},
		"txn true":           &SegmentMetadata{SegmentID: SegmentID{tpFoo(1), segA}, LeaderEpochs: []EpochEntry{{0, 0}}, State: CopySegmentStarted, TxnIndexEmpty: true},
		"many epochs":        &SegmentMetadata{SegmentID: SegmentID{tpFoo(1), segA}, LeaderEpochs: many, EndOffset: 1 << 40, State: CopySegmentStarted},
		"non-ascii topic":    &PartitionDeleteMetadata{TopicIDPartition: TopicIDPartition{topicFoo, "日本語-トピック", 1 << 30}, State: DeletePartitionFinished},
		"empty topic":        &PartitionDeleteMetadata{TopicIDPartition: TopicIDPartition{topicFoo, "", 0}, State: DeletePartitionStarted},
		"long topic":         &PartitionDeleteMetadata{TopicIDPartition: TopicIDPartition{topicFoo, strings.Repeat("x", 300), 0}, State: DeletePartitionStarted},
		"big custom":         &SegmentMetadataUpdate{SegmentID: SegmentID{tpFoo(1), segA}, CustomMetadata: bytes.Repeat([]byte{7}, 70000), State: DeleteSegmentStarted},
		"negative values":    &SegmentMetadata{SegmentID: SegmentID{tpFoo(1), segA}, StartOffset: -5, EndOffset: -1, BrokerID: -1, MaxTimestampMs: -9, LeaderEpochs: []EpochEntry{{-1, -1}}, SegmentSizeInBytes: -1, State: CopySegmentStarted},
		"snapshot null meta": &SegmentMetadataSnapshot{SegmentUUID: segA, LeaderEpochs: []EpochEntry{}, State: CopySegmentFinished},
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := Encode(r)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, r) {
				t.Fatalf("round trip changed the record:\n got %#v\nwant %#v", got, r)
			}
			again, _ := Encode(got)
			if !bytes.Equal(again, b) {
				t.Fatal("re-encoding differs")
			}
		})
	}
}

func TestDecodeSortsEpochsAsKafka(t *testing.T) {
	r := &SegmentMetadata{SegmentID: SegmentID{tpFoo(0), segA}, LeaderEpochs: []EpochEntry{{0, 0}, {1, 10}, {2, 20}}, State: CopySegmentStarted}
	b, _ := Encode(r)
	// Swap the wire order of epochs 1 and 2 and repeat epoch 0: Kafka's TreeMap sorts them and
	// keeps the later value of a repeated key.
	i := bytes.Index(b, []byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 10, 0})
	j := bytes.Index(b, []byte{0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 20, 0})
	e1 := append([]byte(nil), b[i:i+13]...)
	copy(b[i:], b[j:j+13])
	copy(b[j:], e1)
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := []EpochEntry{{0, 0}, {1, 10}, {2, 20}}; !reflect.DeepEqual(got.(*SegmentMetadata).LeaderEpochs, want) {
		t.Fatalf("epochs = %v, want %v", got.(*SegmentMetadata).LeaderEpochs, want)
	}
	if n := normalizeEpochs([]EpochEntry{{3, 1}, {0, 5}, {3, 2}}); !reflect.DeepEqual(n, []EpochEntry{{0, 5}, {3, 2}}) {
		t.Fatalf("normalizeEpochs = %v", n)
	}
}

func TestEncodeRejects(t *testing.T) {
	cases := map[string]Record{
		"bad state":        &SegmentMetadataUpdate{State: 4},
		"bad delete state": &PartitionDeleteMetadata{State: -1},
		"epochs unordered": &SegmentMetadata{LeaderEpochs: []EpochEntry{{2, 0}, {1, 0}}},
		"epochs repeated":  &SegmentMetadata{LeaderEpochs: []EpochEntry{{1, 0}, {1, 5}}},
		"topic too long":   &PartitionDeleteMetadata{TopicIDPartition: TopicIDPartition{Topic: strings.Repeat("x", 40000)}},
		"tag 0 clash":      &SegmentMetadata{Unknown: &UnknownTags{Record: []TaggedField{{Tag: 0}}}},
		"epoch tags extra": &SegmentMetadata{Unknown: &UnknownTags{Epochs: [][]TaggedField{nil}}},
	}
	for name, r := range cases {
		if _, err := Encode(r); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("%s: err = %v, want ErrInvalidRecord", name, err)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	valid, _ := Encode(goldenRecords()["segment_started"])
	del, _ := Encode(goldenRecords()["partition_delete_marked"])
	withByte := func(b []byte, i int, v byte) []byte { c := bytes.Clone(b); c[i] = v; return c }
	cases := []struct {
		name   string
		in     []byte
		want   error
		offset int
		field  string
	}{
		{"empty", nil, ErrTruncated, 0, "FrameVersion"},
		{"frame version 0", []byte{0, 0, 0}, ErrUnknownFrameVersion, 0, "FrameVersion"},
		{"frame version 2", []byte{2, 0, 0}, ErrUnknownFrameVersion, 0, "FrameVersion"},
		{"unknown apiKey", []byte{1, 4, 0}, ErrUnknownAPIKey, 1, "ApiKey"},
		{"apiKey over int16", []byte{1, 0x80, 0x80, 0x02, 0}, ErrUnknownAPIKey, 1, "ApiKey"},
		{"unknown version", []byte{1, 2, 1}, ErrUnknownVersion, 2, "Version"},
		{"bad varint", []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff}, ErrBadVarint, 1, "ApiKey"},
		{"varint over 32 bits", []byte{1, 0xff, 0xff, 0xff, 0xff, 0x1f}, ErrBadVarint, 1, "ApiKey"},
		{"trailing bytes", append(bytes.Clone(del), 0), ErrTrailingBytes, 42, "(end)"},
		{"truncated", del[:30], ErrTruncated, 28, "BrokerId"},
		{"truncated in uuid", del[:10], ErrTruncated, 7, "TopicIdPartition.Id"},
		{"name length overflow", withByte(del, 3, 0x7f), ErrLengthOverflow, 3, "TopicIdPartition.Name"},
		{"null name", withByte(del, 3, 0), ErrInvalidField, 3, "TopicIdPartition.Name"},
		{"invalid delete state", withByte(del, 40, 3), ErrInvalidState, 40, "RemotePartitionDeleteState"},
		{"invalid segment state", withByte(valid, len(valid)-5, 9), ErrInvalidState, len(valid) - 5, "RemoteLogSegmentState"},
		{"epoch count overflow", withByte(valid, 81, 0x7f), ErrLengthOverflow, 81, "SegmentLeaderEpochs"},
		{"txn tag size 0", withByte(valid, len(valid)-2, 0)[:len(valid)-1], ErrInvalidField, len(valid) - 3, "TxnIndexEmpty"},
		{"tag size past end", withByte(valid, len(valid)-2, 2), ErrLengthOverflow, len(valid) - 2, "_tagged"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := Decode(c.in)
			if r != nil {
				t.Fatalf("got a record %v with error %v", r, err)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want *DecodeError", err)
			}
			if !errors.Is(err, c.want) || de.Offset != c.offset || de.Field != c.field {
				t.Fatalf("err = %v (field %q, byte %d), want %v at field %q byte %d", err, de.Field, de.Offset, c.want, c.field, c.offset)
			}
			if !strings.Contains(err.Error(), "at byte") {
				t.Fatalf("message does not say where: %v", err)
			}
		})
	}
}

// TestDecodeEveryTruncation cuts every valid golden record at every length: each prefix must
// fail cleanly, never panic.
func TestDecodeEveryTruncation(t *testing.T) {
	for name, r := range goldenRecords() {
		b, _ := Encode(r)
		for n := 0; n < len(b); n++ {
			if _, err := Decode(b[:n]); err == nil {
				t.Fatalf("%s: prefix of %d/%d bytes decoded", name, n, len(b))
			}
		}
	}
}

func TestDecodeDoesNotRetainInput(t *testing.T) {
	b, _ := Encode(goldenRecords()["unknown_tags"])
	r, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0xee
	}
	if !reflect.DeepEqual(r, goldenRecords()["unknown_tags"]) {
		t.Fatal("decoded record changed when the input buffer was overwritten")
	}
}

func FuzzDecode(f *testing.F) {
	for _, r := range goldenRecords() {
		b, _ := Encode(r)
		f.Add(b)
	}
	f.Add([]byte{1, 0, 0})
	var dec Decoder // shared by every input, as a reader of the topic shares it
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := Decode(in)
		rd, errd := dec.Decode(in)
		if fmt.Sprint(err) != fmt.Sprint(errd) || !reflect.DeepEqual(r, rd) {
			t.Fatalf("Decoder.Decode: %v, %v; Decode: %v, %v", rd, errd, r, err)
		}
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Offset < 0 || de.Offset > len(in) {
				t.Fatalf("bad error %v", err)
			}
			return
		}
		// Whatever decodes must re-encode, and decode again to the same record.
		b, err := Encode(r)
		if err != nil {
			t.Fatalf("decoded %v but cannot encode it: %v", r, err)
		}
		r2, err := Decode(b)
		if err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("re-encoded record does not decode to itself: %v", err)
		}
		_ = r.String()
		if _, err := MarshalRecordJSON(r); err != nil {
			t.Fatal(err)
		}
	})
}

// TestDecoderSharesNames: the records of one topic decoded by one Decoder share one string
// for its name, and the Decoder stops remembering names at its bound.
func TestDecoderSharesNames(t *testing.T) {
	var dec Decoder
	name := func(i int) string {
		r := benchRecord()
		r.SegmentID.Topic = fmt.Sprintf("topic-%d", i)
		b, err := Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dec.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		return got.(*SegmentMetadata).SegmentID.Topic
	}
	a, b := name(1), name(1)
	if a != "topic-1" || unsafe.StringData(a) != unsafe.StringData(b) {
		t.Fatalf("two records of topic-1 gave %q and %q, not one string", a, b)
	}
	for i := range decoderNames + 10 {
		name(i)
	}
	if len(dec.names) != decoderNames {
		t.Fatalf("the decoder holds %d names, want its bound %d", len(dec.names), decoderNames)
	}
	if x := name(decoderNames + 5); x != fmt.Sprintf("topic-%d", decoderNames+5) {
		t.Fatalf("a name past the bound decoded as %q", x)
	}
}

var sinkRecord Record

func benchRecord() *SegmentMetadata {
	return &SegmentMetadata{
		SegmentID: SegmentID{TopicIDPartition{topicFoo, "orders-eu-west", 17}, segA}, StartOffset: 123456789, EndOffset: 123556789,
		BrokerID: 3, MaxTimestampMs: 1700000000000, EventTimestampMs: 1700000000500,
		LeaderEpochs: []EpochEntry{{4, 123456789}, {5, 123500000}}, SegmentSizeInBytes: 1 << 30,
		CustomMetadata: []byte("s3://bucket/prefix"), State: CopySegmentStarted, TxnIndexEmpty: true,
	}
}

func BenchmarkEncodeSegmentMetadata(b *testing.B) {
	r := benchRecord()
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = AppendEncode(buf[:0], r)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeSegmentMetadata(b *testing.B) {
	in, _ := Encode(benchRecord())
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := Decode(in)
		if err != nil {
			b.Fatal(err)
		}
		sinkRecord = r
	}
}
