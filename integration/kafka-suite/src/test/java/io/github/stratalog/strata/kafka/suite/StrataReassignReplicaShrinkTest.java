package io.github.stratalog.strata.kafka.suite;

import org.apache.kafka.tiered.storage.integration.ReassignReplicaShrinkTest;

/** Kafka's {@link ReassignReplicaShrinkTest} with Strata's manager. */
public class StrataReassignReplicaShrinkTest extends StrataHarness {
    public StrataReassignReplicaShrinkTest() {
        super(new ReassignReplicaShrinkTest());
    }
}
