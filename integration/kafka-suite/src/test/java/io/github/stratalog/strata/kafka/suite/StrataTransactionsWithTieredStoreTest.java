package io.github.stratalog.strata.kafka.suite;

import org.apache.kafka.tiered.storage.integration.TransactionsWithTieredStoreTest;

import java.util.Properties;

/** Kafka's {@link TransactionsWithTieredStoreTest} with Strata's manager. */
public class StrataTransactionsWithTieredStoreTest extends TransactionsWithTieredStoreTest {
    @Override
    public Properties overridingProps() {
        return StrataProps.apply(super.overridingProps());
    }
}
