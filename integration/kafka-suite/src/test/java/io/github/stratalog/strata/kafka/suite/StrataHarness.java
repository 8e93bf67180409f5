package io.github.stratalog.strata.kafka.suite;

import org.apache.kafka.common.replica.ReplicaSelector;
import org.apache.kafka.server.config.ReplicationConfigs;
import org.apache.kafka.server.config.ServerLogConfigs;
import org.apache.kafka.tiered.storage.TieredStorageTestBuilder;
import org.apache.kafka.tiered.storage.TieredStorageTestHarness;
import org.apache.kafka.tiered.storage.utils.TieredStorageTestUtils;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.util.Objects;
import java.util.Optional;
import java.util.Properties;

/**
 * One of Kafka's tiered-storage test classes, run with Strata's manager. Kafka declares most
 * of them final, so this is a harness of its own that takes everything that makes the test what
 * it is from an instance of Kafka's class: its cluster size, its metadata partitions, its
 * replica selector, its consumer settings, its test specification, and the broker properties it
 * adds to the harness's; then changes only the metadata manager (StrataProps).
 *
 * <p>Kafka's instance is never set up: only those methods are called on it, through reflection
 * because they are protected.
 */
public abstract class StrataHarness extends TieredStorageTestHarness {
    private final TieredStorageTestHarness kafka;

    protected StrataHarness(TieredStorageTestHarness kafka) {
        this.kafka = Objects.requireNonNull(kafka);
    }

    @Override
    public int brokerCount() {
        return kafka.brokerCount();
    }

    @Override
    protected int numRemoteLogMetadataPartitions() {
        return (Integer) call("numRemoteLogMetadataPartitions");
    }

    @Override
    @SuppressWarnings("unchecked")
    protected Optional<Class<ReplicaSelector>> readReplicaSelectorClass() {
        return (Optional<Class<ReplicaSelector>>) call("readReplicaSelectorClass");
    }

    @Override
    protected void overrideConsumerConfig(Properties consumerConfig) {
        call("overrideConsumerConfig", consumerConfig);
    }

    @Override
    protected void writeTestSpecifications(TieredStorageTestBuilder builder) {
        call("writeTestSpecifications", builder);
    }

    @Override
    public Properties overridingProps() {
        Properties p = super.overridingProps();
        p.putAll(kafkaOwnAdditions());
        return StrataProps.apply(p);
    }

    /**
     * The broker properties Kafka's class sets beyond the harness's (OffloadAndTxnConsumeFromLeaderTest's
     * index cache size): its overridingProps() less what the harness alone sets for the same
     * cluster, less the temporary folders, which differ at every call.
     */
    private Properties kafkaOwnAdditions() {
        Properties theirs = kafka.overridingProps();
        Properties harness = TieredStorageTestUtils.createPropsForRemoteStorage("", "", brokerCount(),
                numRemoteLogMetadataPartitions(), new Properties());
        readReplicaSelectorClass().ifPresent(c -> harness.put(ReplicationConfigs.REPLICA_SELECTOR_CLASS_CONFIG, c.getName()));
        Properties add = new Properties();
        for (String k : theirs.stringPropertyNames()) {
            if (k.equals(ServerLogConfigs.LOG_DIRS_CONFIG) || k.startsWith("rsm.config.")) {
                continue;
            }
            if (!Objects.equals(theirs.get(k), harness.get(k))) {
                if (k.startsWith("rlmm.config.")) {
                    throw new IllegalStateException(kafka.getClass().getSimpleName() + " sets " + k
                            + ": a manager setting this harness does not carry over");
                }
                add.put(k, theirs.get(k));
            }
        }
        return add;
    }

    private Object call(String name, Object... args) {
        for (Class<?> c = kafka.getClass(); c != null; c = c.getSuperclass()) {
            for (Method m : c.getDeclaredMethods()) {
                if (m.getName().equals(name) && m.getParameterCount() == args.length && !m.isBridge()) {
                    m.setAccessible(true);
                    try {
                        return m.invoke(kafka, args);
                    } catch (InvocationTargetException e) {
                        Throwable cause = e.getCause();
                        if (cause instanceof RuntimeException r) {
                            throw r;
                        }
                        if (cause instanceof Error err) {
                            throw err;
                        }
                        throw new IllegalStateException(cause);
                    } catch (IllegalAccessException e) {
                        throw new IllegalStateException(e);
                    }
                }
            }
        }
        throw new IllegalStateException(kafka.getClass() + " has no method " + name);
    }
}
