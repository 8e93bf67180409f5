package io.github.stratalog.strata.kafka;

import io.grpc.ManagedChannel;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One of strata serve's server streams watched on a connection: what Readiness and LookupCache
 * share. {@link #start} opens the stream unless one is under way; its messages go to
 * {@link #takeLocked}, and when it ends (the server stopped it, an error) or is closed,
 * {@link #endLocked} forgets what it said, so that nothing answers from a stream that may have
 * missed a change; the next start() watches again. Messages of a stream that is no longer the
 * current one are dropped. Both hooks run under {@link #lock}, which subclasses use for their
 * own state too.
 */
abstract class Watch<Req, Resp> {
    private static final Logger LOG = LoggerFactory.getLogger(Watch.class);

    protected final Object lock = new Object();
    private final String name;
    private final String meanwhile;
    private ClientCallStreamObserver<Req> call; // guarded by lock; null when not watching
    private boolean closed; // guarded by lock

    /** name is the stream's, for the log; meanwhile says what callers do while it is down. */
    Watch(String name, String meanwhile) {
        this.name = name;
        this.meanwhile = meanwhile;
    }

    /** Opens the stream on channel with observer, waiting for the channel to be ready (see start). */
    protected abstract void open(ManagedChannel channel, ClientResponseObserver<Req, Resp> observer);

    /** Takes a message of the current stream; under lock. */
    protected abstract void takeLocked(Resp message);

    /** The stream ended or is closed: forget what it said; under lock. */
    protected abstract void endLocked();

    /**
     * Starts watching on channel unless a watch is under way or close() was called. The stream
     * waits for the channel to connect rather than failing at once: a new strata serve's streams
     * open while the channel still connects to it (and the server holds them until its manager
     * is up), so that they are live by the time the first call returns; a connection closed
     * meanwhile cancels it.
     */
    void start(ManagedChannel channel) {
        synchronized (lock) {
            if (closed || call != null) {
                return;
            }
            open(channel, new Observer());
        }
    }

    /** Stops watching for good. */
    void close() {
        ClientCallStreamObserver<Req> c;
        synchronized (lock) {
            closed = true;
            c = call;
            call = null;
            endLocked();
        }
        if (c != null) {
            c.cancel("the connection is closing", null);
        }
    }

    private final class Observer implements ClientResponseObserver<Req, Resp> {
        private ClientCallStreamObserver<Req> self;

        @Override
        public void beforeStart(ClientCallStreamObserver<Req> requestStream) {
            self = requestStream;
            synchronized (lock) {
                call = requestStream;
            }
        }

        @Override
        public void onNext(Resp message) {
            synchronized (lock) {
                if (call == self) {
                    takeLocked(message);
                }
            }
        }

        @Override
        public void onError(Throwable t) {
            ended("failed: " + t);
        }

        @Override
        public void onCompleted() {
            ended("ended");
        }

        private void ended(String how) {
            synchronized (lock) {
                if (call != self) {
                    return; // closed, or a newer watch
                }
                call = null;
                endLocked();
            }
            LOG.debug("strata serve's {} {}; {} until it is back", name, how, meanwhile);
        }
    }
}
