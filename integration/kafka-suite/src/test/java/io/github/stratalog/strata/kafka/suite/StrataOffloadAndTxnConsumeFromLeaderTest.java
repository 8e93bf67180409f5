package io.github.stratalog.strata.kafka.suite;

import org.apache.kafka.tiered.storage.integration.OffloadAndTxnConsumeFromLeaderTest;

/** Kafka's {@link OffloadAndTxnConsumeFromLeaderTest} with Strata's manager. */
public class StrataOffloadAndTxnConsumeFromLeaderTest extends StrataHarness {
    public StrataOffloadAndTxnConsumeFromLeaderTest() {
        super(new OffloadAndTxnConsumeFromLeaderTest());
    }
}
