package io.github.stratalog.strata.bench;

import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.Uuid;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The workload both sides run, read from the file strata-bench writes (bench/internal/workload in
 * Go, which documents the format): one "key value" setting a line, then one "partition TOPIC_ID
 * TOPIC PARTITION" line per user partition. Parsing is strict so that the two sides cannot
 * silently disagree about what they run.
 */
final class Workload {
    final String brokers;
    final int metadataPartitions;
    final int segmentsPerPartition;
    final long segmentSpan;
    final long events;
    final int lookups;
    final int lookupWarmup;
    final long lookupSeed;
    final int publishSegments;
    final int publishWarmup;
    final List<TopicIdPartition> partitions;

    private Workload(Map<String, String> settings, List<TopicIdPartition> partitions, Path file) {
        SettingReader r = new SettingReader(settings, file);
        this.brokers = r.string("brokers");
        this.metadataPartitions = r.positiveInt("metadata.partitions");
        this.segmentsPerPartition = r.positiveInt("segments.per.partition");
        this.segmentSpan = r.positiveLong("segment.span");
        this.events = r.positiveLong("events");
        this.lookups = r.positiveInt("lookups");
        this.lookupWarmup = r.nonNegativeInt("lookup.warmup");
        this.lookupSeed = Long.parseUnsignedLong(r.string("lookup.seed"));
        this.publishSegments = r.positiveInt("publish.segments");
        this.publishWarmup = r.nonNegativeInt("publish.warmup");
        r.rejectUnknown();
        if (partitions.isEmpty()) {
            throw new IllegalArgumentException(file + ": no partition lines");
        }
        if (events != 2L * partitions.size() * segmentsPerPartition) {
            throw new IllegalArgumentException(file + ": events " + events + " is not 2 x " + partitions.size()
                    + " partitions x " + segmentsPerPartition + " segments");
        }
        this.partitions = List.copyOf(partitions);
    }

    static Workload read(Path file) throws IOException {
        Map<String, String> settings = new HashMap<>();
        List<TopicIdPartition> partitions = new ArrayList<>();
        int n = 0;
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            n++;
            String trimmed = line.trim();
            if (trimmed.isEmpty() || trimmed.startsWith("#")) {
                continue;
            }
            String[] f = trimmed.split("\\s+");
            if (f[0].equals("partition")) {
                if (f.length != 4) {
                    throw new IllegalArgumentException(file + ":" + n + ": want \"partition TOPIC_ID TOPIC PARTITION\", got \"" + line + "\"");
                }
                partitions.add(partition(f[1], f[2], f[3], file + ":" + n));
                continue;
            }
            if (f.length != 2) {
                throw new IllegalArgumentException(file + ":" + n + ": want \"key value\", got \"" + line + "\"");
            }
            if (settings.put(f[0], f[1]) != null) {
                throw new IllegalArgumentException(file + ":" + n + ": " + f[0] + " set twice");
            }
        }
        return new Workload(settings, partitions, file);
    }

    /** A user partition from its three fields: Kafka's base64 topic id, the topic name, the partition number. */
    static TopicIdPartition partition(String topicId, String topic, String partition, String where) {
        try {
            return new TopicIdPartition(Uuid.fromString(topicId), Integer.parseInt(partition), topic);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(where + ": bad partition " + topicId + " " + topic + " " + partition + ": " + e.getMessage(), e);
        }
    }

    /** Offsets one user partition's segments cover: the lookups draw offsets below this. */
    long offsetsPerPartition() {
        return segmentSpan * segmentsPerPartition;
    }

    private static final class SettingReader {
        private final Map<String, String> settings;
        private final Path file;

        SettingReader(Map<String, String> settings, Path file) {
            this.settings = new HashMap<>(settings);
            this.file = file;
        }

        String string(String key) {
            String v = settings.remove(key);
            if (v == null) {
                throw new IllegalArgumentException(file + ": missing setting " + key);
            }
            return v;
        }

        long positiveLong(String key) {
            long v = parse(key);
            if (v <= 0) {
                throw new IllegalArgumentException(file + ": " + key + " must be positive, got " + v);
            }
            return v;
        }

        int positiveInt(String key) {
            return toInt(key, positiveLong(key));
        }

        int nonNegativeInt(String key) {
            long v = parse(key);
            if (v < 0) {
                throw new IllegalArgumentException(file + ": " + key + " must not be negative, got " + v);
            }
            return toInt(key, v);
        }

        private long parse(String key) {
            String v = string(key);
            try {
                return Long.parseLong(v);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(file + ": " + key + ": not a number: " + v, e);
            }
        }

        private int toInt(String key, long v) {
            if (v > Integer.MAX_VALUE) {
                throw new IllegalArgumentException(file + ": " + key + " too large: " + v);
            }
            return (int) v;
        }

        void rejectUnknown() {
            if (!settings.isEmpty()) {
                throw new IllegalArgumentException(file + ": unknown settings " + settings.keySet());
            }
        }
    }
}
