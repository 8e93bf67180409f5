package io.github.stratalog.strata.kafka.suite;

import org.apache.kafka.tiered.storage.integration.EnableRemoteLogOnTopicTest;

/** Kafka's {@link EnableRemoteLogOnTopicTest} with Strata's manager. */
public class StrataEnableRemoteLogOnTopicTest extends StrataHarness {
    public StrataEnableRemoteLogOnTopicTest() {
        super(new EnableRemoteLogOnTopicTest());
    }
}
