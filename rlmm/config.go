package rlmm

import (
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"go.uber.org/zap"

	"github.com/stratalog/strata/cache"
)

// Defaults, as Kafka's TopicBasedRemoteLogMetadataManagerConfig has them.
const (
	DefaultNumPartitions       = 50
	DefaultReplicationFactor   = 3
	DefaultRetentionMs         = -1
	DefaultMinISR              = 2
	DefaultConsumeWait         = 120 * time.Second
	DefaultInitRetryMaxTimeout = 120 * time.Second
	DefaultInitRetryInterval   = 100 * time.Millisecond
	// DefaultLoadMinRecords is the default of WithLoadMinRecords.
	DefaultLoadMinRecords = 100_000
)

// Kafka's property names for the settings a broker passes through.
const (
	PropNumPartitions       = "remote.log.metadata.topic.num.partitions"
	PropReplicationFactor   = "remote.log.metadata.topic.replication.factor"
	PropRetentionMs         = "remote.log.metadata.topic.retention.ms"
	PropMinISR              = "remote.log.metadata.topic.min.isr"
	PropConsumeWaitMs       = "remote.log.metadata.consume.wait.ms"
	PropInitRetryMaxTimeout = "remote.log.metadata.initialization.retry.max.timeout.ms"
	PropInitRetryInterval   = "remote.log.metadata.initialization.retry.interval.ms"
	// PropCacheDir is Strata's own: where the store lives (a broker sets it as
	// rlmm.config.strata.cache.dir; Kafka strips the prefix). Without it, the store goes beside
	// the broker's log.dir, which Kafka's RemoteLogManager passes to every metadata manager: see
	// DefaultCacheDir.
	PropCacheDir = "strata.cache.dir"
	PropLogDir   = "log.dir"
	// PropLookupCacheBytes is Strata's own too: the memory budget of the store's cache of
	// segment-for-offset answers (cache.WithLookupCacheSize; 0 turns it off).
	PropLookupCacheBytes = "strata.cache.lookup.bytes"
	// PropMemTableBytes and PropBlockCacheBytes are Strata's own: the size of each of the
	// store's Pebble memtables (cache.WithMemTableSize) and of its block cache
	// (cache.WithBlockCacheSize). docs/MEMORY.md says what each costs.
	PropMemTableBytes   = "strata.cache.memtable.bytes"
	PropBlockCacheBytes = "strata.cache.block.cache.bytes"
	// PropLoadMinRecords is Strata's own: how many records an empty store must be behind the
	// metadata topic for the manager to load them in bulk (cache.Loader) rather than apply
	// them fetch by fetch; 0 never loads in bulk. See WithLoadMinRecords.
	PropLoadMinRecords = "strata.cache.load.min.records"

	PrefixCommonClient = "remote.log.metadata.common.client."
	PrefixProducer     = "remote.log.metadata.producer."
	PrefixConsumer     = "remote.log.metadata.consumer."
	PrefixAdmin        = "remote.log.metadata.admin."
)

// cacheDirSuffix names the store's default directory after the log directory it sits beside.
const cacheDirSuffix = "-strata-rlmm"

// DefaultCacheDir is where the store lives when strata.cache.dir is not set: a directory beside
// the broker's log directory, named after it, "<parent>/<base>-strata-rlmm" (/var/kafka/data
// gives /var/kafka/data-strata-rlmm). Not inside it: Kafka refuses to start when a log directory
// holds anything but partition logs and its own files. A list (log.dirs) uses its first
// directory, the one Kafka passes to its metadata manager.
func DefaultCacheDir(logDir string) string {
	if i := strings.IndexByte(logDir, ','); i >= 0 {
		logDir = logDir[:i]
	}
	logDir = strings.TrimSpace(logDir)
	if logDir == "" {
		return ""
	}
	clean := filepath.Clean(logDir)
	if clean == string(filepath.Separator) || clean == "." {
		return ""
	}
	return filepath.Join(filepath.Dir(clean), filepath.Base(clean)+cacheDirSuffix)
}

