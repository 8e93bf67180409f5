package io.github.stratalog.strata.kafka;

import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class StrataConfigTest {
    @Test
    void cacheDirBesideTheLogDirNeverInIt() {
        StrataConfig c = StrataConfig.from(Map.of("log.dir", "/var/kafka/data/", "broker.id", 1));
        assertEquals(Path.of("/var/kafka/data-strata-rlmm"), c.cacheDir);
        assertFalse(c.cacheDir.startsWith(Path.of("/var/kafka/data")));
        assertEquals(Path.of("/var/kafka/data-strata-rlmm.sock"), c.childSocket(Path.of("/tmp/x")));
        assertEquals(Path.of("/var/kafka/data-strata-rlmm.properties"), c.sibling(".properties"));
        assertEquals("1", c.properties.get("broker.id"));
        assertTrue(c.startsChild());
        assertEquals("strata", c.binary);
    }

    @Test
    void explicitSettings() {
        StrataConfig c = StrataConfig.from(Map.of("log.dir", "/d", "strata.cache.dir", "/s/store",
                "strata.socket", "/run/strata.sock", "strata.binary", "/opt/strata",
                "remote.log.metadata.consume.wait.ms", "1000", "strata.request.timeout.ms", "250"));
        assertEquals(Path.of("/s/store"), c.cacheDir);
        assertFalse(c.startsChild());
        assertEquals("/run/strata.sock", c.socket);
        assertEquals("/opt/strata", c.binary);
        assertEquals(Duration.ofMillis(6000), c.writeTimeout);
        assertEquals(Duration.ofMillis(250), c.requestTimeout);
        assertEquals(Duration.ofMillis(150_000), c.startTimeout);
    }

    @Test
    void longSocketPathGoesToTheShortFolder() {
        String deep = "/" + "d".repeat(120);
        StrataConfig c = StrataConfig.from(Map.of("log.dir", deep));
        assertTrue(c.socketTooLong());
        assertEquals(Path.of("/tmp/s/serve.sock"), c.childSocket(Path.of("/tmp/s")));
    }

    @Test
    void badValuesNameTheProperty() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> StrataConfig.from(Map.of("log.dir", "/d", "strata.request.timeout.ms", "soon")));
        assertTrue(e.getMessage().startsWith("strata.request.timeout.ms=soon"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> StrataConfig.from(Map.of("broker.id", 1)));
        assertTrue(e.getMessage().contains("strata.cache.dir"), e.getMessage());
    }

    @Test
    void lookupCacheEntries() {
        assertEquals(StrataConfig.DEFAULT_LOOKUP_CACHE_ENTRIES, StrataConfig.from(Map.of("log.dir", "/d")).lookupCacheEntries);
        assertEquals(0, StrataConfig.from(Map.of("log.dir", "/d", "strata.lookup.cache.entries", "0")).lookupCacheEntries);
        assertEquals(500, StrataConfig.from(Map.of("log.dir", "/d", "strata.lookup.cache.entries", " 500 ")).lookupCacheEntries);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> StrataConfig.from(Map.of("log.dir", "/d", "strata.lookup.cache.entries", "-1")));
        assertTrue(e.getMessage().contains("strata.lookup.cache.entries=-1"), e.getMessage());
    }

    @Test
    void serveGomaxprocsGoesToTheChildsEnvironment() {
        Map<String, String> env = new TreeMap<>(Map.of("PATH", "/bin", "GOMAXPROCS", "8"));
        StrataConfig.from(Map.of("log.dir", "/d")).childEnvironment(env);
        assertEquals(Map.of("PATH", "/bin", "GOMAXPROCS", "8"), env, "default: the broker's environment as it is");

        env = new TreeMap<>(Map.of("PATH", "/bin", "GOMAXPROCS", "8"));
        StrataConfig.from(Map.of("log.dir", "/d", "strata.serve.gomaxprocs", "1")).childEnvironment(env);
        assertEquals(Map.of("PATH", "/bin", "GOMAXPROCS", "1"), env);

        env = new TreeMap<>(Map.of("PATH", "/bin"));
        StrataConfig.from(Map.of("log.dir", "/d", "strata.serve.gomaxprocs", " 4 ")).childEnvironment(env);
        assertEquals(Map.of("PATH", "/bin", "GOMAXPROCS", "4"), env);

        env = new TreeMap<>(Map.of("PATH", "/bin", "GOMAXPROCS", "8"));
        StrataConfig.from(Map.of("log.dir", "/d", "strata.serve.gomaxprocs", "0")).childEnvironment(env);
        assertEquals(Map.of("PATH", "/bin", "GOMAXPROCS", "8"), env, "0: the broker's environment as it is");

        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> StrataConfig.from(Map.of("log.dir", "/d", "strata.serve.gomaxprocs", "-1")));
        assertTrue(e.getMessage().contains("strata.serve.gomaxprocs=-1"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> StrataConfig.from(Map.of("log.dir", "/d", "strata.serve.gomaxprocs", "all")));
        assertTrue(e.getMessage().startsWith("strata.serve.gomaxprocs=all: not a number of CPUs"), e.getMessage());
    }

    @Test
    void nullValuesAreDropped() {
        Map<String, Object> m = new TreeMap<>();
        m.put("log.dir", "/d");
        m.put("x", null);
        assertNull(StrataConfig.from(m).properties.get("x"));
    }

    @Test
    void propertiesFormat() {
        Map<String, String> m = new TreeMap<>();
        m.put("bootstrap.servers", "127.0.0.1:9092,127.0.0.1:9093");
        m.put("sasl.jaas.config", "org.Module required user=\"a b\" path=\"C:\\\\x\";\nnext");
        m.put("odd key=:", " lead");
        String s = ServeCommand.format(m);
        assertTrue(s.contains("\nbootstrap.servers=127.0.0.1:9092,127.0.0.1:9093\n"), s);
        assertTrue(s.contains("\nsasl.jaas.config=org.Module required user=\"a b\" path=\"C:\\\\\\\\x\";\\nnext\n"), s);
        assertTrue(s.contains("\nodd\\ key\\=\\:=\\ lead\n"), s);
        // Java reads back exactly what was written.
        java.util.Properties p = new java.util.Properties();
        try {
            p.load(new java.io.StringReader(s));
        } catch (java.io.IOException e) {
            throw new AssertionError(e);
        }
        assertEquals(m.get("sasl.jaas.config"), p.getProperty("sasl.jaas.config"));
        assertEquals(" lead", p.getProperty("odd key=:"));
        assertEquals(m.get("bootstrap.servers"), p.getProperty("bootstrap.servers"));
    }
}
