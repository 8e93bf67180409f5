package io.github.stratalog.strata.kafka.suite;

import org.apache.kafka.server.purgatory.DelayedRemoteFetch;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Prints, after every test of either side, how many of the brokers' delayed remote fetches
 * expired during it: a remote read that outlasts remote.fetch.max.wait.ms (500 ms) is answered
 * without its records, and the consumer fetches the same offset again, which reads the segment
 * from remote storage a second time. Kafka's tests count those reads (ConsumeAction's
 * FETCH_SEGMENT assertion), so a count one too high next to an expiry here is that retry, not a
 * lookup that answered another segment.
 *
 * <p>Registered for every class of the run through junit-platform.properties (extension
 * autodetection); Kafka's meter is one per JVM, shared by the brokers of a test.
 */
public final class RemoteFetchExpiries implements BeforeEachCallback, AfterEachCallback {
    private static final ExtensionContext.Namespace NS = ExtensionContext.Namespace.create(RemoteFetchExpiries.class);
    /** The line kafka-suite.sh sums per class. */
    static final String PREFIX = "[strata-suite] delayed remote fetches expired: ";

    @Override
    public void beforeEach(ExtensionContext context) {
        context.getStore(NS).put("before", DelayedRemoteFetch.expiredRequestCount());
    }

    @Override
    public void afterEach(ExtensionContext context) {
        Long before = context.getStore(NS).get("before", Long.class);
        long n = DelayedRemoteFetch.expiredRequestCount() - (before == null ? 0 : before);
        System.out.println(PREFIX + n + " in " + context.getRequiredTestClass().getSimpleName() + " "
                + context.getDisplayName() + (context.getExecutionException().isPresent() ? " (failed)" : ""));
    }
}
