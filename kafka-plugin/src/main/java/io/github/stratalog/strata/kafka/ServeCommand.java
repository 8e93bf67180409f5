package io.github.stratalog.strata.kafka;

import java.io.IOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The command line of the strata serve child, and the properties file it reads its
 * configuration from. The configuration goes through a file readable by the broker's user
 * alone, not the command line, because it may hold secrets (sasl.jaas.config, key passwords)
 * that any user could read from a process's arguments.
 */
final class ServeCommand {
    private ServeCommand() {
    }

    static List<String> command(StrataConfig config, Path socket, Path properties) {
        // --exit-on-stdin-eof: the plugin holds the child's stdin open for the broker's life, so
        // that a broker killed without close() does not leave a child holding the store's lock.
        return List.of(config.binary, "serve", "--socket", socket.toString(), "--properties", properties.toString(),
                "--exit-on-stdin-eof");
    }

    /**
     * Writes every entry of the plugin's configuration, strata.cache.dir set to the folder
     * chosen, into a new 0600 file beside that folder, {@code <cache dir>.properties}, and
     * returns its path.
     */
    static Path writeProperties(StrataConfig config) throws IOException {
        Map<String, String> props = new TreeMap<>(config.properties);
        props.put(StrataConfig.CACHE_DIR, config.cacheDir.toString());
        Path file = config.sibling(".properties");
        Path tmp = Files.createTempFile(file.getParent(), file.getFileName() + ".", ".tmp",
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        try (Writer w = Files.newBufferedWriter(tmp, StandardCharsets.UTF_8, StandardOpenOption.TRUNCATE_EXISTING)) {
            w.write(format(props));
        }
        Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        return file;
    }

    /**
     * The properties as Java's properties format, one key=value a line, escaping no more than
     * that format needs (a backslash, line breaks, and in keys '=', ':' and spaces), so that a
     * value such as host:port stays as written.
     */
    static String format(Map<String, String> props) {
        StringBuilder b = new StringBuilder("# Written by Strata's Kafka plugin for strata serve at each broker start.\n");
        props.forEach((k, v) -> b.append(escape(k, true)).append('=').append(escape(v, false)).append('\n'));
        return b.toString();
    }

    private static String escape(String s, boolean key) {
        StringBuilder b = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                case '\f' -> b.append("\\f");
                case '=', ':', '#', '!' -> {
                    if (key) {
                        b.append('\\');
                    }
                    b.append(c);
                }
                case ' ' -> {
                    if (key || i == 0) {
                        b.append('\\');
                    }
                    b.append(c);
                }
                default -> b.append(c);
            }
        }
        return b.toString();
    }
}
