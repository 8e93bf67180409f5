package proto

// APIKey identifies a record type on the wire, as the apiKey of Kafka's schema files.
type APIKey int16

// The four record types of __remote_log_metadata.
const (
	KeySegmentMetadata         APIKey = 0 // RemoteLogSegmentMetadataRecord
	KeySegmentMetadataUpdate   APIKey = 1 // RemoteLogSegmentMetadataUpdateRecord
	KeyPartitionDeleteMetadata APIKey = 2 // RemotePartitionDeleteMetadataRecord
	KeySegmentMetadataSnapshot APIKey = 3 // RemoteLogSegmentMetadataSnapshotRecord
)

// String is the name of the record type as Kafka's schema files name it.
func (k APIKey) String() string {
	switch k {
	case KeySegmentMetadata:
		return "RemoteLogSegmentMetadataRecord"
	case KeySegmentMetadataUpdate:
		return "RemoteLogSegmentMetadataUpdateRecord"
	case KeyPartitionDeleteMetadata:
		return "RemotePartitionDeleteMetadataRecord"
	case KeySegmentMetadataSnapshot:
		return "RemoteLogSegmentMetadataSnapshotRecord"
	}
	return "UnknownRecord"
}

// Record is one value of __remote_log_metadata: *SegmentMetadata, *SegmentMetadataUpdate,
// *PartitionDeleteMetadata or *SegmentMetadataSnapshot. The set is closed; the unexported
// method keeps it so.
type Record interface {
	// Key is the record's apiKey on the wire.
	Key() APIKey
	// TypeName is the name Kafka's Java class carries ("RemoteLogSegmentMetadata", ...), as
	// printed in Strata's JSON "type" field.
	TypeName() string
	// String prints the record exactly as Kafka's toString does.
	String() string
	isRecord()
}

// EpochEntry is one leader epoch of a segment and the first offset written in that epoch.
type EpochEntry struct {
	Epoch       int32
	StartOffset int64
}

// TaggedField is a tagged field this version of the codec does not know. It is kept as raw
// bytes so that a record written by a newer producer can be re-encoded without loss.
type TaggedField struct {
	Tag  uint32
	Data []byte
}

// UnknownTags holds every unknown tagged field a decoded record carried, by the struct that
// carried it. It is nil on records that carry none, which is every record Kafka writes today.
type UnknownTags struct {
	Record           []TaggedField   // the record's own tagged-field section
	SegmentID        []TaggedField   // RemoteLogSegmentId (records 0 and 1)
	TopicIDPartition []TaggedField   // TopicIdPartition (records 0, 1 and 2)
	Epochs           [][]TaggedField // per SegmentLeaderEpochs entry, in wire order (records 0 and 3)
}

// SegmentMetadata is RemoteLogSegmentMetadataRecord (apiKey 0): a segment's full description,
// published once, when its copy starts.
//
// LeaderEpochs is in ascending epoch order, as Kafka keeps it (a sorted map); Encode rejects any
// other order and Decode sorts what it reads. CustomMetadata nil is Kafka's null; an empty
// non-nil slice is an empty value, and the two stay distinct through a round trip.
type SegmentMetadata struct {
	SegmentID          SegmentID
	StartOffset        int64
	EndOffset          int64
	BrokerID           int32
	MaxTimestampMs     int64
	EventTimestampMs   int64
	LeaderEpochs       []EpochEntry
	SegmentSizeInBytes int32
	CustomMetadata     []byte
	State              SegmentState
	TxnIndexEmpty      bool
	Unknown            *UnknownTags
}

// SegmentMetadataUpdate is RemoteLogSegmentMetadataUpdateRecord (apiKey 1): a segment's move to
// a new state.
type SegmentMetadataUpdate struct {
	SegmentID        SegmentID
	BrokerID         int32
	EventTimestampMs int64
	CustomMetadata   []byte
	State            SegmentState
	Unknown          *UnknownTags
}

// PartitionDeleteMetadata is RemotePartitionDeleteMetadataRecord (apiKey 2): a user
// partition's move through deletion.
type PartitionDeleteMetadata struct {
	TopicIDPartition TopicIDPartition
	BrokerID         int32
	EventTimestampMs int64
	State            PartitionDeleteState
	Unknown          *UnknownTags
}

// SegmentMetadataSnapshot is RemoteLogSegmentMetadataSnapshotRecord (apiKey 3). Kafka can encode
// and decode it but never publishes it to the topic; it carries no partition, only the segment's
// UUID.
type SegmentMetadataSnapshot struct {
	SegmentUUID        UUID
	StartOffset        int64
	EndOffset          int64
	BrokerID           int32
	MaxTimestampMs     int64
	EventTimestampMs   int64
	LeaderEpochs       []EpochEntry
	SegmentSizeInBytes int32
	CustomMetadata     []byte
	State              SegmentState
	TxnIndexEmpty      bool
	Unknown            *UnknownTags
}

func (*SegmentMetadata) Key() APIKey         { return KeySegmentMetadata }
func (*SegmentMetadataUpdate) Key() APIKey   { return KeySegmentMetadataUpdate }
func (*PartitionDeleteMetadata) Key() APIKey { return KeyPartitionDeleteMetadata }
func (*SegmentMetadataSnapshot) Key() APIKey { return KeySegmentMetadataSnapshot }

func (*SegmentMetadata) TypeName() string         { return "RemoteLogSegmentMetadata" }
func (*SegmentMetadataUpdate) TypeName() string   { return "RemoteLogSegmentMetadataUpdate" }
func (*PartitionDeleteMetadata) TypeName() string { return "RemotePartitionDeleteMetadata" }
func (*SegmentMetadataSnapshot) TypeName() string { return "RemoteLogSegmentMetadataSnapshot" }

func (*SegmentMetadata) isRecord()         {}
func (*SegmentMetadataUpdate) isRecord()   {}
func (*PartitionDeleteMetadata) isRecord() {}
func (*SegmentMetadataSnapshot) isRecord() {}

// UserPartition returns the user partition a record is about, and false for a snapshot record,
// which names none.
func UserPartition(r Record) (TopicIDPartition, bool) {
	switch r := r.(type) {
	case *SegmentMetadata:
		return r.SegmentID.TopicIDPartition, true
	case *SegmentMetadataUpdate:
		return r.SegmentID.TopicIDPartition, true
	case *PartitionDeleteMetadata:
		return r.TopicIDPartition, true
	}
	return TopicIDPartition{}, false
}

// EndOffsetForEpoch returns the last offset the segment holds in the leader epoch at index i of
// epochs: one before the next epoch's start offset, or the segment's end offset for its last
// epoch. This is how Kafka bounds each epoch of a segment.
func EndOffsetForEpoch(epochs []EpochEntry, i int, segmentEnd int64) int64 {
	if i+1 < len(epochs) {
		return epochs[i+1].StartOffset - 1
	}
	return segmentEnd
}
