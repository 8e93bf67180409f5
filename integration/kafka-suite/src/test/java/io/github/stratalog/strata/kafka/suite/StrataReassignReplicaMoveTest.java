package io.github.stratalog.strata.kafka.suite;

import org.apache.kafka.tiered.storage.integration.ReassignReplicaMoveTest;

/** Kafka's {@link ReassignReplicaMoveTest} with Strata's manager. */
public class StrataReassignReplicaMoveTest extends StrataHarness {
    public StrataReassignReplicaMoveTest() {
        super(new ReassignReplicaMoveTest());
    }
}
