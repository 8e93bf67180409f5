package io.github.stratalog.strata.kafka.suite;

import org.apache.kafka.tiered.storage.integration.DeleteSegmentsByRetentionSizeTest;

/** Kafka's {@link DeleteSegmentsByRetentionSizeTest} with Strata's manager. */
public class StrataDeleteSegmentsByRetentionSizeTest extends StrataHarness {
    public StrataDeleteSegmentsByRetentionSizeTest() {
        super(new DeleteSegmentsByRetentionSizeTest());
    }
}
