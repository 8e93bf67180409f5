package io.github.stratalog.strata.kafka.suite;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Properties;

import static org.apache.kafka.server.log.remote.storage.RemoteLogManagerConfig.REMOTE_LOG_METADATA_MANAGER_CLASS_NAME_PROP;
import static org.apache.kafka.server.log.remote.storage.RemoteLogManagerConfig.REMOTE_LOG_METADATA_MANAGER_CLASS_PATH_PROP;
import static org.apache.kafka.server.log.remote.storage.RemoteLogManagerConfig.REMOTE_LOG_METADATA_MANAGER_CONFIG_PREFIX_PROP;

/**
 * The one change the Strata runs make to Kafka's harness: the broker's metadata manager is
 * Strata's, loaded from the plugin's jar through remote.log.metadata.manager.class.path as an
 * operator loads it, and told where the strata command is. Every other property, the
 * rlmm.config.* ones Kafka's harness sets for its own manager included, stays as Kafka sets it.
 */
final class StrataProps {
    static final String MANAGER = "io.github.stratalog.strata.kafka.StrataRemoteLogMetadataManager";

    private StrataProps() {
    }

    static Properties apply(Properties p) {
        String jar = existing("strata.plugin.jar");
        String binary = existing("strata.binary");
        p.setProperty(REMOTE_LOG_METADATA_MANAGER_CLASS_NAME_PROP, MANAGER);
        p.setProperty(REMOTE_LOG_METADATA_MANAGER_CLASS_PATH_PROP, jar);
        // The harness gives the manager's settings a prefix of its own (rlmm.config.<test class>.).
        String prefix = p.getProperty(REMOTE_LOG_METADATA_MANAGER_CONFIG_PREFIX_PROP, "rlmm.config.");
        p.setProperty(prefix + "strata.binary", binary);
        return p;
    }

    private static String existing(String sysprop) {
        String v = System.getProperty(sysprop);
        if (v == null || v.isBlank() || !Files.exists(Path.of(v))) {
            throw new IllegalStateException("-D" + sysprop + " must name an existing file (got " + v
                    + "); run the suite with make kafka-suite");
        }
        return Path.of(v).toAbsolutePath().toString();
    }
}
