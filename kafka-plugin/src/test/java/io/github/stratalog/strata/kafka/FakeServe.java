package io.github.stratalog.strata.kafka;

import com.google.protobuf.ByteString;
import io.github.stratalog.strata.kafka.grpc.AddRemoteLogSegmentMetadataRequest;
import io.github.stratalog.strata.kafka.grpc.AddRemoteLogSegmentMetadataResponse;
import io.github.stratalog.strata.kafka.grpc.HealthRequest;
import io.github.stratalog.strata.kafka.grpc.HealthResponse;
import io.github.stratalog.strata.kafka.grpc.IsReadyRequest;
import io.github.stratalog.strata.kafka.grpc.IsReadyResponse;
import io.github.stratalog.strata.kafka.grpc.OnPartitionLeadershipChangesRequest;
import io.github.stratalog.strata.kafka.grpc.OnPartitionLeadershipChangesResponse;
import io.github.stratalog.strata.kafka.grpc.Generation;
import io.github.stratalog.strata.kafka.grpc.RemoteLogMetadataServiceGrpc;
import io.github.stratalog.strata.kafka.grpc.WatchGenerationsRequest;
import io.github.stratalog.strata.kafka.grpc.WatchGenerationsResponse;
import io.github.stratalog.strata.kafka.grpc.RemoteLogSegmentMetadataRequest;
import io.github.stratalog.strata.kafka.grpc.RemoteLogSegmentMetadataResponse;
import io.github.stratalog.strata.kafka.grpc.TopicIdPartition;
import io.github.stratalog.strata.kafka.grpc.WatchReadinessRequest;
import io.github.stratalog.strata.kafka.grpc.WatchReadinessResponse;
import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.netty.shaded.io.netty.channel.ChannelOption;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.unix.DomainSocketAddress;
import io.grpc.stub.StreamObserver;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A stand-in for strata serve in the plugin's unit tests, run as the child process: it takes
 * strata serve's command line and its properties on stdin (writing them to
 * "received.properties" beside its socket), then opens its socket but, as strata serve while its
 * manager starts, holds every call until a file named "go" exists there (so a test controls when
 * it comes up). It answers Health and IsReady, keeps the last record added and returns it for any
 * lookup, appends each OnPartitionLeadershipChanges it gets, with its pid, to "leadership.log"
 * there, and each call's method, with its pid, to "calls.log" as it arrives (before any
 * hold). WatchReadiness sends every partition it was told of, ready, then each one told later.
 * Like strata serve with --notify-ready, it prints "serving SOCKET" on stdout once it listens.
 * Exits when its stdin closes.
 */
public final class FakeServe {
    private FakeServe() {
    }

