package io.github.stratalog.strata.bench;

import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.utils.AppInfoParser;
import org.apache.kafka.server.log.remote.metadata.storage.BrokerReadyCallback;
import org.apache.kafka.server.log.remote.metadata.storage.TopicBasedRemoteLogMetadataManager;
import org.apache.kafka.server.log.remote.storage.RemoteLogMetadataManager;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentId;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentMetadata;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentMetadataUpdate;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentState;

import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * The Kafka side of Strata's benchmark: drives Apache Kafka's own TopicBasedRemoteLogMetadataManager
 * through its public interface, exactly the steps bench/internal/strataside runs through Strata's
 * rlmm, and prints what it measured as one JSON line on stdout.
 *
 * <p>The manager is any RemoteLogMetadataManager: system property strata.bench.manager names its
 * class (default Kafka's TopicBasedRemoteLogMetadataManager), which must be on the classpath; the
 * same code then measures Strata's plugin (io.github.stratalog.strata.kafka.StrataRemoteLogMetadataManager)
 * as Kafka's RemoteLogManager sees it. System properties strata.bench.config.KEY add KEY to the
 * manager's configuration (e.g. strata.bench.config.strata.binary).
 *
 * <pre>
 * load WORKLOAD DIR                              cold load, memory, lookups, restart
 * publish WORKLOAD DIR TOPIC_ID TOPIC PARTITION  publish latency on one new user partition
 * </pre>
 *
 * DIR is a fresh folder for the manager's log.dir. Timings start when the manager is created, as
 * a broker creates it, and end when every assigned user partition reports ready.
 */
public final class KafkaRlmmBench {
    /** The broker id the manager's clients are named after; any id works against one broker. */
    private static final int BROKER_ID = 1001;
    /** How long a manager may take to become ready before the run fails. */
    /** How long a cold load or restart may take: system property strata.bench.ready.timeout.s. */
    private static final Duration READY_TIMEOUT =
        Duration.ofSeconds(Long.getLong("strata.bench.ready.timeout.s", 15 * 60));
    /** The thread of Kafka's manager that consumes __remote_log_metadata. */
    private static final String CONSUMER_THREAD = "RLMMConsumerTask";
    /** slf4j-simple's level property. */
    private static final String LOG_LEVEL = "org.slf4j.simpleLogger.defaultLogLevel";
    /** The manager's class: system property strata.bench.manager. */
    private static final String MANAGER_CLASS =
        System.getProperty("strata.bench.manager", TopicBasedRemoteLogMetadataManager.class.getName());
    /** The prefix of system properties passed on to the manager's configuration. */
    private static final String CONFIG_PREFIX = "strata.bench.config.";

    private KafkaRlmmBench() {
    }

    public static void main(String[] args) {
        // Kafka's clients log their every step at INFO; warnings and errors are what a run needs
        // to show. Set before the first logger exists; -Dorg.slf4j.simpleLogger.defaultLogLevel wins.
        if (System.getProperty(LOG_LEVEL) == null) {
            System.setProperty(LOG_LEVEL, "warn");
        }
        if (args.length < 3) {
            usage();
        }
        try {
            run(args);
        } catch (Throwable t) {
            // The manager's client threads are not daemons: without an explicit exit a failed run
            // would hang instead of failing.
            System.err.println("KafkaRlmmBench " + String.join(" ", args) + " failed:");
            t.printStackTrace();
            System.exit(1);
        }
        // The manager's threads have ended with close(); exit explicitly all the same, so that a
        // lingering client thread cannot keep a finished run alive.
        System.exit(0);
    }

    private static void run(String[] args) throws Exception {
        Workload w = Workload.read(Path.of(args[1]));
        Path dir = Path.of(args[2]);
        Measure m = new Measure();
        switch (args[0]) {
            case "load" -> {
                if (args.length != 3) {
                    usage();
                }
                load(w, dir, m);
            }
            case "publish" -> {
                if (args.length != 6) {
                    usage();
                }
                publish(w, dir, Workload.partition(args[3], args[4], args[5], "command line"), m);
            }
            default -> usage();
        }
        m.info("kafka.version", AppInfoParser.getVersion());
        m.info("manager.class", MANAGER_CLASS);
        m.info("java.version", System.getProperty("java.runtime.version"));
        m.info("java.vm", System.getProperty("java.vm.name"));
        m.info("jvm.args", String.join(" ", ManagementFactory.getRuntimeMXBean().getInputArguments()));
        m.info("jvm.max.heap.bytes", Long.toString(Runtime.getRuntime().maxMemory()));
        System.out.println(m.toJson());
        System.out.flush();
    }

    private static void usage() {
        System.err.println("usage: KafkaRlmmBench load WORKLOAD DIR | publish WORKLOAD DIR TOPIC_ID TOPIC PARTITION");
        System.exit(2);
    }

    /** Workloads 2 to 5: cold load, peak memory, lookups, restart. */
    static void load(Workload w, Path dir, Measure m) throws Exception {
        long t0 = System.nanoTime();
        RemoteLogMetadataManager rlmm = start(w, dir, w.partitions);
        awaitReady(rlmm, w.partitions);
        long coldNs = System.nanoTime() - t0;
        m.metric("cold_load_ms", coldNs / 1e6);
        // Read before anything else runs: the peak so far is the cold load's (and the JVM's start).
        // A manager that serves from a child process (Strata's plugin and its strata serve) counts
        // the child's peak too: both are what the broker's host holds.
        long children = Measure.descendantsPeakRssBytes();
        m.metric("peak_rss_bytes", Measure.peakRssBytes() + children);
        m.metric("child_peak_rss_bytes", children);
        // G1 runs System.gc() as a full, stop-the-world collection: what is left is what the
        // manager holds.
        System.gc();
        m.metric("heap_after_gc_bytes", ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed());

        lookups(w, rlmm, m);

        rlmm.close();
        m.metric("disk_bytes", Measure.dirBytes(dir));
        long t1 = System.nanoTime();
        RemoteLogMetadataManager again = start(w, dir, w.partitions);
        awaitReady(again, w.partitions);
        m.metric("restart_ms", (System.nanoTime() - t1) / 1e6);
        again.close();
    }

    /**
     * Workload 4: segment-for-offset lookups of keys both sides draw alike (LookupKeys), first at
     * random, then as consumers reading through segments make them (ConsumerSteps lookups a
     * segment, from its start, a tenth of it a step).
     */
    static void lookups(Workload w, RemoteLogMetadataManager rlmm, Measure m) throws Exception {
        LookupKeys keys = new LookupKeys(w.lookupSeed);
        timeLookups(w, rlmm, m, () -> new long[] {keys.below(w.partitions.size()), keys.below(w.offsetsPerPartition())},
            "lookup_p50_ns", "lookup_p99_ns", "lookup.checksum");
        LookupKeys consumerKeys = new LookupKeys(w.lookupSeed);
        long[] current = new long[2];
        int[] step = {0};
        timeLookups(w, rlmm, m, () -> {
            if (step[0] == 0) {
                current[0] = consumerKeys.below(w.partitions.size());
                long offset = consumerKeys.below(w.offsetsPerPartition());
                current[1] = offset - offset % w.segmentSpan;
            }
            long[] key = {current[0], current[1] + step[0] * w.segmentSpan / CONSUMER_STEPS};
            step[0] = (step[0] + 1) % CONSUMER_STEPS;
            return key;
        }, "consumer_lookup_p50_ns", "consumer_lookup_p99_ns", "consumer.lookup.checksum");
    }

    /** Lookups a consumer makes in one segment, as bench/internal/workload.ConsumerSteps. */
    private static final int CONSUMER_STEPS = 10;

    static void timeLookups(Workload w, RemoteLogMetadataManager rlmm, Measure m,
            java.util.function.Supplier<long[]> next, String p50, String p99, String checksumInfo) throws Exception {
        long[] latencies = new long[w.lookups];
        long checksum = 0;
        for (int i = 0; i < w.lookupWarmup + w.lookups; i++) {
            long[] key = next.get();
            TopicIdPartition tp = w.partitions.get((int) key[0]);
            long offset = key[1];
            long t = System.nanoTime();
            Optional<RemoteLogSegmentMetadata> found = rlmm.remoteLogSegmentMetadata(tp, 0, offset);
            long took = System.nanoTime() - t;
            long want = offset - offset % w.segmentSpan;
            if (found.isEmpty() || found.get().startOffset() != want) {
                throw new IllegalStateException("lookup " + i + " of " + tp + " offset " + offset + ": want the segment starting at "
                        + want + ", got " + found.map(s -> Long.toString(s.startOffset())).orElse("none"));
            }
            if (i >= w.lookupWarmup) {
                latencies[i - w.lookupWarmup] = took;
                checksum += want;
            }
        }
        m.metric(p50, Measure.percentile(latencies, 0.50));
        m.metric(p99, Measure.percentile(latencies, 0.99));
        m.info(checksumInfo, Long.toString(checksum));
    }

    /** Workload 1: segments added, then finished, one call at a time, each waited for. */
    static void publish(Workload w, Path dir, TopicIdPartition tp, Measure m) throws Exception {
        List<TopicIdPartition> tps = List.of(tp);
        RemoteLogMetadataManager rlmm = start(w, dir, tps);
        awaitReady(rlmm, tps);
        long[] adds = new long[w.publishSegments];
        long[] finishes = new long[w.publishSegments];
        for (int i = 0; i < w.publishWarmup + w.publishSegments; i++) {
            long start = i * w.segmentSpan;
            long end = start + w.segmentSpan - 1;
            RemoteLogSegmentId id = new RemoteLogSegmentId(tp, Uuid.randomUuid());
            RemoteLogSegmentMetadata md = new RemoteLogSegmentMetadata(id, start, end, end, BROKER_ID,
                    System.currentTimeMillis(), (int) (w.segmentSpan * 100), Optional.empty(),
                    RemoteLogSegmentState.COPY_SEGMENT_STARTED, Map.of(0, start), true);
            long t0 = System.nanoTime();
            rlmm.addRemoteLogSegmentMetadata(md).get();
            long t1 = System.nanoTime();
            rlmm.updateRemoteLogSegmentMetadata(new RemoteLogSegmentMetadataUpdate(id, System.currentTimeMillis(),
                    Optional.empty(), RemoteLogSegmentState.COPY_SEGMENT_FINISHED, BROKER_ID)).get();
            long t2 = System.nanoTime();
            if (i >= w.publishWarmup) {
                adds[i - w.publishWarmup] = t1 - t0;
                finishes[i - w.publishWarmup] = t2 - t1;
            }
        }
        rlmm.close();
        m.metric("add_p50_ns", Measure.percentile(adds, 0.50));
        m.metric("add_p99_ns", Measure.percentile(adds, 0.99));
        m.metric("finish_p50_ns", Measure.percentile(finishes, 0.50));
        m.metric("finish_p99_ns", Measure.percentile(finishes, 0.99));
    }

    /**
     * Creates a manager as a broker's RemoteLogManager does: configure with the broker's settings,
     * tell it the broker is ready when it implements BrokerReadyCallback, as the RemoteLogManager
     * does (Kafka's manager starts its initialization thread then; Strata's plugin does not
     * implement it), then hand it the partitions this broker leads. The manager's log.dir is
     * DIR/log, so that anything it keeps beside its log directory (Strata's plugin keeps its store
     * in log.dir-strata-rlmm) stays in DIR.
     */
    static RemoteLogMetadataManager start(Workload w, Path dir, List<TopicIdPartition> leaders) throws Exception {
        Path logDir = dir.resolve("log");
        Files.createDirectories(logDir);
        Map<String, Object> cfg = new HashMap<>();
        cfg.put("remote.log.metadata.common.client.bootstrap.servers", w.brokers);
        cfg.put("broker.id", BROKER_ID);
        cfg.put("log.dir", logDir.toString());
        cfg.put("remote.log.metadata.topic.num.partitions", Integer.toString(w.metadataPartitions));
        // The harness's broker has one node; the topic exists already, these only keep the
        // manager's create-if-missing path consistent with it.
        cfg.put("remote.log.metadata.topic.replication.factor", "1");
        cfg.put("remote.log.metadata.topic.min.isr", "1");
        for (String name : System.getProperties().stringPropertyNames()) {
            if (name.startsWith(CONFIG_PREFIX)) {
                cfg.put(name.substring(CONFIG_PREFIX.length()), System.getProperty(name));
            }
        }
        RemoteLogMetadataManager rlmm = Class.forName(MANAGER_CLASS).asSubclass(RemoteLogMetadataManager.class)
                .getDeclaredConstructor().newInstance();
        rlmm.configure(cfg);
        if (rlmm instanceof BrokerReadyCallback callback) {
            callback.onBrokerReady();
        }
        rlmm.onPartitionLeadershipChanges(new HashSet<>(leaders), Set.of());
        return rlmm;
    }

    /**
     * Waits until every partition is ready. Kafka's manager offers no notification of readiness,
     * only isReady, so this polls: one partition at a time, every millisecond, which keeps the
     * polling cost to one map lookup a millisecond and the error of the measure under 1 ms.
     */
    static void awaitReady(RemoteLogMetadataManager rlmm, List<TopicIdPartition> tps) throws InterruptedException {
        long deadline = System.nanoTime() + READY_TIMEOUT.toNanos();
        boolean consumerSeen = false;
        long polls = 0;
        for (TopicIdPartition tp : tps) {
            while (!rlmm.isReady(tp)) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException(tp + " not ready after " + READY_TIMEOUT);
                }
                // A consumer thread that died (an OutOfMemoryError, say, when the JVM is not
                // told to exit on one) never makes a partition ready: fail now, not at the
                // deadline. Checked every 100 polls, to keep the measure's error small.
                if (++polls % 100 == 0) {
                    boolean alive = consumerThreadAlive();
                    if (consumerSeen && !alive) {
                        throw new IllegalStateException("Kafka's " + CONSUMER_THREAD + " thread died before " + tp + " was ready (see its error above)");
                    }
                    consumerSeen |= alive;
                }
                Thread.sleep(1);
            }
        }
    }

    static boolean consumerThreadAlive() {
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (t.getName().equals(CONSUMER_THREAD) && t.isAlive()) {
                return true;
            }
        }
        return false;
    }
}
