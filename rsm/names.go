package rsm

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/stratalog/strata/proto"
)

// The naming rules of Kafka's LocalTieredStorage (storage/src/test/java/org/apache/kafka/server/
// log/remote/storage: LocalTieredStorage, RemoteTopicPartitionDirectory, RemoteLogSegmentFileset),
// which both implementations follow so that one listing tool reads both:
//
//	<root>/kafka-tiered-storage/<topic>-<partition>-<topicId>/<start offset>-<segment id><suffix>
//
// The topic id and segment id are printed in Kafka's base64 form (22 characters). Since
// KAFKA-15194 the start offset is printed as Kafka prints segment base offsets, zero-padded to
// 20 digits (LogFileUtils.filenamePrefixFromOffset); brokers released between KAFKA-15194 and
// the padding printed it without padding, and the parsers here accept both.

// RootDirName is the directory LocalTieredStorage creates under its configured directory.
const RootDirName = "kafka-tiered-storage"

// maxTopicLength is Kafka's Topic.MAX_NAME_LENGTH.
const maxTopicLength = 249

// PartitionDirName returns the name of the directory holding tp's segments:
// "<topic>-<partition>-<topicId>".
func PartitionDirName(tp proto.TopicIDPartition) string {
	return tp.Topic + "-" + strconv.FormatInt(int64(tp.Partition), 10) + "-" + tp.TopicID.String()
}

// ParsePartitionDirName parses what PartitionDirName prints. Topic names may contain '-', so
// the name is read from the right: the 22-character topic id, then the partition number.
func ParsePartitionDirName(name string) (proto.TopicIDPartition, error) {
	const idLen = 22
	if len(name) < idLen+4 || name[len(name)-idLen-1] != '-' {
		return proto.TopicIDPartition{}, fmt.Errorf("%q is not a partition directory name <topic>-<partition>-<topicId>", name)
	}
	id, err := parseKafkaUUID(name[len(name)-idLen:])
	if err != nil {
		return proto.TopicIDPartition{}, fmt.Errorf("%q is not a partition directory name: %v", name, err)
	}
	rest := name[:len(name)-idLen-1]
	dash := strings.LastIndexByte(rest, '-')
	if dash < 1 {
		return proto.TopicIDPartition{}, fmt.Errorf("%q is not a partition directory name <topic>-<partition>-<topicId>", name)
	}
	p, err := strconv.ParseInt(rest[dash+1:], 10, 32)
	// Leading zeros are refused as Kafka in effect refuses them: it reopens the directory
	// under the name it prints, which has none.
	if num := rest[dash+1:]; err != nil || p < 0 || !allDigits(num) || len(num) > 1 && num[0] == '0' {
		return proto.TopicIDPartition{}, fmt.Errorf("%q is not a partition directory name: partition %q is not a non-negative int32", name, rest[dash+1:])
	}
	topic := rest[:dash]
	if err := checkTopic(topic); err != nil {
		return proto.TopicIDPartition{}, fmt.Errorf("%q is not a partition directory name: %v", name, err)
	}
	return proto.TopicIDPartition{TopicID: id, Topic: topic, Partition: int32(p)}, nil
}

// SegmentFileName returns the name of a segment's file of type t:
// "<20-digit start offset>-<segment id><suffix>".
func SegmentFileName(startOffset int64, id proto.UUID, t FileType) string {
	return fmt.Sprintf("%020d-%s%s", startOffset, id.String(), t.Suffix())
}

// LegacySegmentFileName is the name brokers released before the 20-digit padding gave the same
// file: the start offset unpadded. Readers look for it when the padded name is missing.
func LegacySegmentFileName(startOffset int64, id proto.UUID, t FileType) string {
	return strconv.FormatInt(startOffset, 10) + "-" + id.String() + t.Suffix()
}

