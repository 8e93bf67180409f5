package proto

import (
	"strconv"
	"strings"
)

// The String methods print a record exactly as Kafka's toString of the object its serde
// decodes the record into, so that Strata's text output and Kafka's RemoteLogMetadataFormatter
// can be compared line by line.

func (r *SegmentMetadata) String() string {
	var b strings.Builder
	b.WriteString("RemoteLogSegmentMetadata{remoteLogSegmentId=")
	b.WriteString(r.SegmentID.String())
	writeInt(&b, ", startOffset=", r.StartOffset)
	writeInt(&b, ", endOffset=", r.EndOffset)
	writeInt(&b, ", brokerId=", int64(r.BrokerID))
	writeInt(&b, ", maxTimestampMs=", r.MaxTimestampMs)
	writeInt(&b, ", eventTimestampMs=", r.EventTimestampMs)
	b.WriteString(", segmentLeaderEpochs=")
	writeEpochs(&b, r.LeaderEpochs)
	writeInt(&b, ", segmentSizeInBytes=", int64(r.SegmentSizeInBytes))
	b.WriteString(", customMetadata=")
	writeCustomMetadata(&b, r.CustomMetadata)
	b.WriteString(", state=")
	b.WriteString(r.State.String())
	b.WriteString(", txnIdxEmpty=")
	b.WriteString(strconv.FormatBool(r.TxnIndexEmpty))
	b.WriteByte('}')
	return b.String()
}

func (r *SegmentMetadataUpdate) String() string {
	var b strings.Builder
	b.WriteString("RemoteLogSegmentMetadataUpdate{remoteLogSegmentId=")
	b.WriteString(r.SegmentID.String())
	b.WriteString(", customMetadata=")
	writeCustomMetadata(&b, r.CustomMetadata)
	b.WriteString(", state=")
	b.WriteString(r.State.String())
	writeInt(&b, ", eventTimestampMs=", r.EventTimestampMs)
	writeInt(&b, ", brokerId=", int64(r.BrokerID))
	b.WriteByte('}')
	return b.String()
}

func (r *PartitionDeleteMetadata) String() string {
	var b strings.Builder
	b.WriteString("RemotePartitionDeleteMetadata{topicPartition=")
	b.WriteString(r.TopicIDPartition.String())
	b.WriteString(", state=")
	b.WriteString(r.State.String())
	writeInt(&b, ", eventTimestampMs=", r.EventTimestampMs)
	writeInt(&b, ", brokerId=", int64(r.BrokerID))
	b.WriteByte('}')
	return b.String()
}

func (r *SegmentMetadataSnapshot) String() string {
	var b strings.Builder
	b.WriteString("RemoteLogSegmentMetadataSnapshot{segmentId=")
	b.WriteString(r.SegmentUUID.String())
	writeInt(&b, ", startOffset=", r.StartOffset)
	writeInt(&b, ", endOffset=", r.EndOffset)
	writeInt(&b, ", maxTimestampMs=", r.MaxTimestampMs)
	b.WriteString(", segmentLeaderEpochs=")
	writeEpochs(&b, r.LeaderEpochs)
	writeInt(&b, ", segmentSizeInBytes=", int64(r.SegmentSizeInBytes))
	b.WriteString(", customMetadata=")
	writeCustomMetadata(&b, r.CustomMetadata)
	b.WriteString(", state=")
	b.WriteString(r.State.String())
	b.WriteString(", txnIdxEmpty=")
	b.WriteString(strconv.FormatBool(r.TxnIndexEmpty))
	b.WriteByte('}')
	return b.String()
}

// FormatKafka prints a record the way Kafka's RemoteLogMetadataFormatter prints it for the
// console consumer: "partition: P, offset: O, value: <toString>".
func FormatKafka(partition int32, offset int64, r Record) string {
	return "partition: " + strconv.FormatInt(int64(partition), 10) +
		", offset: " + strconv.FormatInt(offset, 10) + ", value: " + r.String()
}

func writeInt(b *strings.Builder, label string, v int64) {
	b.WriteString(label)
	b.WriteString(strconv.FormatInt(v, 10))
}

// writeEpochs prints epochs as Java's TreeMap.toString: "{0=0, 1=20}".
func writeEpochs(b *strings.Builder, epochs []EpochEntry) {
	b.WriteByte('{')
	for i, e := range epochs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatInt(int64(e.Epoch), 10))
		b.WriteByte('=')
		b.WriteString(strconv.FormatInt(e.StartOffset, 10))
	}
	b.WriteByte('}')
}

// writeCustomMetadata prints Kafka's Optional<CustomMetadata>: null is Optional.empty, any
// other value, empty included, is present.
func writeCustomMetadata(b *strings.Builder, v []byte) {
	if v == nil {
		b.WriteString("Optional.empty")
		return
	}
	b.WriteString("Optional[CustomMetadata{")
	b.WriteString(strconv.Itoa(len(v)))
	b.WriteString(" bytes}]")
}