// CacheDirFromProperties is the store directory the properties a broker passes select:
// strata.cache.dir, else DefaultCacheDir(log.dir); "" when neither says.
func CacheDirFromProperties(props map[string]string) string {
	if d, ok := props[PropCacheDir]; ok {
		return d
	}
	return DefaultCacheDir(props[PropLogDir])
}

// Option configures New. Options apply in order; a later one overrides an earlier one.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	brokers             []string
	clientID            string
	numPartitions       int32
	replicationFactor   int16
	retentionMs         int64
	minISR              int
	consumeWait         time.Duration
	initRetryMaxTimeout time.Duration
	initRetryInterval   time.Duration
	cacheDir            string
	skipBadRecords      bool
	noCreateTopic       bool
	tls                 *tls.Config
	sasl                sasl.Mechanism
	log                 *zap.Logger
	clientOpts          []kgo.Opt
	producerOpts        []kgo.Opt
	consumerOpts        []kgo.Opt
	maxPollRecords      int
	loadMinRecords      int64
	cacheOpts           []cache.Option
	metrics             prometheus.Registerer // see WithMetrics
	props               map[string]string     // as passed, for printing
	errs                []error
	warnings            []string
}

func defaultConfig() config {
	return config{
		clientID:            "strata-rlmm",
		numPartitions:       DefaultNumPartitions,
		replicationFactor:   DefaultReplicationFactor,
		retentionMs:         DefaultRetentionMs,
		minISR:              DefaultMinISR,
		consumeWait:         DefaultConsumeWait,
		initRetryMaxTimeout: DefaultInitRetryMaxTimeout,
		initRetryInterval:   DefaultInitRetryInterval,
		maxPollRecords:      DefaultMaxPollRecords,
		loadMinRecords:      DefaultLoadMinRecords,
		log:                 zap.NewNop(),
	}
}

// WithBootstrapServers sets the brokers to connect to (Kafka's bootstrap.servers). Required.
func WithBootstrapServers(addrs ...string) Option {
	return optionFunc(func(c *config) { c.brokers = addrs })
}

// WithClientID sets the client id the manager's client presents. Default "strata-rlmm".
func WithClientID(id string) Option { return optionFunc(func(c *config) { c.clientID = id }) }

// WithMetadataPartitions sets the metadata topic's partition count
// (remote.log.metadata.topic.num.partitions). Default 50. It must match the existing topic's:
// the partitioner's mapping depends on it.
func WithMetadataPartitions(n int32) Option {
	return optionFunc(func(c *config) { c.numPartitions = n })
}

// WithReplicationFactor sets the replication factor the topic is created with
// (remote.log.metadata.topic.replication.factor). Default 3.
func WithReplicationFactor(rf int16) Option {
	return optionFunc(func(c *config) { c.replicationFactor = rf })
}

// WithRetention sets the topic's retention at creation (remote.log.metadata.topic.retention.ms,
// in milliseconds there): a negative duration (the default) keeps events forever; otherwise it
// must be at least a millisecond.
func WithRetention(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d < 0 {
			c.retentionMs = -1
			return
		}
		c.retentionMs = d.Milliseconds()
	})
}

// WithMinISR sets the topic's min.insync.replicas at creation (remote.log.metadata.topic.min.isr).
// Default 2.
func WithMinISR(n int) Option { return optionFunc(func(c *config) { c.minISR = n }) }

// WithConsumeWait bounds how long a write waits for its record to be applied
// (remote.log.metadata.consume.wait.ms). Default 2 minutes.
func WithConsumeWait(d time.Duration) Option {
	return optionFunc(func(c *config) { c.consumeWait = d })
}

// WithInitRetry sets how often (remote.log.metadata.initialization.retry.interval.ms, default
// 100ms) and for how long in all (remote.log.metadata.initialization.retry.max.timeout.ms,
// default 2 minutes) New retries reaching the cluster and creating or checking the topic.
func WithInitRetry(interval, maxTimeout time.Duration) Option {
	return optionFunc(func(c *config) { c.initRetryInterval, c.initRetryMaxTimeout = interval, maxTimeout })
}

