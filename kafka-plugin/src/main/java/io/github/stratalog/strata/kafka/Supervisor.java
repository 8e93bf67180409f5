package io.github.stratalog.strata.kafka;

import io.github.stratalog.strata.kafka.grpc.HealthRequest;
import io.github.stratalog.strata.kafka.grpc.HealthResponse;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Keeps a strata serve answering, and says which connection reaches it.
 *
 * <p>With a child (the default) it starts {@code strata serve}, waits for the line on its stdout
 * that says its socket accepts calls (checking for the socket as well, every 100 ms, in case no
 * line comes), then until it answers the listener's first calls (Health when there are none),
 * hands out its connection, and when the child exits starts it again after a backoff (0.2 s
 * doubling to 30 s, back to 0.2 s after a child that ran a minute). With a socket given
 * ({@code strata.socket}) it only watches that server's health. Either way, each time a server
 * starts answering the listener's {@code connected} runs before any call may use it (the
 * manager tells the new server which partitions it leads and follows), and while it answers
 * {@code tick} runs about every second.
 *
 * <p>{@link #current()} never blocks: it is the connection, or null while no server answers.
 * {@link #close()} stops the child (SIGTERM, then SIGKILL after the shutdown timeout) and waits
 * for it and for every thread this class started.
 */
final class Supervisor implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Supervisor.class);
    static final Duration MIN_BACKOFF = Duration.ofMillis(200);
    static final Duration MAX_BACKOFF = Duration.ofSeconds(30);
    static final Duration STABLE_AFTER = Duration.ofMinutes(1);
    private static final Duration POLL = Duration.ofMillis(100);
    /** How soon a child that said it serves, but did not answer, is asked again. */
    private static final Duration RETRY = Duration.ofMillis(10);
    private static final Duration HEALTH_TIMEOUT = Duration.ofSeconds(2);

    interface Listener {
        /**
         * A server answers on c, or (waitForReady) said it listens: calls may use c once this
         * returns. With waitForReady its calls wait, within their deadlines, for the channel to
         * connect and the server to answer. Returns whether one of its calls was answered (false
         * when it had nothing to tell); throwing means: not ready, check again.
         */
        boolean connected(Connection c, boolean waitForReady) throws Exception;

        /** About every second while c answers. */
        void tick(Connection c);
    }

    private final StrataConfig config;
    private final EventLoopGroup group;
    private final Listener listener;
    private final List<String> command; // null without a child
    private final Path socket;
    private final byte[] stdin; // the child's configuration
    private final Thread thread;
    private final List<Thread> pumps = new ArrayList<>();

    private volatile Connection current;
    private volatile boolean closed;
    private volatile Process process;
    private volatile int starts;

    /**
     * Prepares everything that can fail at once (the socket's folder), so that configure()
     * fails with the reason, then starts the supervising thread.
     */
    Supervisor(StrataConfig config, EventLoopGroup group, Listener listener) throws IOException {
        this.config = config;
        this.group = group;
        this.listener = listener;
        if (config.startsChild()) {
            Files.createDirectories(config.cacheDir.getParent());
            this.socket = config.socketTooLong()
                    ? config.childSocket(Files.createTempDirectory("strata-"))
                    : config.childSocket(null);
            this.command = ServeCommand.command(config, socket);
            this.stdin = ServeCommand.stdin(config);
        } else {
            this.socket = null;
            this.command = null;
            this.stdin = null;
        }
        this.thread = new Thread(this::run, "strata-serve-supervisor");
        this.thread.setDaemon(true);
        this.thread.start();
    }

    /** The connection to the server that answers now, or null. */
    Connection current() {
        return current;
    }

    /** How many times a child was started (0 without one). */
    int starts() {
        return starts;
    }

    /** The running child's process id, or -1. */
    long childPid() {
        Process p = process;
        return p == null || !p.isAlive() ? -1 : p.pid();
    }

    private void run() {
        try {
            if (command == null) {
                watchSocket();
            } else {
                superviseChild();
            }
        } catch (InterruptedException e) {
            // close()
        } catch (RuntimeException e) {
            LOG.error("Strata's supervisor of strata serve stopped on an unexpected error", e);
        }
    }

    private void superviseChild() throws InterruptedException {
        Duration backoff = MIN_BACKOFF;
        while (!closed) {
            long started = System.nanoTime();
            String why;
            try {
                why = runChildOnce();
            } catch (IOException e) {
                why = "could not start " + command.get(0) + ": " + e.getMessage();
            }
            if (closed) {
                return;
            }
            if (System.nanoTime() - started > STABLE_AFTER.toNanos()) {
                backoff = MIN_BACKOFF;
            }
            LOG.warn("strata serve {}; starting it again in {} ms", why, backoff.toMillis());
            sleep(backoff);
            backoff = backoff.multipliedBy(2).compareTo(MAX_BACKOFF) > 0 ? MAX_BACKOFF : backoff.multipliedBy(2);
        }
    }

    /** Runs one child until it exits; returns how it ended. */
    private String runChildOnce() throws IOException, InterruptedException {
        Files.deleteIfExists(socket); // a dead child's socket would refuse every connection
        ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(false);
        config.childEnvironment(pb.environment());
        Process p;
        synchronized (this) {
            if (closed) {
                return "not started: closing";
            }
            p = pb.start();
            process = p;
            starts++;
        }
        CountDownLatch serving = new CountDownLatch(1);
        pump(p.getInputStream(), "stdout", p.pid(), serving);
        pump(p.getErrorStream(), "stderr", p.pid(), null);
        try {
            // Written, not closed: the child stops when its stdin reaches EOF, which happens when
            // this process ends however it ends.
            p.getOutputStream().write(stdin);
            p.getOutputStream().flush();
        } catch (IOException e) {
            LOG.warn("Could not hand strata serve (pid {}) its configuration: {}", p.pid(), e.toString());
        }
        LOG.info("Started strata serve (pid {}) on {}", p.pid(), socket);
        Connection c = null;
        try {
            c = awaitServing(p, serving);
            if (c == null) {
                if (!p.isAlive()) {
                    return "(pid " + p.pid() + ") exited with status " + p.exitValue() + " before it answered";
                }
                if (closed) {
                    return "closing";
                }
                p.destroyForcibly();
                return "(pid " + p.pid() + ") did not answer on " + socket + " within " + config.startTimeout.toMillis() + " ms: killed it";
            }
            current = c;
            LOG.info("strata serve (pid {}) answers on {}", p.pid(), socket);
            while (!p.waitFor(1, TimeUnit.SECONDS)) {
                if (closed) {
                    // close() is stopping the child: wait for it here too.
                    continue;
                }
                listener.tick(c);
            }
            return "(pid " + p.pid() + ") exited with status " + p.exitValue();
        } finally {
            current = null;
            if (c != null) {
                c.close();
            }
        }
    }

    /**
     * Waits until the child answers the listener's first calls (see answers) and the listener
     * has taken the connection. Null when the child died, the start timeout passed or close() was called.
     */
    private Connection awaitServing(Process p, CountDownLatch serving) throws InterruptedException {
        long deadline = System.nanoTime() + config.startTimeout.toNanos();
        // The channel is made, and one call tried, while the child starts: the first channel
        // loads gRPC's and Netty's classes, which takes seconds on a busy broker (each broker's
        // plugin class loader loads its own), and would otherwise delay the child's first answer.
        // The call is not waited for: a child that already listens holds it until its manager
        // is up, and the listener's first calls go as soon as the child says it listens.
        Connection c = Connection.open(socket.toString(), group, config.lookupCacheEntries);
        c.future.withDeadlineAfter(HEALTH_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS).health(HealthRequest.getDefaultInstance());
        try {
            while (!closed && p.isAlive() && System.nanoTime() < deadline) {
                // The child's line wakes this at once; without one, the socket is looked for.
                boolean said = serving.await(POLL.toMillis(), TimeUnit.MILLISECONDS);
                if (said || Files.exists(socket)) {
                    c.channel.resetConnectBackoff();
                    if (answers(c, said)) {
                        Connection ready = c;
                        c = null;
                        return ready;
                    }
                    if (said) {
                        sleep(RETRY);
                    }
                }
            }
            return null;
        } finally {
            if (c != null) {
                c.close();
            }
        }
    }

    /**
     * Whether c's server answers, and the listener took it. Once the server has said it listens
     * (listening), the listener's calls go first, each waiting within its deadline for the
     * channel to connect and for the server, which holds calls until its manager is up: the
     * connection and the manager's start overlap, and no Health call comes between them and the
     * first real call. Health is asked only when the listener had nothing to tell, or the server
     * has not said it listens (a socket's server: its answer says whether it is up).
     */
    private boolean answers(Connection c, boolean listening) {
        try {
            if (!listening && !serving(c, false)) {
                return false;
            }
            if (!listener.connected(c, listening) && listening && !serving(c, true)) {
                return false;
            }
            return true;
        } catch (Exception e) {
            LOG.debug("strata serve on {} does not answer yet: {}", c, e.toString());
            c.channel.resetConnectBackoff();
            return false;
        }
    }

    /** Whether c's server answers Health as serving; with waitForReady the call waits for the channel to connect. */
    private static boolean serving(Connection c, boolean waitForReady) {
        var stub = c.blocking.withDeadlineAfter(HEALTH_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        HealthResponse h = (waitForReady ? stub.withWaitForReady() : stub).health(HealthRequest.getDefaultInstance());
        return h.getServing();
    }

    /** Without a child: the socket's server is the connection while it answers Health. */
    private void watchSocket() throws InterruptedException {
        Connection c = Connection.open(config.socket, group, config.lookupCacheEntries);
        try {
            while (!closed) {
                if (!answers(c, false)) {
                    sleep(Duration.ofMillis(500));
                    continue;
                }
                current = c;
                LOG.info("strata serve answers on {}", c);
                while (!closed && healthy(c)) {
                    listener.tick(c);
                    sleep(Duration.ofSeconds(1));
                }
                current = null;
                if (!closed) {
                    // A restarted server knows nothing of this broker's partitions: answers()
                    // runs connected() again before calls use it.
                    LOG.warn("strata serve on {} stopped answering; calls fail as retriable until it is back", c);
                }
            }
        } finally {
            current = null;
            c.close();
        }
    }

    private static boolean healthy(Connection c) {
        try {
            return serving(c, false);
        } catch (RuntimeException e) {
            return false;
        }
    }

    /**
     * Copies a child's output, line by line, to the broker's log; counts serving down at the
     * line that says the child serves, when serving is given.
     */
    private void pump(InputStream in, String stream, long pid, CountDownLatch serving) {
        Thread t = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    if (serving != null && line.startsWith(ServeCommand.SERVING_LINE)) {
                        serving.countDown();
                    }
                    LOG.info("[strata serve {} {}] {}", pid, stream, line);
                }
            } catch (IOException e) {
                // The child is gone.
            }
        }, "strata-serve-" + pid + "-" + stream);
        t.setDaemon(true);
        synchronized (pumps) {
            pumps.removeIf(x -> !x.isAlive());
            pumps.add(t);
        }
        t.start();
    }

    private void sleep(Duration d) throws InterruptedException {
        if (!closed) {
            Thread.sleep(d.toMillis());
        }
    }

    /** Stops the child and waits for it and for the threads; safe to call twice. */
    @Override
    public void close() {
        Process p;
        synchronized (this) {
            closed = true;
            p = process;
        }
        Connection c = current;
        current = null;
        boolean interrupted = false;
        try {
            if (c != null && command != null) {
                // Closed before the child is told to stop: strata serve's graceful stop waits
                // for its clients to close their connections, and a gRPC channel keeps an idle
                // one open after the server's GOAWAY, which held every stop for a second.
                // (The supervising thread closes it again when the child has exited.)
                c.close();
            }
            if (p != null && p.isAlive()) {
                // SIGTERM: strata serve finishes its calls and closes its store. Through the
                // handle, not Process.destroy(), which also closes the child's pipes: the pumps
                // must read its last lines (the store's close) until it exits.
                p.toHandle().destroy();
                if (!p.waitFor(config.shutdownTimeout.toMillis(), TimeUnit.MILLISECONDS)) {
                    LOG.warn("strata serve (pid {}) did not exit within {} ms of SIGTERM: killing it",
                            p.pid(), config.shutdownTimeout.toMillis());
                    p.destroyForcibly();
                    p.waitFor(10, TimeUnit.SECONDS);
                }
            }
            thread.interrupt();
            thread.join(TimeUnit.SECONDS.toMillis(30));
            List<Thread> ts;
            synchronized (pumps) {
                ts = new ArrayList<>(pumps);
            }
            for (Thread t : ts) {
                t.join(TimeUnit.SECONDS.toMillis(5));
            }
        } catch (InterruptedException e) {
            interrupted = true;
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
