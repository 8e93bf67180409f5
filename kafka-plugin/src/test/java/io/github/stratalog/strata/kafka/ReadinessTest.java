package io.github.stratalog.strata.kafka;

import io.github.stratalog.strata.kafka.grpc.RemoteLogMetadataServiceGrpc;
import io.github.stratalog.strata.kafka.grpc.WatchReadinessRequest;
import io.github.stratalog.strata.kafka.grpc.WatchReadinessResponse;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.Uuid;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Readiness against a server whose WatchReadiness stream the test drives: no answer before the
 * server's first picture, then the picture and each change, no answer again once the stream ends
 * (the plugin then asks the server), the stream started again on the next start(), and close()
 * ending it.
 */
@Timeout(60)
class ReadinessTest {
    private final TopicIdPartition a = new TopicIdPartition(Uuid.randomUuid(), 0, "a");
    private final TopicIdPartition b = new TopicIdPartition(Uuid.randomUuid(), 1, "b");
    private final BlockingQueue<ServerCallStreamObserver<WatchReadinessResponse>> streams = new LinkedBlockingQueue<>();
    private Server server;
    private ManagedChannel channel;

    @BeforeEach
    void setUp() throws Exception {
        String name = InProcessServerBuilder.generateName();
        server = InProcessServerBuilder.forName(name).directExecutor().addService(new RemoteLogMetadataServiceGrpc.RemoteLogMetadataServiceImplBase() {
            @Override
            public void watchReadiness(WatchReadinessRequest req, StreamObserver<WatchReadinessResponse> out) {
                streams.add((ServerCallStreamObserver<WatchReadinessResponse>) out);
            }
        }).build().start();
        channel = InProcessChannelBuilder.forName(name).directExecutor().build();
    }

    @AfterEach
    void tearDown() throws Exception {
        channel.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
        server.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
    }

    private static WatchReadinessResponse message(Object... tpAndReady) {
        WatchReadinessResponse.Builder m = WatchReadinessResponse.newBuilder();
        for (int i = 0; i < tpAndReady.length; i += 2) {
            m.addPartitions(WatchReadinessResponse.Partition.newBuilder()
                    .setTopicIdPartition(Convert.toProto((TopicIdPartition) tpAndReady[i])).setReady((Boolean) tpAndReady[i + 1]));
        }
        return m.build();
    }

    private static void waitUntil(String what, BooleanSupplier cond) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                fail(what + ": not within 30 s");
            }
            Thread.sleep(1);
        }
    }

    /**
     * A stream started before its server listens waits for the channel to connect rather than
     * failing at once: a new strata serve's streams open while the channel still connects, and
     * are live by the time its first call returns.
     */
    @Test
    void waitsForTheChannel() throws Exception {
        String name = InProcessServerBuilder.generateName();
        ManagedChannel early = InProcessChannelBuilder.forName(name).directExecutor().build();
        Server later = null;
        Readiness r = new Readiness();
        try {
            r.start(early); // no server of that name yet: the channel cannot connect
            later = InProcessServerBuilder.forName(name).directExecutor().addService(new RemoteLogMetadataServiceGrpc.RemoteLogMetadataServiceImplBase() {
                @Override
                public void watchReadiness(WatchReadinessRequest req, StreamObserver<WatchReadinessResponse> out) {
                    streams.add((ServerCallStreamObserver<WatchReadinessResponse>) out);
                }
            }).build().start();
            early.resetConnectBackoff();
            ServerCallStreamObserver<WatchReadinessResponse> s = streams.poll(30, TimeUnit.SECONDS);
            assertNotNull(s, "the stream started before the server failed instead of waiting for it");
            s.onNext(message(a, true));
            waitUntil("the picture", r::live);
            assertEquals(Boolean.TRUE, r.ready(a));
        } finally {
            r.close();
            early.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
            if (later != null) {
                later.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
            }
        }
    }

    @Test
    void followsTheStream() throws Exception {
        Readiness r = new Readiness();
        assertNull(r.ready(a), "no stream: the caller asks the server");
        r.start(channel);
        ServerCallStreamObserver<WatchReadinessResponse> s = streams.poll(30, TimeUnit.SECONDS);
        assertNull(r.ready(a), "before the server's first picture: the caller asks the server");

        s.onNext(message(a, true, b, false));
        waitUntil("the first picture", r::live);
        assertEquals(Boolean.TRUE, r.ready(a));
        assertEquals(Boolean.FALSE, r.ready(b));
        TopicIdPartition unknown = new TopicIdPartition(Uuid.randomUuid(), 0, "c");
        assertEquals(Boolean.FALSE, r.ready(unknown), "a partition the server does not hold is not ready");
        // Kafka's TopicIdPartition by id and partition: the same partition, however it is named.
        assertEquals(Boolean.TRUE, r.ready(new TopicIdPartition(a.topicId(), a.partition(), "a")));

        s.onNext(message(a, false, b, true));
        waitUntil("the change", () -> Boolean.TRUE.equals(r.ready(b)));
        assertEquals(Boolean.FALSE, r.ready(a));

        // A second start() while the stream is live opens no second stream.
        r.start(channel);
        assertNull(streams.poll(100, TimeUnit.MILLISECONDS));

        // The server ends the stream (it is stopping): no answer, then a new stream on start().
        s.onError(Status.UNAVAILABLE.withDescription("stopping").asRuntimeException());
        waitUntil("the end of the stream", () -> !r.live());
        assertNull(r.ready(b));
        r.start(channel);
        ServerCallStreamObserver<WatchReadinessResponse> s2 = streams.poll(30, TimeUnit.SECONDS);
        s2.onNext(message(b, true));
        waitUntil("the new stream's picture", r::live);
        assertEquals(Boolean.TRUE, r.ready(b));
        assertEquals(Boolean.FALSE, r.ready(a), "the old stream's picture is gone");

        // close() ends the stream, and nothing answers from it again.
        r.close();
        assertNull(r.ready(b));
        waitUntil("the server seeing the cancel", s2::isCancelled);
        r.start(channel);
        assertNull(streams.poll(100, TimeUnit.MILLISECONDS), "no stream after close()");
        assertFalse(r.live());
        assertTrue(s2.isCancelled());
    }
}
