package serve

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	rlmmv1 "github.com/stratalog/strata/api/rlmm/v1"
	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/rlmm"
)

// Status turns an error of the manager into the gRPC status the service answers with: a code
// that says whether to retry and one rlmmv1.ErrorDetail whose kind says which failure it is.
// fallback is the kind of an error none of rlmm's sentinels matches (the Kafka client's on the
// paths that reach Kafka, the store's on reads). Context errors map to CANCELLED and
// DEADLINE_EXCEEDED without detail, as gRPC's own do.
func Status(err error, fallback rlmmv1.ErrorKind) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	if se, ok := status.FromError(err); ok {
		return se
	}
	d := Detail(err, fallback)
	if d == nil {
		return status.FromContextError(err)
	}
	st, derr := status.New(codeOf(d.Kind), err.Error()).WithDetails(d)
	if derr != nil {
		return status.New(codeOf(d.Kind), err.Error())
	}
	return st
}

// Detail classifies err; nil for a context error (cancelled, deadline exceeded) that no rlmm
// sentinel explains.
func Detail(err error, fallback rlmmv1.ErrorKind) *rlmmv1.ErrorDetail {
	d := &rlmmv1.ErrorDetail{Message: err.Error(), MetadataPartition: -1, Offset: -1}
	var (
		halt       *rlmm.HaltError
		notApplied *rlmm.NotAppliedError
		incomplete *rlmm.IncompleteError
	)
	switch {
	// A halt also counts as not ready (HaltError.Is): it comes first.
	case errors.As(err, &halt):
		d.Kind, d.MetadataPartition, d.Offset = rlmmv1.ErrorKind_ERROR_KIND_HALTED, halt.Partition, halt.Offset
	case errors.As(err, &notApplied):
		d.Kind, d.MetadataPartition, d.Offset = rlmmv1.ErrorKind_ERROR_KIND_NOT_APPLIED, notApplied.Partition, notApplied.Offset
		d.Published, d.NotAppliedReason = notApplied.Published, notAppliedReason(notApplied.Reason)
	// An incomplete write also counts as timed out (IncompleteError.Is), and may wrap the
	// caller's context error: it comes before both.
	case errors.As(err, &incomplete):
		d.Kind, d.MetadataPartition, d.Offset = rlmmv1.ErrorKind_ERROR_KIND_INCOMPLETE, incomplete.Partition, incomplete.Offset
		d.Published = incomplete.Published
	case errors.Is(err, rlmm.ErrClosed):
		d.Kind = rlmmv1.ErrorKind_ERROR_KIND_CLOSED
	case errors.Is(err, rlmm.ErrTimeout):
		d.Kind = rlmmv1.ErrorKind_ERROR_KIND_TIMEOUT
	case errors.Is(err, rlmm.ErrNotReady):
		d.Kind = rlmmv1.ErrorKind_ERROR_KIND_NOT_READY
	case errors.Is(err, rlmm.ErrNotAssigned):
		d.Kind = rlmmv1.ErrorKind_ERROR_KIND_NOT_ASSIGNED
	case errors.Is(err, rlmm.ErrNotFound):
		d.Kind = rlmmv1.ErrorKind_ERROR_KIND_NOT_FOUND
	case errors.Is(err, rlmm.ErrInvalidArgument), errors.Is(err, errInvalid):
		d.Kind = rlmmv1.ErrorKind_ERROR_KIND_INVALID_ARGUMENT
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return nil
	default:
		d.Kind = fallback
	}
	return d
}

// notAppliedReason names the store's reason for dropping a record.
func notAppliedReason(reason error) rlmmv1.NotAppliedReason {
	switch {
	case errors.Is(reason, cache.ErrInvalidTransition):
		return rlmmv1.NotAppliedReason_NOT_APPLIED_REASON_INVALID_TRANSITION
	case errors.Is(reason, cache.ErrUnknownSegment):
		return rlmmv1.NotAppliedReason_NOT_APPLIED_REASON_UNKNOWN_SEGMENT
	case errors.Is(reason, cache.ErrUnsupportedRecord):
		return rlmmv1.NotAppliedReason_NOT_APPLIED_REASON_UNSUPPORTED_RECORD
	case errors.Is(reason, cache.ErrInvalidRecord):
		return rlmmv1.NotAppliedReason_NOT_APPLIED_REASON_INVALID_RECORD
	case errors.Is(reason, cache.ErrPartitionMismatch):
		return rlmmv1.NotAppliedReason_NOT_APPLIED_REASON_PARTITION_MISMATCH
	case errors.Is(reason, cache.ErrPartitionDeleted):
		return rlmmv1.NotAppliedReason_NOT_APPLIED_REASON_PARTITION_DELETED
	}
	return rlmmv1.NotAppliedReason_NOT_APPLIED_REASON_UNSPECIFIED
}

// codeOf is the gRPC code each kind comes with, as api/rlmm/v1/rlmm.proto documents it.
func codeOf(k rlmmv1.ErrorKind) codes.Code {
	switch k {
	case rlmmv1.ErrorKind_ERROR_KIND_NOT_READY, rlmmv1.ErrorKind_ERROR_KIND_CLOSED, rlmmv1.ErrorKind_ERROR_KIND_KAFKA:
		return codes.Unavailable
	case rlmmv1.ErrorKind_ERROR_KIND_HALTED, rlmmv1.ErrorKind_ERROR_KIND_NOT_ASSIGNED, rlmmv1.ErrorKind_ERROR_KIND_NOT_APPLIED:
		return codes.FailedPrecondition
	case rlmmv1.ErrorKind_ERROR_KIND_NOT_FOUND:
		return codes.NotFound
	case rlmmv1.ErrorKind_ERROR_KIND_TIMEOUT, rlmmv1.ErrorKind_ERROR_KIND_INCOMPLETE:
		return codes.DeadlineExceeded
	case rlmmv1.ErrorKind_ERROR_KIND_INVALID_ARGUMENT:
		return codes.InvalidArgument
	}
	return codes.Internal
}

// errInvalid marks a request the service itself refuses (a malformed partition, a record of
// the wrong type) before it reaches the manager.
var errInvalid = errors.New("invalid request")