    public static void main(String[] args) throws Exception {
        String socket = null;
        Path props = null; // null: stdin
        boolean exitOnEof = false;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "serve" -> {
                }
                case "--socket" -> socket = args[++i];
                case "--properties" -> props = args[++i].equals("-") ? null : Path.of(args[i]);
                case "--exit-on-stdin-eof" -> exitOnEof = true;
                case "--notify-ready" -> {
                    // It always says so.
                }
                default -> throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        if (socket == null) {
            System.err.println("want --socket");
            System.exit(2);
        }
        // The properties on stdin, up to the line #end, kept for the test in received.properties.
        Path dir = Path.of(socket).getParent();
        StringBuilder received = new StringBuilder();
        java.io.BufferedReader in = new java.io.BufferedReader(new java.io.InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line = in.readLine(); line != null && !line.equals("#end"); line = in.readLine()) {
            received.append(line).append('\n');
        }
        Path tmp = dir.resolve("received.properties.tmp");
        Files.writeString(tmp, received.toString());
        Files.move(tmp, dir.resolve("received.properties"), java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        if (exitOnEof) {
            Thread t = new Thread(() -> {
                try {
                    while (in.read() >= 0) {
                        // until EOF
                    }
                } catch (IOException e) {
                    // closed
                }
                System.exit(0);
            });
            t.setDaemon(true);
            t.start();
        }
        Path go = dir.resolve("go");
        Path calls = dir.resolve("calls.log");
        Path leadership = dir.resolve("leadership.log");
        long pid = ProcessHandle.current().pid();
        AtomicReference<ByteString> last = new AtomicReference<>();
        // Every partition in stripe 0; each add bumps it. The generation stream sends the first
        // picture and never a change, as a stream lagging without end: only the writes' replies
        // keep the plugin's lookups from answering from before its writes.
        java.util.concurrent.atomic.AtomicLong generation = new java.util.concurrent.atomic.AtomicLong(1);
        List<TopicIdPartition> told = new ArrayList<>(); // guarded by itself
        List<StreamObserver<WatchReadinessResponse>> watchers = new ArrayList<>(); // guarded by told
        RemoteLogMetadataServiceGrpc.RemoteLogMetadataServiceImplBase impl = new RemoteLogMetadataServiceGrpc.RemoteLogMetadataServiceImplBase() {
            @Override
            public void health(HealthRequest req, StreamObserver<HealthResponse> out) {
                out.onNext(HealthResponse.newBuilder().setServing(true).setVersion("fake").build());
                out.onCompleted();
            }

            @Override
            public void isReady(IsReadyRequest req, StreamObserver<IsReadyResponse> out) {
                out.onNext(IsReadyResponse.newBuilder().setReady(true).build());
                out.onCompleted();
            }

            @Override
            public void watchReadiness(WatchReadinessRequest req, StreamObserver<WatchReadinessResponse> out) {
                WatchReadinessResponse.Builder first = WatchReadinessResponse.newBuilder();
                synchronized (told) {
                    told.forEach(tp -> first.addPartitions(WatchReadinessResponse.Partition.newBuilder().setTopicIdPartition(tp).setReady(true)));
                    out.onNext(first.build());
                    watchers.add(out);
                }
            }

            @Override
            public void watchGenerations(WatchGenerationsRequest req, StreamObserver<WatchGenerationsResponse> out) {
                WatchGenerationsResponse.Builder first = WatchGenerationsResponse.newBuilder();
                for (int i = 0; i < 256; i++) {
                    first.addGenerations(Generation.newBuilder().setStripe(i).setGeneration(i == 0 ? generation.get() : 0));
                }
                out.onNext(first.build());
            }

            @Override
            public void addRemoteLogSegmentMetadata(AddRemoteLogSegmentMetadataRequest req,
                                                    StreamObserver<AddRemoteLogSegmentMetadataResponse> out) {
                last.set(req.getRecord());
                long g = generation.incrementAndGet();
                out.onNext(AddRemoteLogSegmentMetadataResponse.newBuilder()
                        .setGeneration(Generation.newBuilder().setStripe(0).setGeneration(g)).build());
                out.onCompleted();
            }

            @Override
            public void remoteLogSegmentMetadata(RemoteLogSegmentMetadataRequest req,
                                                 StreamObserver<RemoteLogSegmentMetadataResponse> out) {
                RemoteLogSegmentMetadataResponse.Builder b = RemoteLogSegmentMetadataResponse.newBuilder();
                long g = generation.get(); // before the state, as strata serve reads it
                ByteString r = last.get();
                if (r != null) {
                    // The last record answers every offset of every epoch.
                    b.setRecord(r).setValidFrom(Long.MIN_VALUE).setValidTo(Long.MAX_VALUE)
                            .setGeneration(Generation.newBuilder().setStripe(0).setGeneration(g));
                }
                out.onNext(b.build());
                out.onCompleted();
            }

            @Override
            public void onPartitionLeadershipChanges(OnPartitionLeadershipChangesRequest req,
                                                     StreamObserver<OnPartitionLeadershipChangesResponse> out) {
                WatchReadinessResponse.Builder change = WatchReadinessResponse.newBuilder();
                List<TopicIdPartition> all = new ArrayList<>(req.getLeaderPartitionsList());
                all.addAll(req.getFollowerPartitionsList());
                all.forEach(tp -> change.addPartitions(WatchReadinessResponse.Partition.newBuilder().setTopicIdPartition(tp).setReady(true)));
                synchronized (told) {
                    told.addAll(all);
                    watchers.removeIf(w -> {
                        try {
                            w.onNext(change.build());
                            return false;
                        } catch (RuntimeException e) {
                            return true; // the client went away
                        }
                    });
                }
                String line = pid + " leaders=" + req.getLeaderPartitionsCount()
                        + " followers=" + req.getFollowerPartitionsCount() + "\n";
                try {
                    Files.writeString(leadership, line, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
                } catch (IOException e) {
                    out.onError(e);
                    return;
                }
                out.onNext(OnPartitionLeadershipChangesResponse.getDefaultInstance());
                out.onCompleted();
            }
        };
        // The connections open now: at SIGTERM, "connections-at-stop" beside the socket says
        // whether the plugin's was still open a second later (strata serve's graceful stop waits
        // for its clients to close their connections).
        java.util.concurrent.atomic.AtomicInteger connections = new java.util.concurrent.atomic.AtomicInteger();
        EpollEventLoopGroup group = new EpollEventLoopGroup(1);
        Server server = NettyServerBuilder.forAddress(new DomainSocketAddress(socket))
                .channelType(EpollServerDomainSocketChannel.class)
                .bossEventLoopGroup(group).workerEventLoopGroup(group)
                // As the plugin's channel: a Unix socket has no SO_KEEPALIVE, and Netty warns.
                .withChildOption(ChannelOption.SO_KEEPALIVE, null)
                .addTransportFilter(new io.grpc.ServerTransportFilter() {
                    @Override
                    public io.grpc.Attributes transportReady(io.grpc.Attributes a) {
                        connections.incrementAndGet();
                        return a;
                    }

                    @Override
                    public void transportTerminated(io.grpc.Attributes a) {
                        connections.decrementAndGet();
                    }
                })
                .addService(io.grpc.ServerInterceptors.intercept(impl, new io.grpc.ServerInterceptor() {
                    @Override
                    public <Q, A> io.grpc.ServerCall.Listener<Q> interceptCall(io.grpc.ServerCall<Q, A> call, io.grpc.Metadata headers,
                                                                          io.grpc.ServerCallHandler<Q, A> next) {
                        try {
                            synchronized (calls) {
                                Files.writeString(calls, pid + " " + call.getMethodDescriptor().getBareMethodName() + "\n",
                                        StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
                            }
                            while (!Files.exists(go)) {
                                Thread.sleep(20);
                            }
                        } catch (IOException | InterruptedException e) {
                            throw new IllegalStateException(e);
                        }
                        return next.startCall(call, headers);
                    }
                })).build().start();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
                while (connections.get() > 0 && System.nanoTime() < deadline) {
                    Thread.sleep(5);
                }
                Files.writeString(dir.resolve("connections-at-stop"), Integer.toString(connections.get()));
            } catch (IOException | InterruptedException e) {
                // the test reports the missing file
            }
        }));
        System.out.println("serving " + socket);
        System.out.flush();
        server.awaitTermination();
    }
}