// WithLoadMinRecords sets how far behind the metadata topic a store holding no user partition
// yet (a first start, or a new cache directory) must be, in records summed over the metadata
// partitions it starts consuming, for the manager to load them in bulk: it collects the
// records up to the end offsets it saw and writes them into the store at once (cache.Loader),
// with neither the write-ahead log, nor memtables, nor lookups of the segments it adds, nor
// compactions (docs/MEMORY.md, "The bulk load"), and then applies the rest as usual. Nothing of the load is applied, nor any partition it covers
// ready, until it is all in; a failed load is started over fetch by fetch. 0 never loads in
// bulk. Default DefaultLoadMinRecords.
func WithLoadMinRecords(n int64) Option {
	return optionFunc(func(c *config) { c.loadMinRecords = max(n, 0) })
}

// WithCacheDir sets the directory of the store (property strata.cache.dir). Required, unless
// the properties carry log.dir (then DefaultCacheDir).
func WithCacheDir(dir string) Option { return optionFunc(func(c *config) { c.cacheDir = dir }) }

// WithSkipBadRecords makes the consumer skip a record it cannot decode instead of halting its
// metadata partition. Each skip is kept in the store (cache.Store.Skipped) and logged. Default
// false: halting keeps the operator in charge of what is lost.
func WithSkipBadRecords(skip bool) Option {
	return optionFunc(func(c *config) { c.skipBadRecords = skip })
}

// WithTopicCreation says whether New creates the metadata topic when it is missing. Default
// true, as a broker's manager does; a tool that only reads a cluster passes false, and New then
// fails with ErrNoTopic on a cluster without the topic.
func WithTopicCreation(create bool) Option {
	return optionFunc(func(c *config) { c.noCreateTopic = !create })
}

// WithTLS connects over TLS with cfg.
func WithTLS(cfg *tls.Config) Option { return optionFunc(func(c *config) { c.tls = cfg }) }

// WithSASL authenticates with m (franz-go's sasl/plain or sasl/scram).
func WithSASL(m sasl.Mechanism) Option { return optionFunc(func(c *config) { c.sasl = m }) }

// WithLogger sets the logger. Default zap.NewNop(); nil means zap.NewNop() too, as in every
// package of Strata.
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(c *config) {
		if l == nil {
			l = zap.NewNop()
		}
		c.log = l
	})
}

// WithClientOptions appends franz-go options to the manager's client, after Strata's own: tests
// and advanced callers use it (kfake's address, dial functions, hooks).
func WithClientOptions(opts ...kgo.Opt) Option {
	return optionFunc(func(c *config) { c.clientOpts = append(c.clientOpts, opts...) })
}

// WithCacheOptions passes options to cache.Open (block cache size, filesystem).
func WithCacheOptions(opts ...cache.Option) Option {
	return optionFunc(func(c *config) { c.cacheOpts = append(c.cacheOpts, opts...) })
}

// WithProperties configures the manager from the properties a broker passes to its metadata
// manager, by Kafka's names: the remote.log.metadata.topic.* and remote.log.metadata.* settings
// above, log.dir or strata.cache.dir, and client settings under the prefixes
// remote.log.metadata.common.client., .producer., .consumer. and .admin. (a role's own prefix
// wins over common). Client settings understood: bootstrap.servers, client.id,
// security.protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), sasl.mechanism (PLAIN,
// SCRAM-SHA-256, SCRAM-SHA-512), sasl.jaas.config, ssl.truststore.{type,location,certificates},
// ssl.keystore.{type,location,certificate.chain,key}, ssl.endpoint.identification.algorithm,
// request.timeout.ms; producer linger.ms; consumer fetch.max.wait.ms, fetch.max.bytes,
// max.partition.fetch.bytes, max.poll.records (the records of one store write, see
// DefaultMaxPollRecords). Stores are PEM only. Other properties are ignored with a warning.
// Errors name the property and are returned by New.
func WithProperties(props map[string]string) Option {
	return optionFunc(func(c *config) {
		c.props = maps.Clone(props)
		c.applyProperties(props)
	})
}

