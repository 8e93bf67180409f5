package io.github.stratalog.strata.kafka;

import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentId;
import org.apache.kafka.server.log.remote.storage.RemoteLogSegmentMetadata;
import org.apache.kafka.server.log.remote.storage.RemoteStorageNotReadyException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The plugin's supervision of its child, against FakeServe run as the child: calls fail as
 * retriable, at once, while no server answers; the partitions Kafka assigned are told to every
 * new server; a killed child is started again; close() stops the child and waits for it.
 */
@Timeout(120)
class StrataRemoteLogMetadataManagerTest {
    @TempDir
    Path dir;

    private StrataRemoteLogMetadataManager rlmm;

    @AfterEach
    void tearDown() throws IOException {
        if (rlmm != null) {
            rlmm.close();
        }
    }

    /** A strata command that runs FakeServe with this JVM and the test's class path. */
    private Path fakeBinary() throws IOException {
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        Path script = dir.resolve("strata");
        Files.writeString(script, "#!/bin/sh\nexec '" + java + "' -XX:TieredStopAtLevel=1 -cp '"
                + System.getProperty("java.class.path") + "' " + FakeServe.class.getName() + " \"$@\"\n");
        Files.setPosixFilePermissions(script, PosixFilePermissions.fromString("rwx------"));
        return script;
    }

    private StrataRemoteLogMetadataManager configure() throws IOException {
        Map<String, Object> configs = new HashMap<>();
        configs.put("strata.binary", fakeBinary().toString());
        configs.put("log.dir", dir.resolve("data").toString());
        configs.put("broker.id", 7);
        configs.put("remote.log.metadata.common.client.bootstrap.servers", "127.0.0.1:9092");
        configs.put("strata.request.timeout.ms", "5000");
        configs.put("strata.start.timeout.ms", "60000");
        configs.put("strata.shutdown.timeout.ms", "10000");
        StrataRemoteLogMetadataManager m = new StrataRemoteLogMetadataManager();
        m.configure(configs);
        return m;
    }

