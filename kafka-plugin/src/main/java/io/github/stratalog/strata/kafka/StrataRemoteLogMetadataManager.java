package io.github.stratalog.strata.kafka;

import com.google.common.util.concurrent.FutureCallback;
import com.google.common.util.concurrent.Futures;
import com.google.common.util.concurrent.ListenableFuture;
import com.google.common.util.concurrent.MoreExecutors;
import com.google.protobuf.ByteString;
import io.github.stratalog.strata.kafka.grpc.AddRemoteLogSegmentMetadataRequest;
import io.github.stratalog.strata.kafka.grpc.Generation;
import io.github.stratalog.strata.kafka.grpc.HighestOffsetForEpochRequest;
import io.github.stratalog.strata.kafka.grpc.HighestOffsetForEpochResponse;
import io.github.stratalog.strata.kafka.grpc.IsReadyRequest;
import io.github.stratalog.strata.kafka.grpc.IsReadyResponse;
import io.github.stratalog.strata.kafka.grpc.ListRemoteLogSegmentsRequest;
import io.github.stratalog.strata.kafka.grpc.ListRemoteLogSegmentsResponse;
import io.github.stratalog.strata.kafka.grpc.NextSegmentWithTxnIndexRequest;
import io.github.stratalog.strata.kafka.grpc.NextSegmentWithTxnIndexResponse;
import io.github.stratalog.strata.kafka.grpc.OnPartitionLeadershipChangesRequest;
import io.github.stratalog.strata.kafka.grpc.OnStopPartitionsRequest;
import io.github.stratalog.strata.kafka.grpc.PutRemotePartitionDeleteMetadataRequest;
import io.github.stratalog.strata.kafka.grpc.RemoteLogMetadataServiceGrpc;
import io.github.stratalog.strata.kafka.grpc.RemoteLogSegmentMetadataRequest;
import io.github.stratalog.strata.kafka.grpc.RemoteLogSegmentMetadataResponse;
import io.github.stratalog.strata.kafka.grpc.RemoteLogSizeRequest;
import io.github.stratalog.strata.kafka.grpc.UpdateRemoteLogSegmentMetadataRequest;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollEventLoopGroup;
import io.grpc.netty.shaded.io.netty.util.concurrent.DefaultThreadFactory;
import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.server.log.remote.metadata.storage.serialization.RemoteLogMetadataSerde;
import org.apache.kafka.server.log.remote.storage.RemoteLogMetadata;
import org.apache.kafka.server.log.remote.storage.RemoteLogMetadataManager;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentId;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentMetadata;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentMetadataUpdate;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentState;
import org.apache.kafka.server.log.remote.storage.RemotePartitionDeleteMetadata;
import org.apache.kafka.server.log.remote.storage.RemoteStorageException;
import org.apache.kafka.server.log.remote.storage.RemoteStorageNotReadyException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * Apache Kafka's {@link RemoteLogMetadataManager} served by Strata: every call goes, over gRPC
 * on a Unix domain socket, to {@code strata serve}, which hosts Strata's manager for this
 * broker (its records in {@code __remote_log_metadata}, in Kafka's format, and its state in a
 * store that survives restarts, so that a restart does not replay the topic).
 *
 * <p>Configured with the broker's {@code rlmm.config.*} properties, which mean what they mean
 * to Kafka's own TopicBasedRemoteLogMetadataManager, plus Strata's:
 * <ul>
 *   <li>{@code strata.binary}: the strata command (default: strata on PATH);</li>
 *   <li>{@code strata.socket}: connect to a strata serve already running instead of starting one;</li>
 *   <li>{@code strata.cache.dir}: the store's folder (default: {@code <log.dir>-strata-rlmm}, beside
 *       the log directory, never in it);</li>
 *   <li>{@code strata.request.timeout.ms} (30000), {@code strata.start.timeout.ms} (60000),
 *       {@code strata.shutdown.timeout.ms} (30000).</li>
 * </ul>
 *
 * <p>While no strata serve answers (it is starting, or died and is being started again) every
 * call fails at once with {@link RemoteStorageNotReadyException}, which Kafka's RemoteLogManager
 * retries at its next run, and {@link #isReady} is false; no call waits past its deadline
 * (strata.request.timeout.ms for a read, remote.log.metadata.consume.wait.ms plus five seconds
 * for a write). The partitions this broker leads and follows are kept here and told again to
 * every new strata serve before it takes a call. Records cross the socket as Kafka's
 * {@link RemoteLogMetadataSerde} writes them to the topic.
 *
 * <p>Does not depend on {@code onBrokerReady()}: loaded through
 * {@code remote.log.metadata.manager.class.path}, Kafka's class-loader-aware wrapper does not
 * forward it.
 */
public class StrataRemoteLogMetadataManager implements RemoteLogMetadataManager {
    private static final Logger LOG = LoggerFactory.getLogger(StrataRemoteLogMetadataManager.class);

    private final RemoteLogMetadataSerde serde = new RemoteLogMetadataSerde();
    private final Assignment assignment = new Assignment();

    private StrataConfig config;
    private EpollEventLoopGroup group;
    private Supervisor supervisor;
    /** Looks up writes whose answer was lost (see write); shut down by close. */
    private ExecutorService lostReplies;
    /**
     * Runs the writes' callbacks, which complete the futures Kafka holds: not the event loop
     * (the channel's direct executor), where whatever a caller chained to a future would run
     * and could block every call. Shut down by close, once the channel is.
     */
    private ExecutorService callbacks;
    /**
     * Tells strata serve of leadership changes as they come, off Kafka's metadata thread (see
     * onPartitionLeadershipChanges); one thread, so they go in order. Shut down by close.
     */
    private ExecutorService assigner;
    private volatile boolean closed;

    public StrataRemoteLogMetadataManager() {
    }

    @Override
    public synchronized void configure(Map<String, ?> configs) {
        if (supervisor != null) {
            throw new IllegalStateException("StrataRemoteLogMetadataManager is configured already");
        }
        config = StrataConfig.from(configs);
        group = new EpollEventLoopGroup(1, new DefaultThreadFactory("strata-rlmm-grpc", true));
        lostReplies = Executors.newSingleThreadExecutor(new DefaultThreadFactory("strata-rlmm-lost-replies", true));
        callbacks = Executors.newCachedThreadPool(new DefaultThreadFactory("strata-rlmm-callbacks", true));
        assigner = Executors.newSingleThreadExecutor(new DefaultThreadFactory("strata-rlmm-assign", true));
        try {
            supervisor = new Supervisor(config, group, new Supervisor.Listener() {
                @Override
                public boolean connected(Connection c, boolean waitForReady) {
                    // The streams first: the readiness stream's picture is live (every
                    // partition not ready) by the time the assignment is taken, and the
                    // partitions' readiness arrives as it changes, instead of after a stream
                    // opened once the assignment returned.
                    c.watch();
                    return assignment.replay(c, config, waitForReady);
                }

                @Override
                public void tick(Connection c) {
                    assignment.retryIfNeeded(c, config);
                    // A readiness stream that ended (the server stopping it) is started again.
                    c.watch();
                }
            });
        } catch (IOException e) {
            group.shutdownGracefully(0, 5, TimeUnit.SECONDS);
            lostReplies.shutdownNow();
            callbacks.shutdownNow();
            assigner.shutdownNow();
            throw new UncheckedIOException("Strata's remote log metadata manager could not prepare " + config.cacheDir, e);
        }
        LOG.info("Strata's remote log metadata manager configured: {}", config.startsChild()
                ? "starting " + config.binary + " serve, store in " + config.cacheDir
                : "connecting to strata serve on " + config.socket);
    }

    /** The connection calls go to now, or null when there is none (see connection). */
    private Connection current() {
        Supervisor s = supervisor;
        return closed || s == null ? null : s.current();
    }

    /** The connection calls go to now; fails as retriable while no strata serve answers. */
    private Connection connection(String what) throws RemoteStorageNotReadyException {
        if (closed) {
            throw new RemoteStorageNotReadyException(what + ": Strata's remote log metadata manager is closed");
        }
        Supervisor s = supervisor;
        if (s == null) {
            throw new RemoteStorageNotReadyException(what + ": Strata's remote log metadata manager is not configured");
        }
        Connection c = s.current();
        if (c == null) {
            throw new RemoteStorageNotReadyException(what + ": strata serve is not running; it is being started");
        }
        return c;
    }

    // ---- writes ------------------------------------------------------------------------------

    @Override
    public CompletableFuture<Void> addRemoteLogSegmentMetadata(RemoteLogSegmentMetadata metadata) throws RemoteStorageException {
        String what = "addRemoteLogSegmentMetadata " + metadata.remoteLogSegmentId();
        Connection c = connection(what);
        return write(what, c, writeStub(c)
                .addRemoteLogSegmentMetadata(AddRemoteLogSegmentMetadataRequest.newBuilder()
                        .setRecord(encode(metadata)).build()), r -> r.hasGeneration() ? r.getGeneration() : null,
                () -> stateOf(what, metadata.topicIdPartition(), metadata.remoteLogSegmentId()).isPresent());
    }

    @Override
    public CompletableFuture<Void> updateRemoteLogSegmentMetadata(RemoteLogSegmentMetadataUpdate update) throws RemoteStorageException {
        String what = "updateRemoteLogSegmentMetadata " + update.remoteLogSegmentId() + " to " + update.state();
        Connection c = connection(what);
        return write(what, c, writeStub(c)
                .updateRemoteLogSegmentMetadata(UpdateRemoteLogSegmentMetadataRequest.newBuilder()
                        .setRecord(encode(update)).build()), r -> r.hasGeneration() ? r.getGeneration() : null,
                () -> {
                    Optional<RemoteLogSegmentState> now = stateOf(what, update.topicIdPartition(), update.remoteLogSegmentId());
                    // DELETE_SEGMENT_FINISHED removes the segment: gone means applied.
                    return update.state() == RemoteLogSegmentState.DELETE_SEGMENT_FINISHED
                            ? now.isEmpty() : now.equals(Optional.of(update.state()));
                });
    }

    @Override
    public CompletableFuture<Void> putRemotePartitionDeleteMetadata(RemotePartitionDeleteMetadata metadata) throws RemoteStorageException {
        String what = "putRemotePartitionDeleteMetadata " + metadata.topicIdPartition() + " " + metadata.state();
        Connection c = connection(what);
        // Kafka publishes partition-delete records again until the deletion is done: a lost
        // answer needs no lookup.
        return write(what, c, writeStub(c)
                .putRemotePartitionDeleteMetadata(PutRemotePartitionDeleteMetadataRequest.newBuilder()
                        .setRecord(encode(metadata)).build()), r -> r.hasGeneration() ? r.getGeneration() : null, null);
    }

    private RemoteLogMetadataServiceGrpc.RemoteLogMetadataServiceFutureStub writeStub(Connection c) {
        return c.future.withExecutor(callbacks).withDeadlineAfter(config.writeTimeout.toMillis(), TimeUnit.MILLISECONDS);
    }

    /** Whether a write's record is applied in the store strata serve holds now. */
    @FunctionalInterface
    private interface Applied {
        boolean check() throws RemoteStorageException;
    }

    /**
     * A future completed when the write is applied, or failed with the Kafka exception for its
     * failure. When the call fails with no answer (strata serve died mid-call), the record may
     * have been published and applied all the same, and a retry would then be refused, or, for
     * Kafka's copy of a segment, would upload it again beside the copy that finished: so the
     * store of the server that answers next is asked, until the write's deadline, whether the
     * record is there (applied, when given, says), and the write succeeds if it is.
     *
     * <p>The reply's generation (generation says which) is handed to c's lookup cache before the
     * future completes, so that no lookup after the write is answered from before it.
     */
    private <T> CompletableFuture<Void> write(String what, Connection c, ListenableFuture<T> call,
                                              java.util.function.Function<T, Generation> generation, Applied applied) {
        CompletableFuture<Void> f = new CompletableFuture<>();
        Futures.addCallback(call, new FutureCallback<T>() {
            @Override
            public void onSuccess(T result) {
                Generation g = generation.apply(result);
                if (g != null) {
                    c.lookups.advance(g);
                } else {
                    c.lookups.reset(); // a server that says no generation: keep nothing from before
                }
                f.complete(null);
            }

            @Override
            public void onFailure(Throwable t) {
                if (applied == null || !Errors.outcomeUnknown(t)) {
                    f.completeExceptionally(Errors.toKafka(what, t));
                    return;
                }
                try {
                    lostReplies.execute(() -> lookUp(what, applied, t, f));
                } catch (RejectedExecutionException e) {
                    f.completeExceptionally(Errors.toKafka(what, t));
                }
            }
        }, MoreExecutors.directExecutor());
        return f;
    }

    private void lookUp(String what, Applied applied, Throwable cause, CompletableFuture<Void> f) {
        long deadline = System.nanoTime() + config.writeTimeout.toNanos();
        while (!closed && System.nanoTime() < deadline) {
            try {
                if (applied.check()) {
                    LOG.info("{}: its answer was lost when strata serve stopped, and the record is applied: done", what);
                    // Applied in the store of the server that answers now, at a generation the
                    // reply would have said: keep nothing from before it.
                    Connection now = current();
                    if (now != null) {
                        now.lookups.reset();
                    }
                    f.complete(null);
                } else {
                    f.completeExceptionally(Errors.toKafka(what, cause));
                }
                return;
            } catch (RemoteStorageException e) {
                // No server yet, or one still reading the partition: ask again.
            } catch (RuntimeException e) {
                break;
            }
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        f.completeExceptionally(Errors.toKafka(what, cause));
    }

    /** The state of segment id of tp in the store, or empty when the store holds no such segment. */
    private Optional<RemoteLogSegmentState> stateOf(String what, TopicIdPartition tp, RemoteLogSegmentId id) throws RemoteStorageException {
        Iterator<RemoteLogSegmentMetadata> it = list(what + ": looking it up", ListRemoteLogSegmentsRequest.newBuilder()
                .setTopicIdPartition(Convert.toProto(tp)).build());
        while (it.hasNext()) {
            RemoteLogSegmentMetadata m = it.next();
            if (m.remoteLogSegmentId().equals(id)) {
                return Optional.of(m.state());
            }
        }
        return Optional.empty();
    }

    private ByteString encode(RemoteLogMetadata m) {
        return ByteString.copyFrom(serde.serialize(m));
    }

    private RemoteLogSegmentMetadata decodeSegment(String what, ByteString b) throws RemoteStorageException {
        return decodeSegment(() -> what, b);
    }

    private RemoteLogSegmentMetadata decodeSegment(Supplier<String> what, ByteString b) throws RemoteStorageException {
        RemoteLogMetadata m;
        try {
            m = serde.deserialize(b.toByteArray());
        } catch (RuntimeException e) {
            throw new RemoteStorageException(what.get() + ": strata serve answered a record Kafka cannot decode", e);
        }
        if (!(m instanceof RemoteLogSegmentMetadata s)) {
            throw new RemoteStorageException(what.get() + ": strata serve answered a " + m.getClass().getSimpleName()
                    + " where a RemoteLogSegmentMetadata was expected");
        }
        return s;
    }

    // ---- reads -------------------------------------------------------------------------------

    /** One unary read, named what, through the current connection within the request timeout. */
    private <T> T read(String what, java.util.function.Function<RemoteLogMetadataServiceGrpc.RemoteLogMetadataServiceBlockingStub, T> call)
            throws RemoteStorageException {
        return read(() -> what, call);
    }

    /** read, with the name made only when a failure needs it: lookups are a broker's hottest call. */
    private <T> T read(Supplier<String> what, java.util.function.Function<RemoteLogMetadataServiceGrpc.RemoteLogMetadataServiceBlockingStub, T> call)
            throws RemoteStorageException {
        Connection c = current();
        if (c == null) {
            c = connection(what.get()); // throws, saying why there is none, unless one just came
        }
        try {
            return call.apply(c.blocking.withDeadlineAfter(config.requestTimeout.toMillis(), TimeUnit.MILLISECONDS));
        } catch (RuntimeException e) {
            throw checked(what.get(), e);
        }
    }

    @Override
    public Optional<RemoteLogSegmentMetadata> remoteLogSegmentMetadata(TopicIdPartition tp, int epochForOffset, long offset)
            throws RemoteStorageException {
        Supplier<String> what = () -> "remoteLogSegmentMetadata " + tp + " epoch " + epochForOffset + " offset " + offset;
        Connection c = current();
        if (c == null) {
            c = connection(what.get()); // throws, saying why there is none, unless one just came
        }
        RemoteLogSegmentMetadata hit = c.lookups.get(tp, epochForOffset, offset);
        if (hit != null) {
            return Optional.of(hit);
        }
        long token = c.lookups.token();
        RemoteLogSegmentMetadataResponse r;
        try {
            r = c.blocking.withDeadlineAfter(config.requestTimeout.toMillis(), TimeUnit.MILLISECONDS)
                    .remoteLogSegmentMetadata(RemoteLogSegmentMetadataRequest.newBuilder()
                            .setTopicIdPartition(Convert.toProto(tp)).setEpochForOffset(epochForOffset).setOffset(offset).build());
        } catch (RuntimeException e) {
            throw checked(what.get(), e);
        }
        if (!r.hasRecord()) {
            return Optional.empty();
        }
        RemoteLogSegmentMetadata m = decodeSegment(what, r.getRecord());
        if (r.hasGeneration()) {
            c.lookups.put(token, tp, epochForOffset, r.getValidFrom(), r.getValidTo(), r.getGeneration(), m);
        }
        return Optional.of(m);
    }

    @Override
    public Optional<Long> highestOffsetForEpoch(TopicIdPartition tp, int leaderEpoch) throws RemoteStorageException {
        String what = "highestOffsetForEpoch " + tp + " epoch " + leaderEpoch;
        HighestOffsetForEpochResponse r = read(what, stub -> stub.highestOffsetForEpoch(HighestOffsetForEpochRequest.newBuilder()
                .setTopicIdPartition(Convert.toProto(tp)).setLeaderEpoch(leaderEpoch).build()));
        return r.hasOffset() ? Optional.of(r.getOffset()) : Optional.empty();
    }

    @Override
    public Iterator<RemoteLogSegmentMetadata> listRemoteLogSegments(TopicIdPartition tp) throws RemoteStorageException {
        return list("listRemoteLogSegments " + tp, ListRemoteLogSegmentsRequest.newBuilder()
                .setTopicIdPartition(Convert.toProto(tp)).build());
    }

    @Override
    public Iterator<RemoteLogSegmentMetadata> listRemoteLogSegments(TopicIdPartition tp, int leaderEpoch) throws RemoteStorageException {
        return list("listRemoteLogSegments " + tp + " epoch " + leaderEpoch, ListRemoteLogSegmentsRequest.newBuilder()
                .setTopicIdPartition(Convert.toProto(tp)).setLeaderEpoch(leaderEpoch).build());
    }

    /**
     * Reads the whole stream before returning: a failure halfway through is thrown here, where
     * Kafka expects it, rather than from the iterator, which cannot throw RemoteStorageException.
     */
    private Iterator<RemoteLogSegmentMetadata> list(String what, ListRemoteLogSegmentsRequest req) throws RemoteStorageException {
        Connection c = connection(what);
        List<ByteString> raw = new ArrayList<>();
        try {
            Iterator<ListRemoteLogSegmentsResponse> it = c.blocking
                    .withDeadlineAfter(config.requestTimeout.toMillis(), TimeUnit.MILLISECONDS)
                    .listRemoteLogSegments(req);
            while (it.hasNext()) {
                raw.addAll(it.next().getRecordsList());
            }
        } catch (RuntimeException e) {
            throw checked(what, e);
        }
        List<RemoteLogSegmentMetadata> out = new ArrayList<>(raw.size());
        for (ByteString b : raw) {
            out.add(decodeSegment(what, b));
        }
        return out.iterator();
    }

    @Override
    public long remoteLogSize(TopicIdPartition tp, int leaderEpoch) throws RemoteStorageException {
        String what = "remoteLogSize " + tp + " epoch " + leaderEpoch;
        return read(what, stub -> stub.remoteLogSize(RemoteLogSizeRequest.newBuilder()
                .setTopicIdPartition(Convert.toProto(tp)).setLeaderEpoch(leaderEpoch).build())).getSizeBytes();
    }

    @Override
    public Optional<RemoteLogSegmentMetadata> nextSegmentWithTxnIndex(TopicIdPartition tp, int epoch, long offset)
            throws RemoteStorageException {
        String what = "nextSegmentWithTxnIndex " + tp + " epoch " + epoch + " offset " + offset;
        NextSegmentWithTxnIndexResponse r = read(what, stub -> stub.nextSegmentWithTxnIndex(NextSegmentWithTxnIndexRequest.newBuilder()
                .setTopicIdPartition(Convert.toProto(tp)).setEpoch(epoch).setOffset(offset).build()));
        return r.hasRecord() ? Optional.of(decodeSegment(what, r.getRecord())) : Optional.empty();
    }

    /**
     * Whether tp's metadata is loaded, so that Kafka may copy, delete and serve it. False while
     * no strata serve answers or the answer does not come within the request timeout. Answered
     * from the server's readiness stream (see Readiness) while it is live, as Kafka's own
     * manager answers from the map its consumer thread keeps; otherwise asked of the server.
     */
    @Override
    public boolean isReady(TopicIdPartition tp) {
        Supervisor s = supervisor;
        Connection c = s == null || closed ? null : s.current();
        if (c == null) {
            return false;
        }
        Boolean known = c.readiness.ready(tp);
        if (known != null) {
            return known;
        }
        try {
            IsReadyResponse r = c.blocking.withDeadlineAfter(config.requestTimeout.toMillis(), TimeUnit.MILLISECONDS)
                    .isReady(IsReadyRequest.newBuilder().setTopicIdPartition(Convert.toProto(tp)).build());
            if (!r.getReady() && r.hasReason()) {
                LOG.debug("{} is not ready: {} {}", tp, r.getReason().getKind(), r.getReason().getMessage());
            }
            return r.getReady();
        } catch (RuntimeException e) {
            LOG.debug("isReady {}: {}", tp, e.toString());
            return false;
        }
    }

    /** The Kafka exception for a failed read; unchecked ones (IllegalArgumentException) are thrown as they are. */
    private static RemoteStorageException checked(String what, RuntimeException e) {
        Exception k = Errors.toKafka(what, e);
        if (k instanceof RemoteStorageException r) {
            return r;
        }
        if (k instanceof RuntimeException r) {
            throw r;
        }
        return new RemoteStorageException(what + ": " + k.getMessage(), k);
    }

    // ---- partitions --------------------------------------------------------------------------

    /**
     * Records the change and hands it to the assigner's thread, which tells strata serve at once
     * (and the supervisor's tick again within a second if that fails; the next strata serve
     * learns it before it takes a call). Telling it on the caller's thread would hold Kafka's
     * metadata thread while strata serve lists the metadata topic's offsets, up to the request
     * timeout when the cluster does not answer (a broker shutting down: 30 s per broker), where
     * Kafka's own manager only hands the change to its consumer thread. Until strata serve has
     * it, the partitions are not ready, as with Kafka's manager until its consumer caught up.
     */
    @Override
    public void onPartitionLeadershipChanges(Set<TopicIdPartition> leaderPartitions, Set<TopicIdPartition> followerPartitions) {
        assignment.change(leaderPartitions, followerPartitions);
        ExecutorService a = assigner;
        if (a == null) {
            return; // not configured: the first strata serve learns it when it connects
        }
        try {
            a.execute(() -> {
                Connection c = current();
                if (c != null) {
                    assignment.retryIfNeeded(c, config);
                }
            });
        } catch (RejectedExecutionException e) {
            // Closing: no strata serve will take it.
        }
    }

    @Override
    public void onStopPartitions(Set<TopicIdPartition> partitions) {
        assignment.stop(partitions);
        Supervisor s = supervisor;
        Connection c = s == null ? null : s.current();
        if (c == null) {
            return;
        }
        try {
            c.blocking.withDeadlineAfter(config.requestTimeout.toMillis(), TimeUnit.MILLISECONDS)
                    .onStopPartitions(OnStopPartitionsRequest.newBuilder()
                            .addAllPartitions(Convert.toProto(partitions)).build());
        } catch (RuntimeException e) {
            assignment.markDirty();
            LOG.warn("{}; told to strata serve again within a second",
                    Errors.toKafka("onStopPartitions", e).getMessage());
        }
    }

    /** Stops strata serve (when the plugin started it) and waits for it and every thread of the plugin. */
    @Override
    public void close() throws IOException {
        Supervisor s;
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            s = supervisor;
        }
        if (lostReplies != null) {
            // A lookup in flight gives up at its next check of closed.
            lostReplies.shutdownNow();
            try {
                lostReplies.awaitTermination(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        if (assigner != null) {
            // A call in flight is cancelled; nothing is lost, the server is stopping too.
            assigner.shutdownNow();
            try {
                assigner.awaitTermination(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        Connection last = s == null ? null : s.current();
        if (s != null) {
            s.close();
        }
        if (group != null) {
            group.shutdownGracefully(0, 5, TimeUnit.SECONDS).awaitUninterruptibly(10, TimeUnit.SECONDS);
        }
        if (callbacks != null) {
            // After the channel: every call has ended, and its callback has been handed over.
            callbacks.shutdown();
            try {
                callbacks.awaitTermination(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        if (last != null && last.lookups.enabled()) {
            LOG.info("Strata's remote log metadata manager closed; lookups answered from its cache since strata serve last started: {} of {}",
                    last.lookups.hits(), last.lookups.hits() + last.lookups.misses());
        } else {
            LOG.info("Strata's remote log metadata manager closed");
        }
    }

    /** For tests: the supervisor, null before configure(). */
    Supervisor supervisor() {
        return supervisor;
    }

    /**
     * The partitions this broker leads and follows, as Kafka last told them, so that a new strata
     * serve (a restarted child, or a socket's server that restarted) learns them before it takes
     * a call. Kafka tells a manager only of changes, so without this a restarted server would
     * serve none of the broker's partitions until their leadership changed again.
     */
    static final class Assignment {
        private final Map<TopicIdPartition, Boolean> leader = new LinkedHashMap<>(); // value: true leader, false follower
        private boolean dirty;
        /**
         * Held from taking the request to its answer: the assigner and the supervisor both send,
         * and a request taken earlier must not reach the server after a later one.
         */
        private final Object sending = new Object();

        /** Records a leadership change, to be told to strata serve by the supervisor's next tick. */
        synchronized void change(Collection<TopicIdPartition> leaders, Collection<TopicIdPartition> followers) {
            leaders.forEach(tp -> leader.put(tp, true));
            followers.forEach(tp -> leader.put(tp, false));
            dirty = true;
        }

        synchronized void stop(Collection<TopicIdPartition> partitions) {
            partitions.forEach(leader::remove);
        }

        synchronized void markDirty() {
            dirty = true;
        }

        synchronized OnPartitionLeadershipChangesRequest request() {
            OnPartitionLeadershipChangesRequest.Builder b = OnPartitionLeadershipChangesRequest.newBuilder();
            leader.forEach((tp, isLeader) -> {
                if (isLeader) {
                    b.addLeaderPartitions(Convert.toProto(tp));
                } else {
                    b.addFollowerPartitions(Convert.toProto(tp));
                }
            });
            dirty = false;
            return b.build();
        }

        /**
         * Tells c every partition, the call waiting for the channel to connect when
         * waitForReady (a new server's first call); returns whether there was any to tell.
         * Throws when c does not take it (the supervisor tries again).
         */
        boolean replay(Connection c, StrataConfig config, boolean waitForReady) {
            OnPartitionLeadershipChangesRequest req;
            synchronized (sending) {
                req = request();
                if (req.getLeaderPartitionsCount() + req.getFollowerPartitionsCount() == 0) {
                    return false;
                }
                try {
                    var stub = c.blocking.withDeadlineAfter(config.requestTimeout.toMillis(), TimeUnit.MILLISECONDS);
                    (waitForReady ? stub.withWaitForReady() : stub).onPartitionLeadershipChanges(req);
                } catch (RuntimeException e) {
                    markDirty();
                    throw e;
                }
            }
            LOG.info("Told strata serve on {} of {} leader and {} follower partitions", c,
                    req.getLeaderPartitionsCount(), req.getFollowerPartitionsCount());
            return true;
        }

        void retryIfNeeded(Connection c, StrataConfig config) {
            boolean again;
            synchronized (this) {
                again = dirty;
            }
            if (again) {
                try {
                    replay(c, config, false);
                } catch (RuntimeException e) {
                    LOG.warn("Telling strata serve this broker's partitions failed: {}", e.toString());
                }
            }
        }
    }
}
