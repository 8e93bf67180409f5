package io.github.stratalog.strata.kafka.suite;

import org.apache.kafka.tiered.storage.integration.ReassignReplicaExpandTest;

/** Kafka's {@link ReassignReplicaExpandTest} with Strata's manager. */
public class StrataReassignReplicaExpandTest extends StrataHarness {
    public StrataReassignReplicaExpandTest() {
        super(new ReassignReplicaExpandTest());
    }
}
