package io.github.stratalog.strata.kafka;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * The plugin's own settings, read from the map Kafka passes {@code configure()}: the broker's
 * {@code rlmm.config.*} properties with that prefix removed, plus {@code broker.id},
 * {@code log.dir}, {@code cluster.id} and the listener's
 * {@code remote.log.metadata.common.client.*} settings. Every entry, these included, is also
 * handed to {@code strata serve}, which reads the ones it knows by Kafka's names.
 */
final class StrataConfig {
    /** The strata command; "strata" found on PATH when unset. */
    static final String BINARY = "strata.binary";
    /** A running {@code strata serve} to connect to (a socket path, or tcp://127.0.0.1:PORT) instead of starting one. */
    static final String SOCKET = "strata.socket";
    /** Where {@code strata serve} keeps its store; {@code <log.dir>-strata-rlmm}, beside the broker's log directory, when unset. */
    static final String CACHE_DIR = "strata.cache.dir";
    /** How long a read (lookup, list, size, readiness) may take before it fails as retriable. */
    static final String REQUEST_TIMEOUT_MS = "strata.request.timeout.ms";
    /** How long close() waits for the child to exit after SIGTERM before it kills it. */
    static final String SHUTDOWN_TIMEOUT_MS = "strata.shutdown.timeout.ms";
    /** How long a started child has to answer on its socket before it is killed and started again. */
    static final String START_TIMEOUT_MS = "strata.start.timeout.ms";
    /** Kafka's: how long a write waits to be applied. The plugin's deadline for a write is this plus a margin. */
    static final String CONSUME_WAIT_MS = "remote.log.metadata.consume.wait.ms";
    /** Kafka's: how long its manager retries reaching Kafka at start. strata serve answers once it has, so the start timeout's default is this plus 30 s. */
    static final String INIT_RETRY_MAX_TIMEOUT_MS = "remote.log.metadata.initialization.retry.max.timeout.ms";
    /**
     * How many remoteLogSegmentMetadata answers the plugin keeps on the broker's heap (see
     * LookupCache), each about a kilobyte with its segment's metadata; 0 keeps none and asks
     * strata serve every time. Apart from strata serve's own cache (strata.cache.lookup.bytes).
     */
    static final String LOOKUP_CACHE_ENTRIES = "strata.lookup.cache.entries";
    /** LOOKUP_CACHE_ENTRIES when unset: about 10 MB of heap. */
    static final int DEFAULT_LOOKUP_CACHE_ENTRIES = 10_000;
    /**
     * How many CPUs a started strata serve runs Go code on at once (its GOMAXPROCS); 0, the
     * default, leaves it to Go (every CPU, or GOMAXPROCS from the broker's environment). One makes
     * a lookup faster: it then passes between the server's goroutines on one thread, where with
     * more Go wakes an idle thread for each call. But the child's start and first load then share
     * that CPU too, and a restart took longer (see README, "Using Strata with Apache Kafka").
     */
    static final String SERVE_GOMAXPROCS = "strata.serve.gomaxprocs";
    /** SERVE_GOMAXPROCS when unset. */
    static final int DEFAULT_SERVE_GOMAXPROCS = 0;
    static final String LOG_DIR = "log.dir";
    static final String BROKER_ID = "broker.id";

    /** Linux's limit on a Unix socket's path (sun_path, 108 bytes with its terminating NUL). */
    static final int MAX_SOCKET_PATH_BYTES = 107;

    final Map<String, String> properties;
    final String binary;
    final String socket; // null: start a child
    final Path cacheDir;
    final Duration requestTimeout;
    final Duration writeTimeout;
    final Duration shutdownTimeout;
    final Duration startTimeout;
    final int lookupCacheEntries;
    final int serveGomaxprocs; // 0: Go's default

    private StrataConfig(Map<String, String> properties) {
        this.properties = properties;
        this.binary = properties.getOrDefault(BINARY, "strata");
        String s = properties.get(SOCKET);
        this.socket = s == null || s.isBlank() ? null : s.trim();
        this.cacheDir = cacheDir(properties);
        this.requestTimeout = Duration.ofMillis(longProp(properties, REQUEST_TIMEOUT_MS, 30_000));
        // Kafka's own manager waits consume.wait.ms (default 2 minutes) for a write to come back
        // through the topic; strata serve answers within the same bound, and the margin lets its
        // own timeout status arrive before the plugin gives up on the call.
        this.writeTimeout = Duration.ofMillis(longProp(properties, CONSUME_WAIT_MS, 120_000) + 5_000);
        this.shutdownTimeout = Duration.ofMillis(longProp(properties, SHUTDOWN_TIMEOUT_MS, 30_000));
        this.startTimeout = Duration.ofMillis(longProp(properties, START_TIMEOUT_MS,
                longProp(properties, INIT_RETRY_MAX_TIMEOUT_MS, 120_000) + 30_000));
        this.lookupCacheEntries = count(properties, LOOKUP_CACHE_ENTRIES, DEFAULT_LOOKUP_CACHE_ENTRIES, "entries", "off");
        this.serveGomaxprocs = count(properties, SERVE_GOMAXPROCS, DEFAULT_SERVE_GOMAXPROCS, "CPUs", "Go's default");
    }

