package io.github.stratalog.strata.kafka.suite;

import org.apache.kafka.tiered.storage.integration.DeleteTopicTest;

/** Kafka's {@link DeleteTopicTest} with Strata's manager. */
public class StrataDeleteTopicTest extends StrataHarness {
    public StrataDeleteTopicTest() {
        super(new DeleteTopicTest());
    }
}
