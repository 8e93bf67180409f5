package io.github.stratalog.strata.kafka;

import io.github.stratalog.strata.kafka.grpc.Generation;
import io.github.stratalog.strata.kafka.grpc.RemoteLogMetadataServiceGrpc;
import io.github.stratalog.strata.kafka.grpc.WatchGenerationsRequest;
import io.github.stratalog.strata.kafka.grpc.WatchGenerationsResponse;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentId;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentMetadata;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * LookupCache against a server whose WatchGenerations stream the test drives: answers only
 * within their interval, never once a newer generation of their stripe is known (from the
 * stream or a write's reply), none while the stream is not live, none kept from a lookup that
 * began before the cache was emptied, and at most its bound of entries.
 */
@Timeout(60)
class LookupCacheTest {
    private final TopicIdPartition a = new TopicIdPartition(Uuid.randomUuid(), 0, "a");
    private final TopicIdPartition b = new TopicIdPartition(Uuid.randomUuid(), 1, "b");
    private final BlockingQueue<ServerCallStreamObserver<WatchGenerationsResponse>> streams = new LinkedBlockingQueue<>();
    private Server server;
    private ManagedChannel channel;

    @BeforeEach
    void setUp() throws Exception {
        String name = InProcessServerBuilder.generateName();
        server = InProcessServerBuilder.forName(name).directExecutor().addService(new RemoteLogMetadataServiceGrpc.RemoteLogMetadataServiceImplBase() {
            @Override
            public void watchGenerations(WatchGenerationsRequest req, StreamObserver<WatchGenerationsResponse> out) {
                streams.add((ServerCallStreamObserver<WatchGenerationsResponse>) out);
            }
        }).build().start();
        channel = InProcessChannelBuilder.forName(name).directExecutor().build();
    }

    @AfterEach
    void tearDown() throws Exception {
        channel.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
        server.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
    }

    private static Generation gen(int stripe, long g) {
        return Generation.newBuilder().setStripe(stripe).setGeneration(g).build();
    }

    private static WatchGenerationsResponse message(Generation... gs) {
        WatchGenerationsResponse.Builder m = WatchGenerationsResponse.newBuilder();
        for (Generation g : gs) {
            m.addGenerations(g);
        }
        return m.build();
    }

    private static RemoteLogSegmentMetadata segment(TopicIdPartition tp, long start, long end) {
        return new RemoteLogSegmentMetadata(RemoteLogSegmentId.generateNew(tp), start, end, 1_000, 7, 2_000, 4096, Map.of(0, start));
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

    /** A stream started before its server listens waits for the channel to connect (see ReadinessTest). */
    @Test
    void waitsForTheChannel() throws Exception {
        String name = InProcessServerBuilder.generateName();
        ManagedChannel early = InProcessChannelBuilder.forName(name).directExecutor().build();
        Server later = null;
        LookupCache c = new LookupCache(10);
        try {
            c.start(early); // no server of that name yet: the channel cannot connect
            later = InProcessServerBuilder.forName(name).directExecutor().addService(new RemoteLogMetadataServiceGrpc.RemoteLogMetadataServiceImplBase() {
                @Override
                public void watchGenerations(WatchGenerationsRequest req, StreamObserver<WatchGenerationsResponse> out) {
                    streams.add((ServerCallStreamObserver<WatchGenerationsResponse>) out);
                }
            }).build().start();
            early.resetConnectBackoff();
            ServerCallStreamObserver<WatchGenerationsResponse> s = streams.poll(30, TimeUnit.SECONDS);
            assertTrue(s != null, "the stream started before the server failed instead of waiting for it");
            s.onNext(message(gen(0, 1)));
            waitUntil("live", c::live);
        } finally {
            c.close();
            early.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
            if (later != null) {
                later.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
            }
        }
    }

    /** A cache whose stream has sent its first picture: every stripe at generation 1. */
    private LookupCache live(int entries, ServerCallStreamObserver<WatchGenerationsResponse>[] stream) throws InterruptedException {
        LookupCache c = new LookupCache(entries);
        c.start(channel);
        stream[0] = streams.poll(30, TimeUnit.SECONDS);
        assertFalse(c.live());
        assertEquals(-1, c.token(), "a token while the stream is not live");
        WatchGenerationsResponse.Builder first = WatchGenerationsResponse.newBuilder();
        for (int i = 0; i < LookupCache.STRIPES; i++) {
            first.addGenerations(gen(i, 1));
        }
        stream[0].onNext(first.build());
        waitUntil("live", c::live);
        return c;
    }

    @SuppressWarnings("unchecked")
    private static ServerCallStreamObserver<WatchGenerationsResponse>[] holder() {
        return new ServerCallStreamObserver[1];
    }

    @Test
    void answersWithinItsIntervalOnly() throws Exception {
        var stream = holder();
        LookupCache c = live(100, stream);
        RemoteLogSegmentMetadata s = segment(a, 100, 199);
        c.put(c.token(), a, 0, 100, 149, gen(5, 1), s);
        for (long o : new long[]{100, 120, 149}) {
            assertSame(s, c.get(a, 0, o), "offset " + o);
        }
        assertNull(c.get(a, 0, 99));
        assertNull(c.get(a, 0, 150), "past the interval: the next segment may start there");
        assertNull(c.get(a, 1, 120), "another epoch");
        assertNull(c.get(b, 0, 120), "another partition");
        assertEquals(3, c.hits());
    }

    @Test
    void neverAnswersFromBeforeANewerGeneration() throws Exception {
        var stream = holder();
        LookupCache c = live(100, stream);
        RemoteLogSegmentMetadata s = segment(a, 0, 99);
        long token = c.token();
        c.put(token, a, 0, 0, 99, gen(5, 1), s);
        assertSame(s, c.get(a, 0, 10));

        // A change the stream tells of drops the stripe's older answers, and refuses them after.
        stream[0].onNext(message(gen(5, 2)));
        assertNull(c.get(a, 0, 10));
        c.put(token, a, 0, 0, 99, gen(5, 1), s);
        assertNull(c.get(a, 0, 10), "an answer read before a change the cache knows of was kept");
        c.put(token, a, 0, 0, 99, gen(5, 2), s);
        assertSame(s, c.get(a, 0, 10));
        // Another stripe's change leaves it.
        stream[0].onNext(message(gen(6, 9)));
        assertSame(s, c.get(a, 0, 10));

        // A write's reply does the same before the write completes (read-your-writes), even
        // while the stream has not told of the change yet.
        c.advance(gen(5, 3));
        assertNull(c.get(a, 0, 10), "a lookup after a write answered from before it");
        // A stream message older than what a write said lowers nothing.
        stream[0].onNext(message(gen(5, 2)));
        c.put(c.token(), a, 0, 0, 99, gen(5, 2), s);
        assertNull(c.get(a, 0, 10));
    }

    @Test
    void bypassedAndEmptiedWithoutALiveStream() throws Exception {
        var stream = holder();
        LookupCache c = live(100, stream);
        RemoteLogSegmentMetadata s = segment(a, 0, 99);
        long before = c.token();
        c.put(before, a, 0, 0, 99, gen(5, 1), s);
        assertSame(s, c.get(a, 0, 10));

        stream[0].onError(Status.UNAVAILABLE.asException());
        waitUntil("not live", () -> !c.live());
        assertNull(c.get(a, 0, 10));
        assertEquals(-1, c.token());
        c.put(before, a, 0, 0, 99, gen(5, 1), s);

        // Started again: live from the first message, with nothing from before.
        c.start(channel);
        stream[0] = streams.poll(30, TimeUnit.SECONDS);
        stream[0].onNext(message(gen(5, 1)));
        waitUntil("live again", c::live);
        assertNull(c.get(a, 0, 10), "an answer from before the stream ended");
        c.put(before, a, 0, 0, 99, gen(5, 1), s);
        assertNull(c.get(a, 0, 10), "an answer asked for before the stream ended was kept");
        assertEquals(0, c.size());

        // reset (a write whose reply was lost) refuses the lookups under way too.
        long t = c.token();
        c.reset();
        c.put(t, a, 0, 0, 99, gen(5, 1), s);
        assertNull(c.get(a, 0, 10));

        c.close();
        assertTrue(stream[0].isCancelled() || waitCancelled(stream[0]));
        assertFalse(c.live());
    }

    private static boolean waitCancelled(ServerCallStreamObserver<?> s) throws InterruptedException {
        waitUntil("the stream cancelled", s::isCancelled);
        return true;
    }

    @Test
    void boundedLeastRecentlyUsedFirst() throws Exception {
        var stream = holder();
        LookupCache c = live(2, stream);
        RemoteLogSegmentMetadata s1 = segment(a, 0, 99), s2 = segment(a, 100, 199), s3 = segment(a, 200, 299);
        long t = c.token();
        c.put(t, a, 0, 0, 99, gen(5, 1), s1);
        c.put(t, a, 0, 100, 199, gen(5, 1), s2);
        assertSame(s1, c.get(a, 0, 0)); // s2 is now the least recently used
        c.put(t, a, 0, 200, 299, gen(5, 1), s3);
        assertEquals(2, c.size());
        assertNull(c.get(a, 0, 150));
        assertSame(s1, c.get(a, 0, 50));
        assertSame(s3, c.get(a, 0, 250));
    }

    @Test
    void offKeepsNothingAndDoesNotWatch() throws Exception {
        LookupCache c = new LookupCache(0);
        c.start(channel);
        assertNull(streams.poll(200, TimeUnit.MILLISECONDS), "a cache that is off watched");
        c.put(c.token(), a, 0, 0, 99, gen(5, 1), segment(a, 0, 99));
        assertNull(c.get(a, 0, 10));
    }
}
