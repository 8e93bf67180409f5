package io.github.stratalog.strata.kafka.suite;

import org.apache.kafka.tiered.storage.integration.RollAndOffloadActiveSegmentTest;

import java.util.Properties;

/** Kafka's {@link RollAndOffloadActiveSegmentTest} with Strata's manager. */
public class StrataRollAndOffloadActiveSegmentTest extends RollAndOffloadActiveSegmentTest {
    @Override
    public Properties overridingProps() {
        return StrataProps.apply(super.overridingProps());
    }
}