// ParseSegmentFileName parses what SegmentFileName or LegacySegmentFileName print, accepting
// the names Kafka's pattern (\d+-)([a-zA-Z0-9_-]{22})(\.[a-z_]+) accepts with a known suffix.
func ParseSegmentFileName(name string) (startOffset int64, id proto.UUID, t FileType, err error) {
	digits := 0
	for digits < len(name) && name[digits] >= '0' && name[digits] <= '9' {
		digits++
	}
	const idLen = 22
	if digits == 0 || len(name) < digits+1+idLen+2 || name[digits] != '-' {
		return 0, proto.UUID{}, FileUnknown, fmt.Errorf("%q is not a segment file name <start offset>-<segment id><suffix>", name)
	}
	startOffset, perr := strconv.ParseInt(name[:digits], 10, 64)
	if perr != nil {
		return 0, proto.UUID{}, FileUnknown, fmt.Errorf("%q is not a segment file name: start offset out of range", name)
	}
	id, err = parseKafkaUUID(name[digits+1 : digits+1+idLen])
	if err != nil {
		return 0, proto.UUID{}, FileUnknown, fmt.Errorf("%q is not a segment file name: %v", name, err)
	}
	suffix := name[digits+1+idLen:]
	for ft := FileLog; int(ft) < len(fileTypeSuffixes); ft++ {
		if ft.Suffix() == suffix {
			return startOffset, id, ft, nil
		}
	}
	return 0, proto.UUID{}, FileUnknown, fmt.Errorf("%q is not a segment file name: unknown suffix %q", name, suffix)
}

// CheckSegment validates what the implementations take from seg to name its files; the error
// wraps ErrPermanent. A topic name that Kafka would reject is refused here because it becomes a
// path element or key: "..", or a '/', must never reach a file system or a bucket.
func CheckSegment(seg *proto.SegmentMetadata) error {
	if seg == nil {
		return invalidArgf("segment metadata is nil")
	}
	if err := CheckPartition(seg.SegmentID.TopicIDPartition); err != nil {
		return err
	}
	if seg.SegmentID.ID == proto.ZeroUUID {
		return invalidArgf("segment id is the zero UUID")
	}
	if seg.StartOffset < 0 {
		return invalidArgf("start offset %d is negative", seg.StartOffset)
	}
	return nil
}

// CheckPartition validates a partition for use as a directory name; the error wraps
// ErrPermanent.
func CheckPartition(tp proto.TopicIDPartition) error {
	if err := checkTopic(tp.Topic); err != nil {
		return fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	if tp.Partition < 0 {
		return invalidArgf("partition %d is negative", tp.Partition)
	}
	if tp.TopicID == proto.ZeroUUID {
		return invalidArgf("topic id of %q is the zero UUID", tp.Topic)
	}
	return nil
}

// checkTopic applies Kafka's Topic.validate.
func checkTopic(topic string) error {
	if topic == "" {
		return fmt.Errorf("topic name is empty")
	}
	if topic == "." || topic == ".." {
		return fmt.Errorf("topic name %q is not allowed", topic)
	}
	if len(topic) > maxTopicLength {
		return fmt.Errorf("topic name is %d characters long, more than %d", len(topic), maxTopicLength)
	}
	for i := 0; i < len(topic); i++ {
		c := topic[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic name %q has the illegal character %q (legal: ASCII letters, digits, '.', '_', '-')", topic, c)
		}
	}
	return nil
}

// parseKafkaUUID accepts only the canonical 22-character form, so that one id has one name.
func parseKafkaUUID(s string) (proto.UUID, error) {
	if len(s) != 22 {
		return proto.UUID{}, fmt.Errorf("id %q is not 22 characters", s)
	}
	id, err := proto.ParseUUID(s)
	if err != nil {
		return proto.UUID{}, err
	}
	if id.String() != s {
		return proto.UUID{}, fmt.Errorf("id %q is not in canonical base64 form", s)
	}
	return id, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func invalidArgf(format string, args ...any) error {
	return fmt.Errorf("%w: invalid argument: %s", ErrPermanent, fmt.Sprintf(format, args...))
}
