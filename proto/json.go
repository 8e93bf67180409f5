package proto

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
)

// MarshalRecordJSON returns r as the JSON object Strata's tools print: the keys "type", "topic",
// "topicId", "partition", "segmentId", "startOffset", "endOffset", "brokerId", "maxTimestampMs",
// "eventTimestampMs", "segmentLeaderEpochs" (an object from epoch, as a string, to its start
// offset, in ascending epoch order), "segmentSizeInBytes", "customMetadata" (standard base64;
// null when null, "" when empty), "state" (the state's name) and "txnIndexEmpty", in that order,
// each present only when the record type has it. Ids print in Kafka's base64 form.
func MarshalRecordJSON(r Record) ([]byte, error) {
	j := recordJSON{Type: r.TypeName()}
	switch r := r.(type) {
	case *SegmentMetadata:
		j.partition(r.SegmentID.TopicIDPartition)
		j.SegmentID = &r.SegmentID.ID
		j.StartOffset, j.EndOffset = &r.StartOffset, &r.EndOffset
		j.BrokerID = &r.BrokerID
		j.MaxTimestampMs, j.EventTimestampMs = &r.MaxTimestampMs, &r.EventTimestampMs
		j.SegmentLeaderEpochs = (*epochsJSON)(&r.LeaderEpochs)
		j.SegmentSizeInBytes = &r.SegmentSizeInBytes
		j.CustomMetadata = &customJSON{r.CustomMetadata}
		j.State = r.State.String()
		j.TxnIndexEmpty = &r.TxnIndexEmpty
	case *SegmentMetadataUpdate:
		j.partition(r.SegmentID.TopicIDPartition)
		j.SegmentID = &r.SegmentID.ID
		j.BrokerID = &r.BrokerID
		j.EventTimestampMs = &r.EventTimestampMs
		j.CustomMetadata = &customJSON{r.CustomMetadata}
		j.State = r.State.String()
	case *PartitionDeleteMetadata:
		j.partition(r.TopicIDPartition)
		j.BrokerID = &r.BrokerID
		j.EventTimestampMs = &r.EventTimestampMs
		j.State = r.State.String()
	case *SegmentMetadataSnapshot:
		j.SegmentID = &r.SegmentUUID
		j.StartOffset, j.EndOffset = &r.StartOffset, &r.EndOffset
		j.BrokerID = &r.BrokerID
		j.MaxTimestampMs, j.EventTimestampMs = &r.MaxTimestampMs, &r.EventTimestampMs
		j.SegmentLeaderEpochs = (*epochsJSON)(&r.LeaderEpochs)
		j.SegmentSizeInBytes = &r.SegmentSizeInBytes
		j.CustomMetadata = &customJSON{r.CustomMetadata}
		j.State = r.State.String()
		j.TxnIndexEmpty = &r.TxnIndexEmpty
	default:
		return nil, fmt.Errorf("proto: cannot marshal %T", r)
	}
	return json.Marshal(j)
}

