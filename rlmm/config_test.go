package rlmm

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/stratalog/strata/cache"
)

func TestPropertiesMapToConfig(t *testing.T) {
	cfg := defaultConfig()
	WithProperties(map[string]string{
		PropNumPartitions:                        "7",
		PropReplicationFactor:                    "2",
		PropRetentionMs:                          "86400000",
		PropMinISR:                               "1",
		PropConsumeWaitMs:                        "5000",
		PropInitRetryMaxTimeout:                  "3000",
		PropInitRetryInterval:                    "250",
		PropLogDir:                               "/var/kafka/data",
		PropLookupCacheBytes:                     "1048576",
		PropLoadMinRecords:                       "5000",
		PrefixCommonClient + "bootstrap.servers": "a:9092, b:9092",
		PrefixCommonClient + "client.id":         "broker-1-rlmm",
		PrefixProducer + "linger.ms":             "5",
		PrefixConsumer + "fetch.max.bytes":       "1048576",
		PrefixConsumer + "max.poll.records":      "700",
		PrefixCommonClient + "some.unknown":      "x",
	}).apply(&cfg)
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.numPartitions != 7 || cfg.replicationFactor != 2 || cfg.retentionMs != 86400000 || cfg.minISR != 1 ||
		cfg.consumeWait != 5*time.Second || cfg.initRetryMaxTimeout != 3*time.Second || cfg.initRetryInterval != 250*time.Millisecond {
		t.Fatalf("cfg = %+v", cfg)
	}
	if strings.Join(cfg.brokers, ",") != "a:9092,b:9092" || cfg.clientID != "broker-1-rlmm" || cfg.cacheDir != "/var/kafka/data-strata-rlmm" {
		t.Fatalf("brokers %v client %s dir %s", cfg.brokers, cfg.clientID, cfg.cacheDir)
	}
	if cfg.maxPollRecords != 700 {
		t.Fatalf("max.poll.records %d, want 700", cfg.maxPollRecords)
	}
	if cfg.loadMinRecords != 5000 {
		t.Fatalf("%s %d, want 5000", PropLoadMinRecords, cfg.loadMinRecords)
	}
	if def := defaultConfig(); def.loadMinRecords != DefaultLoadMinRecords {
		t.Fatalf("default %s %d, want %d", PropLoadMinRecords, def.loadMinRecords, DefaultLoadMinRecords)
	}
	if def := defaultConfig(); def.maxPollRecords != DefaultMaxPollRecords {
		t.Fatalf("default max.poll.records %d, want %d", def.maxPollRecords, DefaultMaxPollRecords)
	}
	if len(cfg.producerOpts) != 1 || len(cfg.consumerOpts) != 1 {
		t.Fatalf("role options: %d producer, %d consumer", len(cfg.producerOpts), len(cfg.consumerOpts))
	}
	if len(cfg.warnings) != 1 || cfg.warnings[0] != PrefixCommonClient+"some.unknown" {
		t.Fatalf("warnings = %v", cfg.warnings)
	}
	// The lookup cache's budget reaches the store.
	s, err := cache.Open("db", append(cfg.cacheOpts, cache.WithFS(vfs.NewMem()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.LookupCacheStats().Budget; got != 1<<20 {
		t.Fatalf("lookup cache budget %d, want %d", got, 1<<20)
	}
}

func TestInvalidPropertiesNameTheProperty(t *testing.T) {
	cases := map[string]map[string]string{
		PropNumPartitions:     {PropNumPartitions: "zero"},
		PropRetentionMs:       {PropRetentionMs: "0"},
		PropMinISR:            {PropMinISR: "0"},
		PropLookupCacheBytes:  {PropLookupCacheBytes: "-1"},
		PropLoadMinRecords:    {PropLoadMinRecords: "-1"},
		PropConsumeWaitMs:     {PropConsumeWaitMs: "-5"},
		"security.protocol":   {PrefixCommonClient + "security.protocol": "SSH"},
		"sasl.mechanism":      {PrefixCommonClient + "security.protocol": "SASL_PLAINTEXT", PrefixCommonClient + "sasl.mechanism": "GSSAPI", PrefixCommonClient + "sasl.jaas.config": `x required username="u" password="p";`},
		"must agree":          {PrefixProducer + "bootstrap.servers": "a:1", PrefixConsumer + "bootstrap.servers": "b:1"},
		"ssl.truststore.type": {PrefixCommonClient + "security.protocol": "SSL", PrefixCommonClient + "ssl.truststore.type": "JKS"},
		"max.poll.records":    {PrefixConsumer + "max.poll.records": "0"},
	}
	for want, props := range cases {
		cfg := defaultConfig()
		props[PrefixCommonClient+"bootstrap.servers"] = props[PrefixCommonClient+"bootstrap.servers"] + "x:1"
		props[PropCacheDir] = "/tmp/x"
		WithProperties(props).apply(&cfg)
		err := cfg.validate()
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v", want, err)
		}
	}
	if err := (&config{}).validate(); err == nil {
		t.Error("empty config validated")
	}
}

func TestSecretsAreRedacted(t *testing.T) {
	cfg := defaultConfig()
	secret := "hunter2-very-secret"
	WithProperties(map[string]string{
		PrefixCommonClient + "bootstrap.servers": "a:1",
		PrefixCommonClient + "security.protocol": "SASL_PLAINTEXT",
		PrefixCommonClient + "sasl.mechanism":    "SCRAM-SHA-512",
		PrefixCommonClient + "sasl.jaas.config":  `org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="` + secret + `";`,
		PrefixCommonClient + "ssl.key.password":  secret,
		PropCacheDir:                             "/tmp/x",
	}).apply(&cfg)
	if cfg.sasl == nil || cfg.sasl.Name() != "SCRAM-SHA-512" {
		t.Fatalf("sasl = %v", cfg.sasl)
	}
	s := cfg.String()
	if strings.Contains(s, secret) || strings.Contains(s, "alice") || strings.Count(s, "(redacted)") != 2 {
		t.Fatalf("config printed a secret: %s", s)
	}
	// An error about a secret names the property, never its value.
	cfg2 := defaultConfig()
	WithProperties(map[string]string{
		PrefixCommonClient + "security.protocol": "SASL_SSL",
		PrefixCommonClient + "sasl.mechanism":    "PLAIN",
		PrefixCommonClient + "sasl.jaas.config":  `x required user="` + secret + `";`,
	}).apply(&cfg2)
	if err := cfg2.validate(); err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("err = %v", err)
	}
}

func TestTLSFromPEMFiles(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "broker"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	trust := filepath.Join(dir, "ca.pem")
	store := filepath.Join(dir, "client.pem")
	os.WriteFile(trust, certPEM, 0o600)
	os.WriteFile(store, append(keyPEM, certPEM...), 0o600)

	cfg := defaultConfig()
	WithProperties(map[string]string{
		PrefixCommonClient + "bootstrap.servers":                     "a:1",
		PrefixCommonClient + "security.protocol":                     "SSL",
		PrefixCommonClient + "ssl.truststore.type":                   "PEM",
		PrefixCommonClient + "ssl.truststore.location":               trust,
		PrefixCommonClient + "ssl.keystore.type":                     "PEM",
		PrefixCommonClient + "ssl.keystore.location":                 store,
		PrefixCommonClient + "ssl.endpoint.identification.algorithm": "",
		PropCacheDir: dir,
	}).apply(&cfg)
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.tls == nil || cfg.tls.RootCAs == nil || len(cfg.tls.Certificates) != 1 || !cfg.tls.InsecureSkipVerify || cfg.tls.VerifyConnection == nil {
		t.Fatalf("tls = %+v", cfg.tls)
	}
	cfg2 := defaultConfig()
	WithProperties(map[string]string{PrefixCommonClient + "security.protocol": "SSL", PrefixCommonClient + "ssl.truststore.location": filepath.Join(dir, "missing.pem")}).apply(&cfg2)
	if err := cfg2.validate(); err == nil || !strings.Contains(err.Error(), "ssl.truststore.location") {
		t.Fatalf("missing trust store: %v", err)
	}
}

// The store's default directory sits beside the log directory, never inside it: Kafka refuses to
// start with a foreign directory in a log dir.
func TestDefaultCacheDirBesideLogDir(t *testing.T) {
	for logDir, want := range map[string]string{
		"/var/kafka/data":           "/var/kafka/data-strata-rlmm",
		"/var/kafka/data/":          "/var/kafka/data-strata-rlmm",
		"/var/kafka/a,/var/kafka/b": "/var/kafka/a-strata-rlmm",
		"/tmp/kraft-combined-logs":  "/tmp/kraft-combined-logs-strata-rlmm",
		"data":                      "data-strata-rlmm",
		"/":                         "",
		"":                          "",
	} {
		if got := DefaultCacheDir(logDir); got != want {
			t.Errorf("DefaultCacheDir(%q) = %q, want %q", logDir, got, want)
		}
	}
	for _, tc := range []struct {
		opts []Option
		want string
	}{
		{[]Option{WithProperties(map[string]string{PropLogDir: "/k/logs"})}, "/k/logs-strata-rlmm"},
		{[]Option{WithProperties(map[string]string{PropLogDir: "/k/logs", PropCacheDir: "/c"})}, "/c"},
		{[]Option{WithCacheDir("/opt"), WithProperties(map[string]string{PropLogDir: "/k/logs"})}, "/opt"},
		{[]Option{WithCacheDir("/opt"), WithProperties(map[string]string{PropCacheDir: "/c"})}, "/c"},
	} {
		cfg := defaultConfig()
		for _, o := range tc.opts {
			o.apply(&cfg)
		}
		if cfg.cacheDir != tc.want {
			t.Errorf("cache dir %q, want %q", cfg.cacheDir, tc.want)
		}
	}
}

// TestStoreMemoryProperties checks that the store's memory properties reach cache.Open: sizes it
// refuses fail it with an error naming them, sizes it takes open it.
func TestStoreMemoryProperties(t *testing.T) {
	for _, c := range []struct {
		props map[string]string
		want  string // in Open's error; "" for none
	}{
		{map[string]string{PropMemTableBytes: "1024"}, "memtable size 1024"},
		{map[string]string{PropBlockCacheBytes: "0"}, "block cache size 0"},
		{map[string]string{PropMemTableBytes: "4194304", PropBlockCacheBytes: "1048576"}, ""},
	} {
		cfg := defaultConfig()
		WithProperties(c.props).apply(&cfg)
		if len(cfg.errs) != 0 {
			t.Fatalf("%v: %v", c.props, cfg.errs)
		}
		s, err := cache.Open("db", append(cfg.cacheOpts, cache.WithFS(vfs.NewMem()))...)
		if err == nil {
			s.Close()
		}
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%v: Open: %v, want %q", c.props, err, c.want)
		}
	}
}
