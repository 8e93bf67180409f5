package io.github.stratalog.strata.bench;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/** What a run measured, and how it is printed for strata-bench. */
final class Measure {
    private final Map<String, Double> metrics = new LinkedHashMap<>();
    private final Map<String, String> info = new LinkedHashMap<>();

    void metric(String name, double value) {
        metrics.put(name, value);
    }

    void info(String name, String value) {
        info.put(name, value);
    }

    /**
     * The p-th percentile (0 < p <= 1) by nearest rank: the smallest sample at or above a
     * fraction p of the samples. bench/internal/measure computes it the same way in Go.
     */
    static long percentile(long[] samples, double p) {
        long[] s = samples.clone();
        Arrays.sort(s);
        int rank = (int) Math.ceil(p * s.length);
        return s[Math.max(0, Math.min(s.length, rank) - 1)];
    }

    /**
     * The sum of the peak resident set sizes (VmHWM) of this process's descendants still running,
     * e.g. the strata serve child of Strata's plugin; 0 when there are none.
     */
    static long descendantsPeakRssBytes() throws IOException {
        long sum = 0;
        for (ProcessHandle p : (Iterable<ProcessHandle>) ProcessHandle.current().descendants()::iterator) {
            try {
                sum += peakRssBytes(Path.of("/proc", Long.toString(p.pid()), "status"));
            } catch (java.nio.file.NoSuchFileException e) {
                // The child ended between listing and reading: it holds no memory now.
            }
        }
        return sum;
    }

    /** The process's peak resident set size so far (VmHWM), in bytes. Linux only. */
    static long peakRssBytes() throws IOException {
        return peakRssBytes(Path.of("/proc/self/status"));
    }

    private static long peakRssBytes(Path status) throws IOException {
        for (String line : Files.readAllLines(status, StandardCharsets.UTF_8)) {
            if (line.startsWith("VmHWM:")) {
                String[] f = line.trim().split("\\s+");
                if (f.length == 3 && f[2].equals("kB")) {
                    return Long.parseLong(f[1]) * 1024;
                }
            }
        }
        throw new IOException(status + " has no VmHWM line in kB");
    }

    /** {"metrics":{...},"info":{...}} on one line: the format strata-bench reads from stdout. */
    String toJson() {
        StringBuilder b = new StringBuilder("{\"metrics\":{");
        String sep = "";
        for (Map.Entry<String, Double> e : metrics.entrySet()) {
            double v = e.getValue();
            if (Double.isNaN(v) || Double.isInfinite(v)) {
                throw new IllegalStateException("metric " + e.getKey() + " is " + v);
            }
            b.append(sep).append(quote(e.getKey())).append(':').append(v == Math.rint(v) ? Long.toString((long) v) : Double.toString(v));
            sep = ",";
        }
        b.append("},\"info\":{");
        sep = "";
        for (Map.Entry<String, String> e : info.entrySet()) {
            b.append(sep).append(quote(e.getKey())).append(':').append(quote(e.getValue()));
            sep = ",";
        }
        return b.append("}}").toString();
    }

    /** The bytes of every regular file under dir: what the manager keeps on disk. */
    static long dirBytes(java.nio.file.Path dir) throws java.io.IOException {
        try (java.util.stream.Stream<java.nio.file.Path> files = java.nio.file.Files.walk(dir)) {
            long n = 0;
            for (java.nio.file.Path f : (Iterable<java.nio.file.Path>) files::iterator) {
                if (java.nio.file.Files.isRegularFile(f)) {
                    n += java.nio.file.Files.size(f);
                }
            }
            return n;
        }
    }

    private static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }
}
