package io.github.stratalog.strata.kafka;

import com.google.protobuf.Any;
import io.github.stratalog.strata.kafka.grpc.ErrorDetail;
import io.github.stratalog.strata.kafka.grpc.ErrorKind;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import org.apache.kafka.server.log.remote.storage.RemoteResourceNotFoundException;
import org.apache.kafka.server.log.remote.storage.RemoteStorageException;
import org.apache.kafka.server.log.remote.storage.RemoteStorageNotReadyException;
import org.apache.kafka.server.log.remote.storage.RetriableRemoteStorageException;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Each failure strata serve reports becomes the exception Kafka's RemoteLogManager expects. */
class ErrorsTest {
    private static StatusRuntimeException status(int code, ErrorKind kind, String msg) {
        com.google.rpc.Status.Builder b = com.google.rpc.Status.newBuilder().setCode(code).setMessage(msg);
        if (kind != null) {
            b.addDetails(Any.pack(ErrorDetail.newBuilder().setKind(kind).setMessage(msg)
                    .setMetadataPartition(3).setOffset(42).build()));
        }
        return StatusProto.toStatusRuntimeException(b.build());
    }

    @ParameterizedTest
    @CsvSource({
        "UNAVAILABLE, ERROR_KIND_NOT_READY, RemoteStorageNotReadyException",
        "FAILED_PRECONDITION, ERROR_KIND_HALTED, RemoteStorageException",
        "FAILED_PRECONDITION, ERROR_KIND_NOT_ASSIGNED, RemoteStorageException",
        "NOT_FOUND, ERROR_KIND_NOT_FOUND, RemoteResourceNotFoundException",
        "DEADLINE_EXCEEDED, ERROR_KIND_TIMEOUT, RetriableRemoteStorageException",
        "DEADLINE_EXCEEDED, ERROR_KIND_INCOMPLETE, RetriableRemoteStorageException",
        "FAILED_PRECONDITION, ERROR_KIND_NOT_APPLIED, RemoteStorageException",
        "INVALID_ARGUMENT, ERROR_KIND_INVALID_ARGUMENT, IllegalArgumentException",
        "UNAVAILABLE, ERROR_KIND_CLOSED, RetriableRemoteStorageException",
        "UNAVAILABLE, ERROR_KIND_KAFKA, RetriableRemoteStorageException",
        "INTERNAL, ERROR_KIND_INTERNAL, RemoteStorageException",
        // Without a detail, from gRPC itself: no connection, the plugin's own deadline.
        "UNAVAILABLE, , RetriableRemoteStorageException",
        "DEADLINE_EXCEEDED, , RetriableRemoteStorageException",
        "CANCELLED, , RetriableRemoteStorageException",
        "INTERNAL, , RemoteStorageException",
    })
    void mapping(Status.Code code, ErrorKind kind, String want) {
        Exception e = Errors.toKafka("lookup x", status(code.value(), kind, "because"));
        assertEquals(want, e.getClass().getSimpleName(), e.toString());
        assertTrue(e.getMessage().startsWith("lookup x: strata serve answered " + code), e.getMessage());
    }

    @ParameterizedTest
    @CsvSource({"ERROR_KIND_HALTED", "ERROR_KIND_NOT_APPLIED", "ERROR_KIND_INCOMPLETE"})
    void namesTheRecord(ErrorKind kind) {
        Exception e = Errors.toKafka("w", status(Status.Code.FAILED_PRECONDITION.value(), kind, "bad"));
        assertTrue(e.getMessage().contains("__remote_log_metadata partition 3 offset 42"), e.getMessage());
    }

    @org.junit.jupiter.api.Test
    void unknownSegmentIsNotFound() {
        com.google.rpc.Status st = com.google.rpc.Status.newBuilder().setCode(Status.Code.FAILED_PRECONDITION.value())
                .addDetails(Any.pack(ErrorDetail.newBuilder().setKind(ErrorKind.ERROR_KIND_NOT_APPLIED)
                        .setNotAppliedReason(io.github.stratalog.strata.kafka.grpc.NotAppliedReason.NOT_APPLIED_REASON_UNKNOWN_SEGMENT)
                        .build())).build();
        Exception e = Errors.toKafka("update", StatusProto.toStatusRuntimeException(st));
        assertEquals(RemoteResourceNotFoundException.class, e.getClass());
    }

    @org.junit.jupiter.api.Test
    void hierarchy() {
        // RemoteLogManager retries what extends RetriableRemoteStorageException: not-ready does.
        assertTrue(RetriableRemoteStorageException.class.isAssignableFrom(RemoteStorageNotReadyException.class));
        assertTrue(RemoteStorageException.class.isAssignableFrom(RemoteResourceNotFoundException.class));
    }
}
