package proto

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestKafkaText pins each record's text to the form Kafka's toString prints, the first taken
// from Kafka's RemoteLogMetadataFormatterTest.
func TestKafkaText(t *testing.T) {
	g := goldenRecords()
	cases := map[string]string{
		"segment_started": "RemoteLogSegmentMetadata{remoteLogSegmentId=RemoteLogSegmentId{topicIdPartition=Bp9TDduJRGa9Q5rlvCJOxg:foo-0, id=AAECAwQFBgcICQoLDA0ODw}, " +
			"startOffset=0, endOffset=100, brokerId=1, maxTimestampMs=-1, eventTimestampMs=123, segmentLeaderEpochs={0=0, 1=20, 2=80}, segmentSizeInBytes=1024, " +
			"customMetadata=Optional[CustomMetadata{10 bytes}], state=COPY_SEGMENT_STARTED, txnIdxEmpty=true}",
		"segment_update_finished": "RemoteLogSegmentMetadataUpdate{remoteLogSegmentId=RemoteLogSegmentId{topicIdPartition=Bp9TDduJRGa9Q5rlvCJOxg:foo-0, id=AAECAwQFBgcICQoLDA0ODw}, " +
			"customMetadata=Optional[CustomMetadata{0 bytes}], state=COPY_SEGMENT_FINISHED, eventTimestampMs=456, brokerId=1}",
		"segment_update_delete_finished": "RemoteLogSegmentMetadataUpdate{remoteLogSegmentId=RemoteLogSegmentId{topicIdPartition=Bp9TDduJRGa9Q5rlvCJOxg:foo-0, id=AAECAwQFBgcICQoLDA0ODw}, " +
			"customMetadata=Optional.empty, state=DELETE_SEGMENT_FINISHED, eventTimestampMs=789, brokerId=1}",
		"partition_delete_marked": "RemotePartitionDeleteMetadata{topicPartition=Bp9TDduJRGa9Q5rlvCJOxg:foo-0, state=DELETE_PARTITION_MARKED, eventTimestampMs=123, brokerId=0}",
		"snapshot": "RemoteLogSegmentMetadataSnapshot{segmentId=AAECAwQFBgcICQoLDA0ODw, startOffset=5, endOffset=9, maxTimestampMs=7, segmentLeaderEpochs={4=5}, " +
			"segmentSizeInBytes=10, customMetadata=Optional[CustomMetadata{4 bytes}], state=DELETE_SEGMENT_STARTED, txnIdxEmpty=true}",
	}
	for name, want := range cases {
		if got := g[name].String(); got != want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
	if got := FormatKafka(3, 42, g["partition_delete_marked"]); got != "partition: 3, offset: 42, value: "+cases["partition_delete_marked"] {
		t.Errorf("FormatKafka = %s", got)
	}
}

func TestRecordJSON(t *testing.T) {
	g := goldenRecords()
	cases := map[string]string{
		"segment_started": `{"type":"RemoteLogSegmentMetadata","topic":"foo","topicId":"Bp9TDduJRGa9Q5rlvCJOxg","partition":0,"segmentId":"AAECAwQFBgcICQoLDA0ODw",` +
			`"startOffset":0,"endOffset":100,"brokerId":1,"maxTimestampMs":-1,"eventTimestampMs":123,"segmentLeaderEpochs":{"0":0,"1":20,"2":80},` +
			`"segmentSizeInBytes":1024,"customMetadata":"AAAAAAAAAAAAAA==","state":"COPY_SEGMENT_STARTED","txnIndexEmpty":true}`,
		"segment_update_finished": `{"type":"RemoteLogSegmentMetadataUpdate","topic":"foo","topicId":"Bp9TDduJRGa9Q5rlvCJOxg","partition":0,"segmentId":"AAECAwQFBgcICQoLDA0ODw",` +
			`"brokerId":1,"eventTimestampMs":456,"customMetadata":"","state":"COPY_SEGMENT_FINISHED"}`,
		"segment_update_delete_finished": `{"type":"RemoteLogSegmentMetadataUpdate","topic":"foo","topicId":"Bp9TDduJRGa9Q5rlvCJOxg","partition":0,"segmentId":"AAECAwQFBgcICQoLDA0ODw",` +
			`"brokerId":1,"eventTimestampMs":789,"customMetadata":null,"state":"DELETE_SEGMENT_FINISHED"}`,
		"partition_delete_marked": `{"type":"RemotePartitionDeleteMetadata","topic":"foo","topicId":"Bp9TDduJRGa9Q5rlvCJOxg","partition":0,"brokerId":0,"eventTimestampMs":123,"state":"DELETE_PARTITION_MARKED"}`,
		"snapshot": `{"type":"RemoteLogSegmentMetadataSnapshot","segmentId":"AAECAwQFBgcICQoLDA0ODw","startOffset":5,"endOffset":9,"brokerId":3,"maxTimestampMs":7,` +
			`"eventTimestampMs":8,"segmentLeaderEpochs":{"4":5},"segmentSizeInBytes":10,"customMetadata":"bWV0YQ==","state":"DELETE_SEGMENT_STARTED","txnIndexEmpty":true}`,
	}
	for name, want := range cases {
		got, err := MarshalRecordJSON(g[name])
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
		back, err := UnmarshalRecordJSON(got)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(back, g[name]) {
			t.Errorf("%s: JSON round trip gave %#v", name, back)
		}
	}
	// Epochs past 9 stay in numeric order.
	r := &SegmentMetadata{LeaderEpochs: []EpochEntry{{2, 0}, {10, 5}}, State: CopySegmentStarted}
	b, _ := MarshalRecordJSON(r)
	var m struct {
		SegmentLeaderEpochs json.RawMessage `json:"segmentLeaderEpochs"`
	}
	_ = json.Unmarshal(b, &m)
	if string(m.SegmentLeaderEpochs) != `{"2":0,"10":5}` {
		t.Errorf("epochs = %s", m.SegmentLeaderEpochs)
	}
	for _, bad := range []string{`{"type":"Nope","state":"X"}`, `{"type":"RemotePartitionDeleteMetadata","segmentId":"AAECAwQFBgcICQoLDA0ODw","state":"DELETE_PARTITION_MARKED"}`,
		`{"type":"RemoteLogSegmentMetadata","state":"COPY_SEGMENT_STARTED"}`, `{"type":"RemotePartitionDeleteMetadata","state":"DELETE_PARTITION_MARKED","extra":1}`} {
		if _, err := UnmarshalRecordJSON([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}
