package io.github.stratalog.strata.kafka;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The command line of the strata serve child, and what it reads on its stdin: the plugin's
 * configuration as a properties file, ended by a line {@value #PROPERTIES_END}. The configuration
 * goes through stdin, not the command line or a file, because it may hold secrets
 * (sasl.jaas.config, key passwords) that other users could read from a process's arguments or a
 * file left behind. stdin then stays open for the broker's life: strata serve stops when it
 * reaches EOF, so a broker killed without close() does not leave a child holding the store.
 */
final class ServeCommand {
    /** strata serve's end of the properties on stdin (a comment, so the text stays a valid properties file). */
    static final String PROPERTIES_END = "#end";

    private ServeCommand() {
    }

    /** The line strata serve prints on stdout, with --notify-ready, once its socket accepts calls: this, then the address. */
    static final String SERVING_LINE = "serving ";

    static List<String> command(StrataConfig config, Path socket) {
        return List.of(config.binary, "serve", "--socket", socket.toString(), "--properties", "-", "--exit-on-stdin-eof",
                "--notify-ready");
    }

    /** What the child reads on stdin: every entry of the plugin's configuration, strata.cache.dir set to the folder chosen. */
    static byte[] stdin(StrataConfig config) {
        Map<String, String> props = new TreeMap<>(config.properties);
        props.put(StrataConfig.CACHE_DIR, config.cacheDir.toString());
        return (format(props) + PROPERTIES_END + "\n").getBytes(StandardCharsets.UTF_8);
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