func (c *config) errf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...)))
}

func (c *config) applyProperties(props map[string]string) {
	intProp := func(name string, bits int, set func(int64)) {
		v, ok := props[name]
		if !ok {
			return
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, bits)
		if err != nil {
			c.errf("%s=%q: not an integer", name, v)
			return
		}
		set(n)
	}
	intProp(PropNumPartitions, 32, func(n int64) { c.numPartitions = int32(n) })
	intProp(PropReplicationFactor, 16, func(n int64) { c.replicationFactor = int16(n) })
	intProp(PropRetentionMs, 64, func(n int64) { c.retentionMs = n })
	intProp(PropMinISR, 32, func(n int64) { c.minISR = int(n) })
	intProp(PropConsumeWaitMs, 64, func(n int64) { c.consumeWait = time.Duration(n) * time.Millisecond })
	intProp(PropInitRetryMaxTimeout, 64, func(n int64) { c.initRetryMaxTimeout = time.Duration(n) * time.Millisecond })
	intProp(PropInitRetryInterval, 64, func(n int64) { c.initRetryInterval = time.Duration(n) * time.Millisecond })
	intProp(PropLookupCacheBytes, 64, func(n int64) {
		if n < 0 {
			c.errf("%s=%d: must not be negative", PropLookupCacheBytes, n)
			return
		}
		c.cacheOpts = append(c.cacheOpts, cache.WithLookupCacheSize(n))
	})
	// cache.Open checks the sizes; New reports its error.
	intProp(PropMemTableBytes, 64, func(n int64) { c.cacheOpts = append(c.cacheOpts, cache.WithMemTableSize(n)) })
	intProp(PropBlockCacheBytes, 64, func(n int64) { c.cacheOpts = append(c.cacheOpts, cache.WithBlockCacheSize(n)) })
	intProp(PropLoadMinRecords, 64, func(n int64) {
		if n < 0 {
			c.errf("%s=%d: must not be negative", PropLoadMinRecords, n)
			return
		}
		c.loadMinRecords = n
	})
	if _, ok := props[PropCacheDir]; ok || c.cacheDir == "" {
		c.cacheDir = CacheDirFromProperties(props)
	}

	roles, err := resolveClientProps(props)
	if err != nil {
		c.errs = append(c.errs, err)
		return
	}
	cl := roles.shared
	if v, ok := cl["bootstrap.servers"]; ok {
		c.brokers = splitList(v)
	}
	if v, ok := cl["client.id"]; ok {
		c.clientID = v
	}
	if v, ok := cl["request.timeout.ms"]; ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			c.clientOpts = append(c.clientOpts, kgo.RequestTimeoutOverhead(time.Duration(n)*time.Millisecond))
		} else {
			c.errf("%srequest.timeout.ms=%q: not a positive integer", PrefixCommonClient, v)
		}
	}
	sec, err := securityFromProps(cl)
	if err != nil {
		c.errs = append(c.errs, err)
	} else {
		if sec.tls != nil {
			c.tls = sec.tls
		}
		if sec.sasl != nil {
			c.sasl = sec.sasl
		}
	}
	durationOpt := func(role map[string]string, prefix, key string, mk func(time.Duration) kgo.Opt, dst *[]kgo.Opt) {
		if v, ok := role[key]; ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				c.errf("%s%s=%q: not a non-negative integer", prefix, key, v)
				return
			}
			*dst = append(*dst, mk(time.Duration(n)*time.Millisecond))
		}
	}
	bytesOpt := func(role map[string]string, prefix, key string, mk func(int32) kgo.Opt, dst *[]kgo.Opt) {
		if v, ok := role[key]; ok {
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil || n <= 0 {
				c.errf("%s%s=%q: not a positive int32", prefix, key, v)
				return
			}
			*dst = append(*dst, mk(int32(n)))
		}
	}
	durationOpt(roles.producer, PrefixProducer, "linger.ms", func(d time.Duration) kgo.Opt { return kgo.ProducerLinger(d) }, &c.producerOpts)
	durationOpt(roles.consumer, PrefixConsumer, "fetch.max.wait.ms", func(d time.Duration) kgo.Opt { return kgo.FetchMaxWait(d) }, &c.consumerOpts)
	bytesOpt(roles.consumer, PrefixConsumer, "fetch.max.bytes", func(n int32) kgo.Opt { return kgo.FetchMaxBytes(n) }, &c.consumerOpts)
	bytesOpt(roles.consumer, PrefixConsumer, "max.partition.fetch.bytes", func(n int32) kgo.Opt { return kgo.FetchMaxPartitionBytes(n) }, &c.consumerOpts)
	if v, ok := roles.consumer["max.poll.records"]; ok {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n <= 0 {
			c.errf("%smax.poll.records=%q: not a positive int32", PrefixConsumer, v)
		} else {
			c.maxPollRecords = int(n)
		}
	}
	c.warnings = append(c.warnings, roles.ignored...)
}

