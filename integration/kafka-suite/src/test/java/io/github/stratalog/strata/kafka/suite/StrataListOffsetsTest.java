package io.github.stratalog.strata.kafka.suite;

import org.apache.kafka.tiered.storage.integration.ListOffsetsTest;

import java.util.Properties;

/** Kafka's {@link ListOffsetsTest} with Strata's manager. */
public class StrataListOffsetsTest extends ListOffsetsTest {
    @Override
    public Properties overridingProps() {
        return StrataProps.apply(super.overridingProps());
    }
}