// UnmarshalRecordJSON is the inverse of MarshalRecordJSON. Keys a type does not have are
// rejected, so a typo cannot pass silently.
func UnmarshalRecordJSON(data []byte) (Record, error) {
	var j recordJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("proto: record JSON: %w", err)
	}
	req := func(name string, present bool) error {
		if !present {
			return fmt.Errorf("proto: record JSON of type %s: missing %q", j.Type, name)
		}
		return nil
	}
	var tp TopicIDPartition
	if j.TopicID != nil {
		tp.TopicID = *j.TopicID
	}
	if j.Topic != nil {
		tp.Topic = *j.Topic
	}
	if j.Partition != nil {
		tp.Partition = *j.Partition
	}
	var custom []byte
	if j.CustomMetadata != nil {
		custom = j.CustomMetadata.v
	}
	deref64 := func(p *int64) int64 {
		if p == nil {
			return 0
		}
		return *p
	}
	deref32 := func(p *int32) int32 {
		if p == nil {
			return 0
		}
		return *p
	}
	var epochs []EpochEntry
	if j.SegmentLeaderEpochs != nil {
		epochs = *j.SegmentLeaderEpochs
	}
	switch j.Type {
	case "RemoteLogSegmentMetadata", "RemoteLogSegmentMetadataSnapshot":
		for _, c := range []struct {
			n string
			p bool
		}{{"segmentId", j.SegmentID != nil}, {"startOffset", j.StartOffset != nil}, {"endOffset", j.EndOffset != nil}, {"state", j.State != ""}} {
			if err := req(c.n, c.p); err != nil {
				return nil, err
			}
		}
		st, err := ParseSegmentState(j.State)
		if err != nil {
			return nil, err
		}
		txn := j.TxnIndexEmpty != nil && *j.TxnIndexEmpty
		if j.Type == "RemoteLogSegmentMetadataSnapshot" {
			if j.Topic != nil || j.TopicID != nil || j.Partition != nil {
				return nil, fmt.Errorf("proto: record JSON of type %s has no topic, topicId or partition", j.Type)
			}
			return &SegmentMetadataSnapshot{SegmentUUID: *j.SegmentID, StartOffset: *j.StartOffset, EndOffset: *j.EndOffset,
				BrokerID: deref32(j.BrokerID), MaxTimestampMs: deref64(j.MaxTimestampMs), EventTimestampMs: deref64(j.EventTimestampMs),
				LeaderEpochs: epochs, SegmentSizeInBytes: deref32(j.SegmentSizeInBytes), CustomMetadata: custom, State: st, TxnIndexEmpty: txn}, nil
		}
		return &SegmentMetadata{SegmentID: SegmentID{tp, *j.SegmentID}, StartOffset: *j.StartOffset, EndOffset: *j.EndOffset,
			BrokerID: deref32(j.BrokerID), MaxTimestampMs: deref64(j.MaxTimestampMs), EventTimestampMs: deref64(j.EventTimestampMs),
			LeaderEpochs: epochs, SegmentSizeInBytes: deref32(j.SegmentSizeInBytes), CustomMetadata: custom, State: st, TxnIndexEmpty: txn}, nil
	case "RemoteLogSegmentMetadataUpdate":
		if j.StartOffset != nil || j.EndOffset != nil || j.SegmentLeaderEpochs != nil || j.MaxTimestampMs != nil || j.SegmentSizeInBytes != nil || j.TxnIndexEmpty != nil {
			return nil, fmt.Errorf("proto: record JSON of type %s carries a key only RemoteLogSegmentMetadata has", j.Type)
		}
		if err := req("segmentId", j.SegmentID != nil); err != nil {
			return nil, err
		}
		st, err := ParseSegmentState(j.State)
		if err != nil {
			return nil, err
		}
		return &SegmentMetadataUpdate{SegmentID: SegmentID{tp, *j.SegmentID}, BrokerID: deref32(j.BrokerID),
			EventTimestampMs: deref64(j.EventTimestampMs), CustomMetadata: custom, State: st}, nil
	case "RemotePartitionDeleteMetadata":
		if j.SegmentID != nil || j.StartOffset != nil || j.EndOffset != nil || j.SegmentLeaderEpochs != nil || j.CustomMetadata != nil || j.TxnIndexEmpty != nil {
			return nil, fmt.Errorf("proto: record JSON of type %s carries a segment key", j.Type)
		}
		st, err := ParsePartitionDeleteState(j.State)
		if err != nil {
			return nil, err
		}
		return &PartitionDeleteMetadata{TopicIDPartition: tp, BrokerID: deref32(j.BrokerID), EventTimestampMs: deref64(j.EventTimestampMs), State: st}, nil
	}
	return nil, fmt.Errorf("proto: record JSON: unknown type %q", j.Type)
}

type recordJSON struct {
	Type                string      `json:"type"`
	Topic               *string     `json:"topic,omitempty"`
	TopicID             *UUID       `json:"topicId,omitempty"`
	Partition           *int32      `json:"partition,omitempty"`
	SegmentID           *UUID       `json:"segmentId,omitempty"`
	StartOffset         *int64      `json:"startOffset,omitempty"`
	EndOffset           *int64      `json:"endOffset,omitempty"`
	BrokerID            *int32      `json:"brokerId,omitempty"`
	MaxTimestampMs      *int64      `json:"maxTimestampMs,omitempty"`
	EventTimestampMs    *int64      `json:"eventTimestampMs,omitempty"`
	SegmentLeaderEpochs *epochsJSON `json:"segmentLeaderEpochs,omitempty"`
	SegmentSizeInBytes  *int32      `json:"segmentSizeInBytes,omitempty"`
	CustomMetadata      *customJSON `json:"customMetadata,omitempty"`
	State               string      `json:"state"`
	TxnIndexEmpty       *bool       `json:"txnIndexEmpty,omitempty"`
}

func (j *recordJSON) partition(tp TopicIDPartition) {
	j.Topic, j.TopicID, j.Partition = &tp.Topic, &tp.TopicID, &tp.Partition
}

// epochsJSON prints leader epochs as an object in ascending epoch order; a Go map would sort
// its keys as strings and put "10" before "2".
type epochsJSON []EpochEntry

func (e epochsJSON) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, ep := range e {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = strconv.AppendInt(b, int64(ep.Epoch), 10)
		b = append(b, '"', ':')
		b = strconv.AppendInt(b, ep.StartOffset, 10)
	}
	return append(b, '}'), nil
}

func (e *epochsJSON) UnmarshalJSON(data []byte) error {
	var m map[string]int64
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	out := make([]EpochEntry, 0, len(m))
	for k, v := range m {
		ep, err := strconv.ParseInt(k, 10, 32)
		if err != nil {
			return fmt.Errorf("leader epoch %q is not an int32", k)
		}
		out = append(out, EpochEntry{Epoch: int32(ep), StartOffset: v})
	}
	*e = normalizeEpochs(out)
	return nil
}

// customJSON keeps null and empty apart: JSON null for null, "" for empty.
type customJSON struct{ v []byte }

func (c customJSON) MarshalJSON() ([]byte, error) {
	if c.v == nil {
		return []byte("null"), nil
	}
	return json.Marshal(base64.StdEncoding.EncodeToString(c.v))
}

func (c *customJSON) UnmarshalJSON(data []byte) error {
	var s *string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	if s == nil {
		c.v = nil
		return nil
	}
	v, err := base64.StdEncoding.DecodeString(*s)
	if err != nil {
		return fmt.Errorf("customMetadata is not standard base64: %w", err)
	}
	c.v = v
	return nil
}