// clientProps is the client configuration of each role after prefix resolution.
type clientProps struct {
	shared   map[string]string // connection settings, the same for every role
	producer map[string]string
	consumer map[string]string
	ignored  []string
}

// connectionKeys are settings of the connection itself. Strata has one client for all three
// roles, so a role may not set them differently from another.
var connectionKeys = []string{
	"bootstrap.servers", "client.id", "security.protocol", "request.timeout.ms",
	"sasl.mechanism", "sasl.jaas.config",
	"ssl.truststore.type", "ssl.truststore.location", "ssl.truststore.certificates",
	"ssl.keystore.type", "ssl.keystore.location", "ssl.keystore.certificate.chain", "ssl.keystore.key",
	"ssl.key.password", "ssl.endpoint.identification.algorithm",
}

var roleKeys = map[string][]string{
	PrefixProducer: {"linger.ms"},
	PrefixConsumer: {"fetch.max.wait.ms", "fetch.max.bytes", "max.partition.fetch.bytes", "max.poll.records"},
	PrefixAdmin:    nil,
}

func resolveClientProps(props map[string]string) (clientProps, error) {
	out := clientProps{shared: map[string]string{}, producer: map[string]string{}, consumer: map[string]string{}}
	common := map[string]string{}
	byRole := map[string]map[string]string{PrefixProducer: {}, PrefixConsumer: {}, PrefixAdmin: {}}
	for k, v := range props {
		switch {
		case strings.HasPrefix(k, PrefixCommonClient):
			common[strings.TrimPrefix(k, PrefixCommonClient)] = v
		case strings.HasPrefix(k, PrefixProducer):
			byRole[PrefixProducer][strings.TrimPrefix(k, PrefixProducer)] = v
		case strings.HasPrefix(k, PrefixConsumer):
			byRole[PrefixConsumer][strings.TrimPrefix(k, PrefixConsumer)] = v
		case strings.HasPrefix(k, PrefixAdmin):
			byRole[PrefixAdmin][strings.TrimPrefix(k, PrefixAdmin)] = v
		}
	}
	prefixes := []string{PrefixProducer, PrefixConsumer, PrefixAdmin}
	for _, key := range connectionKeys {
		val, from := common[key], PrefixCommonClient
		_, have := common[key]
		for _, p := range prefixes {
			v, ok := byRole[p][key]
			if !ok {
				continue
			}
			if have && from != PrefixCommonClient && v != val {
				return out, fmt.Errorf("%w: %s%s and %s%s differ; Strata uses one connection for all roles, so they must agree",
					ErrConfig, from, key, p, key)
			}
			val, from, have = v, p, true
		}
		if have {
			out.shared[key] = val
		}
	}
	known := func(p, k string) bool {
		return slices.Contains(connectionKeys, k) || slices.Contains(roleKeys[p], k)
	}
	for k, v := range common {
		if !known("", k) && !slices.ContainsFunc(prefixes, func(p string) bool { return slices.Contains(roleKeys[p], k) }) {
			out.ignored = append(out.ignored, PrefixCommonClient+k)
		}
		for _, p := range []string{PrefixProducer, PrefixConsumer} {
			if slices.Contains(roleKeys[p], k) {
				out.roleMap(p)[k] = v
			}
		}
	}
	for _, p := range prefixes {
		for k, v := range byRole[p] {
			switch {
			case slices.Contains(roleKeys[p], k):
				out.roleMap(p)[k] = v
			case !known(p, k):
				out.ignored = append(out.ignored, p+k)
			}
		}
	}
	slices.Sort(out.ignored)
	return out, nil
}

