package io.github.stratalog.strata.kafka;

import io.github.stratalog.strata.kafka.grpc.RemoteLogMetadataServiceGrpc;
import io.github.stratalog.strata.kafka.grpc.WatchReadinessRequest;
import io.github.stratalog.strata.kafka.grpc.WatchReadinessResponse;
import io.grpc.ManagedChannel;
import io.grpc.stub.ClientResponseObserver;
import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.Uuid;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.ByteBuffer;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The readiness of the partitions a strata serve holds, kept up to date by its WatchReadiness
 * stream, so that isReady is a map lookup, as it is in Kafka's own manager (whose consumer thread
 * keeps the map), rather than a call over the socket per partition: a broker asks isReady of
 * every partition it leads before each copy and delete, and at a restart.
 *
 * <p>{@link #ready} answers only while the stream is live (it has sent the server's first
 * picture and not ended); otherwise it returns null and the caller asks the server. What it
 * answers is the server's readiness as of the last message: a change reaches it after the
 * stream's delay, as a record applied reaches Kafka's map after its consumer thread's. One
 * Readiness serves one connection; a new strata serve gets a new one.
 */
final class Readiness extends Watch<WatchReadinessRequest, WatchReadinessResponse> {
    private static final Logger LOG = LoggerFactory.getLogger(Readiness.class);

    /** A partition as the stream names it: Kafka's TopicIdPartition by topic id and partition. */
    record Key(Uuid topicId, int partition) {
        static Key of(TopicIdPartition tp) {
            return new Key(tp.topicId(), tp.partition());
        }

        static Key of(io.github.stratalog.strata.kafka.grpc.TopicIdPartition p) {
            ByteBuffer b = p.getTopicId().asReadOnlyByteBuffer();
            if (b.remaining() != 16) {
                throw new IllegalArgumentException("topic id of " + b.remaining() + " bytes, want 16");
            }
            return new Key(new Uuid(b.getLong(), b.getLong()), p.getPartition());
        }
    }

    private final Map<Key, Boolean> ready = new ConcurrentHashMap<>();
    private volatile boolean live;

    Readiness() {
        super("readiness stream", "isReady asks the server");
    }

    /** tp's readiness as the stream last said it, or null when the stream is not live. */
    Boolean ready(TopicIdPartition tp) {
        if (!live) {
            return null;
        }
        Boolean r = ready.get(Key.of(tp));
        // Checked again: the stream may have ended, and the map been cleared, since.
        return live ? Boolean.TRUE.equals(r) : null;
    }

    boolean live() {
        return live;
    }

    @Override
    protected void open(ManagedChannel channel, ClientResponseObserver<WatchReadinessRequest, WatchReadinessResponse> observer) {
        // Waits for the channel to connect (see Watch#start).
        RemoteLogMetadataServiceGrpc.newStub(channel).withWaitForReady()
                .watchReadiness(WatchReadinessRequest.getDefaultInstance(), observer);
    }

    @Override
    protected void takeLocked(WatchReadinessResponse r) {
        for (WatchReadinessResponse.Partition p : r.getPartitionsList()) {
            try {
                ready.put(Key.of(p.getTopicIdPartition()), p.getReady());
            } catch (IllegalArgumentException e) {
                LOG.warn("strata serve's readiness stream named a partition it cannot: {}", e.getMessage());
            }
        }
        // Live from the first message on: it holds every partition the server has.
        live = true;
    }

    @Override
    protected void endLocked() {
        live = false;
        ready.clear();
    }
}
