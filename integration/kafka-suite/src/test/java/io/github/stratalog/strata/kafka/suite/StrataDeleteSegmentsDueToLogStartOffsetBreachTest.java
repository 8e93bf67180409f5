package io.github.stratalog.strata.kafka.suite;

import org.apache.kafka.tiered.storage.integration.DeleteSegmentsDueToLogStartOffsetBreachTest;

/** Kafka's {@link DeleteSegmentsDueToLogStartOffsetBreachTest} with Strata's manager. */
public class StrataDeleteSegmentsDueToLogStartOffsetBreachTest extends StrataHarness {
    public StrataDeleteSegmentsDueToLogStartOffsetBreachTest() {
        super(new DeleteSegmentsDueToLogStartOffsetBreachTest());
    }
}
