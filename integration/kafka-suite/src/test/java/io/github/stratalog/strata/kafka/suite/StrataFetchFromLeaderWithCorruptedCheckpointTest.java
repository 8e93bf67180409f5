package io.github.stratalog.strata.kafka.suite;

import org.apache.kafka.tiered.storage.integration.FetchFromLeaderWithCorruptedCheckpointTest;

import java.util.Properties;

/** Kafka's {@link FetchFromLeaderWithCorruptedCheckpointTest} with Strata's manager. */
public class StrataFetchFromLeaderWithCorruptedCheckpointTest extends FetchFromLeaderWithCorruptedCheckpointTest {
    @Override
    public Properties overridingProps() {
        return StrataProps.apply(super.overridingProps());
    }
}
