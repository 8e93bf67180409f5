package io.github.stratalog.strata.kafka.suite;

import org.apache.kafka.tiered.storage.integration.PartitionsExpandTest;

/** Kafka's {@link PartitionsExpandTest} with Strata's manager. */
public class StrataPartitionsExpandTest extends StrataHarness {
    public StrataPartitionsExpandTest() {
        super(new PartitionsExpandTest());
    }
}
