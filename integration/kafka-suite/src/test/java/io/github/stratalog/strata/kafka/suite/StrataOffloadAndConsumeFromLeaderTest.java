package io.github.stratalog.strata.kafka.suite;

import org.apache.kafka.tiered.storage.integration.OffloadAndConsumeFromLeaderTest;

/** Kafka's {@link OffloadAndConsumeFromLeaderTest} with Strata's manager. */
public class StrataOffloadAndConsumeFromLeaderTest extends StrataHarness {
    public StrataOffloadAndConsumeFromLeaderTest() {
        super(new OffloadAndConsumeFromLeaderTest());
    }
}