    private static void waitUntil(String what, Duration timeout, BooleanSupplier cond) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                fail(what + ": not within " + timeout);
            }
            Thread.sleep(50);
        }
    }

    private List<String> leadershipLog() {
        try {
            return Files.readAllLines(dir.resolve("leadership.log"), StandardCharsets.UTF_8);
        } catch (IOException e) {
            return List.of();
        }
    }

    /** The methods of the calls FakeServe of pid received, in order. */
    private List<String> calls(long pid) {
        try {
            return Files.readAllLines(dir.resolve("calls.log"), StandardCharsets.UTF_8).stream()
                    .filter(l -> l.startsWith(pid + " ")).map(l -> l.substring(l.indexOf(' ') + 1)).toList();
        } catch (IOException e) {
            return List.of();
        }
    }

    @Test
    void superviseChild() throws Exception {
        rlmm = configure();
        TopicIdPartition leader = new TopicIdPartition(Uuid.randomUuid(), 0, "a");
        TopicIdPartition follower = new TopicIdPartition(Uuid.randomUuid(), 3, "b");
        RemoteLogSegmentMetadata segment = new RemoteLogSegmentMetadata(RemoteLogSegmentId.generateNew(leader),
                0, 99, 1_000, 7, 2_000, 4096, Map.of(0, 0L));

        // The child listens but holds every call (FakeServe waits for "go", as strata serve
        // for its manager): every call fails at once as retriable, readiness is false, and
        // leadership is kept for later.
        waitUntil("the child started", Duration.ofSeconds(30), () -> rlmm.supervisor().childPid() > 0);
        long t0 = System.nanoTime();
        assertThrows(RemoteStorageNotReadyException.class, () -> rlmm.addRemoteLogSegmentMetadata(segment));
        assertThrows(RemoteStorageNotReadyException.class, () -> rlmm.remoteLogSegmentMetadata(leader, 0, 5));
        assertThrows(RemoteStorageNotReadyException.class, () -> rlmm.listRemoteLogSegments(leader));
        assertFalse(rlmm.isReady(leader));
        rlmm.onPartitionLeadershipChanges(Set.of(leader), Set.of(follower));
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(2), "calls while down must not wait");

        // strata serve reads the broker's map on its stdin.
        Path props = dir.resolve("received.properties");
        waitUntil("the child reading its properties", Duration.ofSeconds(30), () -> Files.exists(props));
        String text = Files.readString(props);
        assertTrue(text.contains("remote.log.metadata.common.client.bootstrap.servers=127.0.0.1:9092\n"), text);
        assertTrue(text.contains("broker.id=7\n"), text);
        assertTrue(text.contains("strata.cache.dir=" + dir.resolve("data-strata-rlmm") + "\n"), text);

        // The plugin sends its first calls as soon as the child says it listens, and they wait
        // for it: the streams and the assignment, with no Health before them.
        long pid1 = rlmm.supervisor().childPid();
        waitUntil("the assignment reaching the held child", Duration.ofSeconds(30),
                () -> calls(pid1).contains("OnPartitionLeadershipChanges"));
        List<String> first = calls(pid1);
        assertFalse(first.subList(0, first.indexOf("OnPartitionLeadershipChanges")).contains("Health"),
                "a Health call before the assignment: " + first);
        assertTrue(first.contains("WatchReadiness"), "no readiness stream opened while the child started: " + first);
        assertFalse(rlmm.isReady(leader));
        assertThrows(RemoteStorageNotReadyException.class, () -> rlmm.remoteLogSegmentMetadata(leader, 0, 5));

        // Up: the partitions assigned while down are told before any call goes through.
        Files.createFile(dir.resolve("go"));
        waitUntil("the child answering", Duration.ofSeconds(30), () -> rlmm.isReady(leader));
        assertEquals(pid1, rlmm.supervisor().childPid());
        assertEquals(List.of(pid1 + " leaders=1 followers=1"), leadershipLog());
        rlmm.addRemoteLogSegmentMetadata(segment).get(10, TimeUnit.SECONDS);
        // Records cross as Kafka's serde writes them: the server's bytes decode to the same segment.
        assertEquals(Optional.of(segment), rlmm.remoteLogSegmentMetadata(leader, 0, 5));

        // Lookups are answered from the plugin's cache once its generation stream is live, and a
        // write's reply drops what is older than it before the write completes: FakeServe's
        // stream never tells of a change, so only that keeps the next lookup from the old answer.
        LookupCache cache = rlmm.supervisor().current().lookups;
        waitUntil("the generation stream live", Duration.ofSeconds(30), cache::live);
        assertEquals(Optional.of(segment), rlmm.remoteLogSegmentMetadata(leader, 0, 5));
        long hits = cache.hits();
        assertEquals(Optional.of(segment), rlmm.remoteLogSegmentMetadata(leader, 0, 6));
        assertEquals(hits + 1, cache.hits(), "a lookup within the answer's interval goes to the server");
        RemoteLogSegmentMetadata next = new RemoteLogSegmentMetadata(RemoteLogSegmentId.generateNew(leader),
                0, 99, 1_000, 7, 2_000, 4096, Map.of(0, 0L));
        rlmm.addRemoteLogSegmentMetadata(next).get(10, TimeUnit.SECONDS);
        assertEquals(Optional.of(next), rlmm.remoteLogSegmentMetadata(leader, 0, 5), "a lookup after a write answered from before it");

        // SIGKILL the child: calls fail as retriable until the plugin has started another, which
        // is told the partitions again.
        ProcessHandle child = ProcessHandle.of(pid1).orElseThrow();
        child.destroyForcibly();
        child.onExit().get(10, TimeUnit.SECONDS);
        waitUntil("the plugin noticing the child's death", Duration.ofSeconds(10), () -> rlmm.supervisor().current() == null);
        assertThrows(RemoteStorageNotReadyException.class, () -> rlmm.remoteLogSegmentMetadata(leader, 0, 5));
        waitUntil("a new child answering", Duration.ofSeconds(60), () -> rlmm.isReady(leader));
        long pid2 = rlmm.supervisor().childPid();
        assertNotEquals(pid1, pid2);
        assertEquals(2, rlmm.supervisor().starts());
        assertEquals(List.of(pid1 + " leaders=1 followers=1", pid2 + " leaders=1 followers=1"), leadershipLog());

        // A stopped partition is not told again.
        rlmm.onStopPartitions(Set.of(follower));

        // close() stops the child and waits for it.
        ProcessHandle child2 = ProcessHandle.of(pid2).orElseThrow();
        rlmm.close();
        assertFalse(child2.isAlive(), "close() returned with the child alive");
        // The plugin closed its connection before it stopped the child, which then has no
        // client to wait for.
        assertEquals("0", Files.readString(dir.resolve("connections-at-stop")),
                "connections open a second after the child's SIGTERM");
        assertFalse(rlmm.isReady(leader));
        assertThrows(RemoteStorageNotReadyException.class, () -> rlmm.remoteLogSegmentMetadata(leader, 0, 5));
        rlmm = null;
    }

    @Test
    void missingBinaryIsRetriedNotFatal() throws Exception {
        Map<String, Object> configs = new HashMap<>();
        configs.put("strata.binary", dir.resolve("no-such-strata").toString());
        configs.put("log.dir", dir.resolve("data").toString());
        rlmm = new StrataRemoteLogMetadataManager();
        rlmm.configure(configs);
        TopicIdPartition tp = new TopicIdPartition(Uuid.randomUuid(), 0, "a");
        assertThrows(RemoteStorageNotReadyException.class, () -> rlmm.highestOffsetForEpoch(tp, 0));
        assertFalse(rlmm.isReady(tp));
        rlmm.close();
        rlmm = null;
    }
}
