package proto

import (
	"errors"
	"fmt"
)

// Sentinel causes of a *DecodeError; test for them with errors.Is.
var (
	ErrTruncated           = errors.New("truncated input")
	ErrUnknownFrameVersion = errors.New("unknown frame version")
	ErrUnknownAPIKey       = errors.New("unknown apiKey")
	ErrUnknownVersion      = errors.New("unknown record version")
	ErrTrailingBytes       = errors.New("trailing bytes after the record")
	ErrBadVarint           = errors.New("malformed varint")
	ErrLengthOverflow      = errors.New("length out of range")
	ErrInvalidField        = errors.New("invalid field value")
)

// ErrInvalidRecord is returned by Encode for a record Kafka could not hold: an invalid state,
// leader epochs out of order, a name or value too long for its length prefix.
var ErrInvalidRecord = errors.New("invalid record")

// DecodeError says why a value of __remote_log_metadata did not decode: the record type (or
// "frame" before the type is known), the field being read, the byte offset at which that field
// starts, and the cause, one of the sentinel errors above (or ErrInvalidState).
type DecodeError struct {
	Record string // record type, e.g. "RemoteLogSegmentMetadataRecord", or "frame"
	Field  string // field path, e.g. "RemoteLogSegmentId.TopicIdPartition.Name"
	Offset int    // byte offset of the field in the input
	Err    error  // sentinel cause
	Detail string // what was expected and what was found
}

func (e *DecodeError) Error() string {
	msg := fmt.Sprintf("proto: decoding %s: field %s at byte %d: %v", e.Record, e.Field, e.Offset, e.Err)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

func (e *DecodeError) Unwrap() error { return e.Err }
