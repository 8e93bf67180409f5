package io.github.stratalog.strata.kafka;

import io.github.stratalog.strata.kafka.grpc.RemoteLogMetadataServiceGrpc;
import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.netty.channel.ChannelOption;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.unix.DomainSocketAddress;

import java.net.URI;
import java.util.concurrent.TimeUnit;

/**
 * One gRPC channel to one strata serve, and its stub. A restarted child gets a new Connection,
 * so that nothing of a dead server's channel (its backoff, its calls) outlives it.
 */
final class Connection implements AutoCloseable {
    final String target;
    final ManagedChannel channel;
    final RemoteLogMetadataServiceGrpc.RemoteLogMetadataServiceBlockingStub blocking;
    final RemoteLogMetadataServiceGrpc.RemoteLogMetadataServiceFutureStub future;
    /** The server's partitions' readiness, once watch() has started its stream. */
    final Readiness readiness = new Readiness();
    /** remoteLogSegmentMetadata's answers from this server, once watch() has started its stream. */
    final LookupCache lookups;

    private Connection(String target, ManagedChannel channel, int lookupCacheEntries) {
        this.target = target;
        this.channel = channel;
        this.lookups = new LookupCache(lookupCacheEntries);
        this.blocking = RemoteLogMetadataServiceGrpc.newBlockingStub(channel);
        this.future = RemoteLogMetadataServiceGrpc.newFutureStub(channel);
    }

    /**
     * A channel to target: a Unix socket's path, or tcp://HOST:PORT. Unix sockets use the epoll
     * transport on group, which the caller owns. Its lookup cache holds up to
     * lookupCacheEntries answers (0: none).
     */
    static Connection open(String target, EventLoopGroup group, int lookupCacheEntries) {
        NettyChannelBuilder b;
        if (target.startsWith("tcp://")) {
            URI u = URI.create(target);
            if (u.getHost() == null || u.getPort() < 0) {
                throw new IllegalArgumentException(StrataConfig.SOCKET + "=" + target + ": want tcp://HOST:PORT or a socket path");
            }
            b = NettyChannelBuilder.forAddress(u.getHost(), u.getPort());
        } else {
            b = NettyChannelBuilder.forAddress(new DomainSocketAddress(target))
                    .eventLoopGroup(group)
                    .channelType(EpollDomainSocketChannel.class)
                    // gRPC sets SO_KEEPALIVE on every channel, and Netty warns at each connect
                    // that a Unix socket has no such option: null removes it.
                    .withOption(ChannelOption.SO_KEEPALIVE, null)
                    .overrideAuthority("localhost");
        }
        // Records are small, but a listing chunk may carry many.
        // Callbacks run on the event loop that read the answer, not handed to another thread:
        // what runs there is short (a future completed, a map updated). Blocking calls run their
        // callbacks on the calling thread whatever this says.
        ManagedChannel ch = b.usePlaintext().maxInboundMessageSize(64 << 20)
                .directExecutor()
                .build();
        return new Connection(target, ch, lookupCacheEntries);
    }

    /** Starts (or starts again, after they ended) the readiness and generation streams of this server. */
    void watch() {
        readiness.start(channel);
        lookups.start(channel);
    }

    @Override
    public void close() {
        readiness.close();
        lookups.close();
        channel.shutdownNow();
        try {
            channel.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public String toString() {
        return target;
    }
}
