package io.github.stratalog.strata.kafka;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import io.github.stratalog.strata.kafka.grpc.ErrorDetail;
import io.github.stratalog.strata.kafka.grpc.ErrorKind;
import io.github.stratalog.strata.kafka.grpc.NotAppliedReason;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import org.apache.kafka.server.log.remote.storage.RemoteResourceNotFoundException;
import org.apache.kafka.server.log.remote.storage.RemoteStorageException;
import org.apache.kafka.server.log.remote.storage.RemoteStorageNotReadyException;
import org.apache.kafka.server.log.remote.storage.RetriableRemoteStorageException;

/**
 * Turns a failed call to strata serve into the exception Kafka's RemoteLogManager expects.
 *
 * <p>RemoteLogManager's tasks catch {@link RetriableRemoteStorageException} (and Kafka's
 * RetriableException) as "try again at the next run" and log anything else as a failure. So
 * whatever a later call can succeed at is retriable: the server not running or restarting, a
 * partition still loading, a write not applied within its wait, Kafka unreachable from the
 * server. A partition this broker does not follow is {@link RemoteResourceNotFoundException}, a
 * record breaking Kafka's rules {@link IllegalArgumentException}, as Kafka's own manager throws
 * them.
 */
final class Errors {
    private Errors() {
    }

    /** The ErrorDetail in a status's details, or null when it carries none (the call failed before the server answered). */
    static ErrorDetail detail(Throwable t) {
        com.google.rpc.Status st = StatusProto.fromThrowable(t);
        if (st == null) {
            return null;
        }
        for (Any any : st.getDetailsList()) {
            if (any.is(ErrorDetail.class)) {
                try {
                    return any.unpack(ErrorDetail.class);
                } catch (InvalidProtocolBufferException e) {
                    return null;
                }
            }
        }
        return null;
    }

    /**
     * The Kafka exception for a failed call named what. Runtime exceptions that are not gRPC
     * statuses (a bug, a record Kafka's serde refuses) are returned as they are.
     */
    static Exception toKafka(String what, Throwable t) {
        if (t instanceof RemoteStorageException || t instanceof IllegalArgumentException) {
            return (Exception) t;
        }
        if (!(t instanceof StatusRuntimeException sre)) {
            return t instanceof Exception e ? e : new RemoteStorageException(what + ": " + t, t);
        }
        Status status = sre.getStatus();
        ErrorDetail d = detail(t);
        String msg = what + ": " + describe(status, d);
        ErrorKind kind = d == null ? ErrorKind.ERROR_KIND_UNSPECIFIED : d.getKind();
        switch (kind) {
            case ERROR_KIND_NOT_READY:
                return new RemoteStorageNotReadyException(msg, t);
            case ERROR_KIND_NOT_FOUND:
                return new RemoteResourceNotFoundException(msg, t);
            case ERROR_KIND_INVALID_ARGUMENT:
                return new IllegalArgumentException(msg, t);
            case ERROR_KIND_TIMEOUT:
            case ERROR_KIND_INCOMPLETE:
            case ERROR_KIND_KAFKA:
            case ERROR_KIND_CLOSED:
                return new RetriableRemoteStorageException(msg, t);
            case ERROR_KIND_NOT_APPLIED:
                // An update of a segment the state machine does not know, as Kafka's own cache
                // refuses it; any other refusal is a plain failure.
                if (d.getNotAppliedReason() == NotAppliedReason.NOT_APPLIED_REASON_UNKNOWN_SEGMENT) {
                    return new RemoteResourceNotFoundException(msg, t);
                }
                return new RemoteStorageException(msg, t);
            case ERROR_KIND_HALTED:
            case ERROR_KIND_NOT_ASSIGNED:
            case ERROR_KIND_INTERNAL:
                return new RemoteStorageException(msg, t);
            default:
                break;
        }
        // No detail: judge by the code. UNAVAILABLE is the socket refusing or dropping the
        // call (the server is down or restarting), DEADLINE_EXCEEDED the plugin's own deadline.
        switch (status.getCode()) {
            case UNAVAILABLE:
            case DEADLINE_EXCEEDED:
            case CANCELLED:
            case RESOURCE_EXHAUSTED:
            case ABORTED:
                return new RetriableRemoteStorageException(msg, t);
            case NOT_FOUND:
                return new RemoteResourceNotFoundException(msg, t);
            case INVALID_ARGUMENT:
                return new IllegalArgumentException(msg, t);
            default:
                return new RemoteStorageException(msg, t);
        }
    }

    /**
     * Whether t leaves a write's outcome unknown: the call failed with no answer from the server
     * (it died or its connection dropped mid-call), so the record may have been published and
     * applied all the same.
     */
    static boolean outcomeUnknown(Throwable t) {
        if (!(t instanceof StatusRuntimeException sre) || detail(t) != null) {
            return false;
        }
        switch (sre.getStatus().getCode()) {
            case UNAVAILABLE:
            case CANCELLED:
            case UNKNOWN:
                return true;
            default:
                return false;
        }
    }

    /** Whether the Kafka exception for t is one a later call may not meet. */
    static boolean retriable(Exception e) {
        return e instanceof RetriableRemoteStorageException;
    }

    private static String describe(Status status, ErrorDetail d) {
        StringBuilder b = new StringBuilder("strata serve answered ").append(status.getCode());
        String desc = status.getDescription();
        if (desc != null && !desc.isEmpty()) {
            b.append(": ").append(desc);
        } else if (d != null && !d.getMessage().isEmpty()) {
            b.append(": ").append(d.getMessage());
        }
        if (d != null && d.getMetadataPartition() >= 0 && d.getOffset() >= 0
                && (d.getKind() == ErrorKind.ERROR_KIND_HALTED || d.getKind() == ErrorKind.ERROR_KIND_INCOMPLETE
                || d.getKind() == ErrorKind.ERROR_KIND_NOT_APPLIED)) {
            b.append(" (__remote_log_metadata partition ").append(d.getMetadataPartition())
                    .append(" offset ").append(d.getOffset()).append(')');
        }
        if (status.getCause() != null && (desc == null || desc.isEmpty())) {
            b.append(" (").append(status.getCause()).append(')');
        }
        return b.toString();
    }
}
