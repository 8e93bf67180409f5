package io.github.stratalog.strata.kafka.suite;

import org.apache.kafka.tiered.storage.integration.DisableRemoteLogOnTopicTest;

/** Kafka's {@link DisableRemoteLogOnTopicTest} with Strata's manager. */
public class StrataDisableRemoteLogOnTopicTest extends StrataHarness {
    public StrataDisableRemoteLogOnTopicTest() {
        super(new DisableRemoteLogOnTopicTest());
    }
}
