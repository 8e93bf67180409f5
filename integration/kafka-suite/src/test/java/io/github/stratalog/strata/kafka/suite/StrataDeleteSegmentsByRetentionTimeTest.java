package io.github.stratalog.strata.kafka.suite;

import org.apache.kafka.tiered.storage.integration.DeleteSegmentsByRetentionTimeTest;

/** Kafka's {@link DeleteSegmentsByRetentionTimeTest} with Strata's manager. */
public class StrataDeleteSegmentsByRetentionTimeTest extends StrataHarness {
    public StrataDeleteSegmentsByRetentionTimeTest() {
        super(new DeleteSegmentsByRetentionTimeTest());
    }
}