    /** The count named name, dflt when unset; 0 means what zero says. */
    private static int count(Map<String, String> props, String name, int dflt, String what, String zero) {
        String v = props.get(name);
        if (v == null || v.isBlank()) {
            return dflt;
        }
        int n;
        try {
            n = Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + "=" + v + ": not a number of " + what, e);
        }
        if (n < 0) {
            throw new IllegalArgumentException(name + "=" + v + ": must be 0 (" + zero + ") or more");
        }
        return n;
    }

    /** Sets what a started child's environment (env, inherited from the broker) should say: its GOMAXPROCS. */
    void childEnvironment(Map<String, String> env) {
        if (serveGomaxprocs > 0) {
            env.put("GOMAXPROCS", Integer.toString(serveGomaxprocs));
        }
    }

    /**
     * Reads the map Kafka passes configure(). Values are turned into strings as Kafka prints them
     * (broker.id comes as an Integer); null values are dropped.
     *
     * @throws IllegalArgumentException naming the property when a value is not valid
     */
    static StrataConfig from(Map<String, ?> configs) {
        Objects.requireNonNull(configs, "configs");
        Map<String, String> props = new TreeMap<>();
        configs.forEach((k, v) -> {
            if (k != null && v != null) {
                props.put(k, String.valueOf(v));
            }
        });
        return new StrataConfig(props);
    }

    /** Whether the plugin starts and supervises strata serve itself. */
    boolean startsChild() {
        return socket == null;
    }

    /**
     * The store's folder. Never inside a log directory: Kafka refuses to start when a log
     * directory holds anything but partition logs, so the default is a sibling of log.dir named
     * after it, {@code <log.dir>-strata-rlmm}, where strata serve puts it too.
     */
    private static Path cacheDir(Map<String, String> props) {
        String dir = props.get(CACHE_DIR);
        if (dir != null && !dir.isBlank()) {
            return Path.of(dir.trim()).toAbsolutePath();
        }
        String logDir = props.get(LOG_DIR);
        if (logDir == null || logDir.isBlank()) {
            throw new IllegalArgumentException("Strata's remote log metadata manager needs " + CACHE_DIR
                    + " (rlmm.config." + CACHE_DIR + ") or Kafka's " + LOG_DIR + " to place its store");
        }
        Path log = Path.of(logDir.trim()).toAbsolutePath().normalize();
        Path parent = log.getParent() == null ? log : log.getParent();
        return parent.resolve(log.getFileName() + "-strata-rlmm");
    }

    /**
     * The socket a started child listens on: beside the store, {@code <cache dir>.sock}, or in
     * shortDir when that path is too long for a Unix socket.
     */
    Path childSocket(Path shortDir) {
        Path p = sibling(".sock");
        if (p.toString().getBytes(StandardCharsets.UTF_8).length <= MAX_SOCKET_PATH_BYTES) {
            return p;
        }
        return shortDir.resolve("serve.sock");
    }

    /** Whether childSocket needs a short folder. */
    boolean socketTooLong() {
        return sibling(".sock").toString().getBytes(StandardCharsets.UTF_8).length > MAX_SOCKET_PATH_BYTES;
    }

    /** {@code <cache dir><suffix>}: the plugin's files sit beside the store, which is strata serve's alone. */
    Path sibling(String suffix) {
        return cacheDir.resolveSibling(cacheDir.getFileName() + suffix);
    }

    private static long longProp(Map<String, String> props, String name, long dflt) {
        String v = props.get(name);
        if (v == null || v.isBlank()) {
            return dflt;
        }
        long n;
        try {
            n = Long.parseLong(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + "=" + v + ": not a number of milliseconds", e);
        }
        if (n <= 0) {
            throw new IllegalArgumentException(name + "=" + v + ": must be positive");
        }
        return n;
    }
}
