package proto

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// UUID is a 128-bit identifier as Kafka's org.apache.kafka.common.Uuid holds it: the most
// significant 64 bits are the first eight bytes. Kafka prints it as URL-safe base64 without
// padding (22 characters), and so does String.
type UUID [16]byte

// ZeroUUID is Kafka's Uuid.ZERO_UUID, which Kafka never hands out as a real id.
var ZeroUUID UUID

// metadataTopicID is Kafka's Uuid.METADATA_TOPIC_ID (0, 1), reserved like ZeroUUID.
var metadataTopicID = UUID{15: 1}

var kafkaBase64 = base64.RawURLEncoding

// NewUUID returns a random UUID as Kafka's Uuid.randomUuid does: version 4, never one of the
// reserved ids, and never one whose printed form starts with '-' (which command-line tools
// would take for a flag).
func NewUUID() UUID {
	for {
		u := UUID(uuid.New())
		if u != ZeroUUID && u != metadataTopicID && u.String()[0] != '-' {
			return u
		}
	}
}

// String prints u in Kafka's form: URL-safe base64, no padding.
func (u UUID) String() string { return kafkaBase64.EncodeToString(u[:]) }

// MarshalText implements encoding.TextMarshaler with Kafka's form.
func (u UUID) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler; it accepts what ParseUUID accepts.
func (u *UUID) UnmarshalText(b []byte) error {
	v, err := ParseUUID(string(b))
	if err != nil {
		return err
	}
	*u = v
	return nil
}

// ParseUUID parses Kafka's 22-character base64 form and, for convenience, the canonical
// 36-character hexadecimal form (8-4-4-4-12) or 32 bare hexadecimal digits.
func ParseUUID(s string) (UUID, error) {
	var u UUID
	switch len(s) {
	case 22:
		n, err := kafkaBase64.Decode(u[:], []byte(s))
		if err != nil || n != 16 {
			return UUID{}, fmt.Errorf("proto: invalid uuid %q: not 22 characters of URL-safe base64", s)
		}
		return u, nil
	case 32, 36:
		v, err := uuid.Parse(s)
		if err != nil {
			return UUID{}, fmt.Errorf("proto: invalid uuid %q: %v", s, err)
		}
		return UUID(v), nil
	default:
		return UUID{}, fmt.Errorf("proto: invalid uuid %q: want 22 base64 characters or 36 hex-and-dash characters", s)
	}
}

// Hex prints u as the canonical 8-4-4-4-12 hexadecimal form.
func (u UUID) Hex() string { return uuid.UUID(u).String() }

// TopicIDPartition identifies a user partition as Kafka's TopicIdPartition does. Kafka's
// equality and hashing include the name; the metadata partitioner (MetadataPartition) uses only
// the id and the partition number.
type TopicIDPartition struct {
	TopicID   UUID
	Topic     string
	Partition int32
}

// String prints tp as Kafka's TopicIdPartition.toString: "<topicId>:<topic>-<partition>".
func (tp TopicIDPartition) String() string {
	return tp.TopicID.String() + ":" + tp.Topic + "-" + strconv.FormatInt(int64(tp.Partition), 10)
}

// ParseTopicIDPartition parses the form String prints. The topic name may itself contain '-'
// and ':'; the id is everything before the first ':' and the partition everything after the
// last '-'.
func ParseTopicIDPartition(s string) (TopicIDPartition, error) {
	colon := strings.IndexByte(s, ':')
	dash := strings.LastIndexByte(s, '-')
	if colon < 0 || dash < colon+1 {
		return TopicIDPartition{}, fmt.Errorf("proto: invalid topic partition %q: want <topicId>:<topic>-<partition>", s)
	}
	id, err := ParseUUID(s[:colon])
	if err != nil {
		return TopicIDPartition{}, err
	}
	p, err := strconv.ParseInt(s[dash+1:], 10, 32)
	if err != nil || p < 0 {
		return TopicIDPartition{}, fmt.Errorf("proto: invalid topic partition %q: partition %q is not a non-negative int32", s, s[dash+1:])
	}
	return TopicIDPartition{TopicID: id, Topic: s[colon+1 : dash], Partition: int32(p)}, nil
}

// SegmentID identifies a remote log segment as Kafka's RemoteLogSegmentId does: the user
// partition it belongs to and a UUID unique to that copy of the segment.
type SegmentID struct {
	TopicIDPartition
	ID UUID
}

// String prints id as Kafka's RemoteLogSegmentId.toString.
func (id SegmentID) String() string {
	return "RemoteLogSegmentId{topicIdPartition=" + id.TopicIDPartition.String() + ", id=" + id.ID.String() + "}"
}

// ErrInvalidState is returned when a state id or name is not one Kafka defines.
var ErrInvalidState = errors.New("invalid state")