func (c *clientProps) roleMap(prefix string) map[string]string {
	if prefix == PrefixProducer {
		return c.producer
	}
	return c.consumer
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (c *config) validate() error {
	errs := append([]error(nil), c.errs...)
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...))
	}
	if len(c.brokers) == 0 {
		bad("no bootstrap servers (%sbootstrap.servers or WithBootstrapServers)", PrefixCommonClient)
	}
	if c.numPartitions <= 0 {
		bad("%s=%d: must be positive", PropNumPartitions, c.numPartitions)
	}
	if c.replicationFactor <= 0 {
		bad("%s=%d: must be positive", PropReplicationFactor, c.replicationFactor)
	}
	if c.retentionMs != -1 && c.retentionMs <= 0 {
		bad("%s=%d: must be -1 or positive", PropRetentionMs, c.retentionMs)
	}
	if c.minISR <= 0 {
		bad("%s=%d: must be positive", PropMinISR, c.minISR)
	}
	if c.consumeWait <= 0 {
		bad("%s=%d: must be positive", PropConsumeWaitMs, c.consumeWait.Milliseconds())
	}
	if c.initRetryMaxTimeout <= 0 {
		bad("%s=%d: must be positive", PropInitRetryMaxTimeout, c.initRetryMaxTimeout.Milliseconds())
	}
	if c.initRetryInterval <= 0 {
		bad("%s=%d: must be positive", PropInitRetryInterval, c.initRetryInterval.Milliseconds())
	}
	if c.cacheDir == "" {
		bad("no cache directory (%s, %s or WithCacheDir)", PropCacheDir, PropLogDir)
	}
	// Every problem at once, so that a broker's operator fixes its properties in one go.
	return errors.Join(errs...)
}

// isSecret reports whether a property's value must never be printed.
func isSecret(key string) bool {
	k := strings.ToLower(key)
	return strings.Contains(k, "password") || strings.Contains(k, "secret") ||
		strings.HasSuffix(k, "sasl.jaas.config") || strings.HasSuffix(k, "ssl.keystore.key")
}

// redactProperties returns "key=value" lines, sorted, with every secret's value replaced by
// "(redacted)".
func redactProperties(props map[string]string) string {
	keys := slices.Sorted(maps.Keys(props))
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		v := props[k]
		if isSecret(k) {
			v = "(redacted)"
		}
		b.WriteString(k + "=" + v)
	}
	return b.String()
}

// String prints the effective configuration with secrets redacted.
func (c *config) String() string {
	s := fmt.Sprintf("bootstrap.servers=%s client.id=%s %s=%d %s=%d %s=%d %s=%d %s=%d cache.dir=%s tls=%t sasl=%s skip.bad.records=%t",
		strings.Join(c.brokers, ","), c.clientID, PropNumPartitions, c.numPartitions, PropReplicationFactor, c.replicationFactor,
		PropRetentionMs, c.retentionMs, PropMinISR, c.minISR, PropConsumeWaitMs, c.consumeWait.Milliseconds(), c.cacheDir,
		c.tls != nil, mechanismName(c.sasl), c.skipBadRecords)
	if len(c.props) > 0 {
		s += " properties={" + redactProperties(c.props) + "}"
	}
	return s
}

func mechanismName(m sasl.Mechanism) string {
	if m == nil {
		return "none"
	}
	return m.Name()
}
