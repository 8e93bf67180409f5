package io.github.stratalog.strata.kafka.suite;

import org.apache.kafka.tiered.storage.integration.AlterLogDirTest;

/** Kafka's {@link AlterLogDirTest} with Strata's manager. */
public class StrataAlterLogDirTest extends StrataHarness {
    public StrataAlterLogDirTest() {
        super(new AlterLogDirTest());
    }
}
