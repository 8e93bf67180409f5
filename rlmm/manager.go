package rlmm

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
)

// Manager is a running metadata manager. Its methods are safe for concurrent use.
//
// Lock order: writeMu before mu. writeMu serializes every write to the store made by the
// manager (the consumer loop's Apply, a metadata partition's reset at assignment, an operator's
// skip), so that no two of them interleave on one metadata partition; mu guards the assignment,
// the progress of each metadata partition and the waiters, and is never held across network
// calls or store writes.
type Manager struct {
	cfg    config
	log    *zap.Logger
	store  *cache.Store
	client *kgo.Client
	adm    *kadm.Client
	met    *metrics // nil without WithMetrics

	// lifetime ends at Close: the consumer loop runs under it, and every record is produced
	// under it rather than under its caller's context (see publish).
	lifetime context.Context
	cancel   context.CancelFunc
	done     chan struct{} // closed when the consumer loop has returned
	// connecting counts the connections to the metadata partitions' leaders New opens in the
	// background (see connectLeaders); Close waits for them.
	connecting sync.WaitGroup

	writeMu sync.Mutex
	load    *bulkLoad     // the bulk load in progress, under writeMu
	dec     proto.Decoder // the loop's, under writeMu

	identity cache.Identity // what the store is built from, read at New

	pollMu     sync.Mutex
	pollCancel context.CancelFunc // ends the consumer loop's poll in progress (see wakeLoop)

	mu     sync.Mutex
	closed bool
	damage error // non-nil from the store's damage until the loop has replaced it
	// skips are the skips of this metadata topic recorded in SkipsTopic, read so far.
	// skipsChecked is, per metadata partition, the halt SkipsTopic was last read for; and when.
	skipsChecked map[int32]*HaltError
	skipsReadAt  time.Time
	parts        map[proto.TopicIDPartition]*userPart
	mps          map[int32]*metaPart
	changed      chan struct{} // closed and replaced whenever readiness may have changed
}

// openedStore is the outcome of opening the store.
type openedStore struct {
	store *cache.Store
	err   error
}

type userPart struct {
	mp     int32
	leader bool
	target int64 // end offset of mp when the partition was assigned: ready once applied reaches it
}

type metaPart struct {
	applied int64 // next offset to apply; everything below is in the store
	halt    *HaltError
	users   int   // assigned user partitions that map here
	watched bool  // consumed whole, for a remover (WatchMetadataPartitions)
	target  int64 // end offset when watching began: the whole partition is ready once applied reaches it
	waiters []*waiter
	stats   PartitionStats
}

type waiter struct {
	offset int64
	ch     chan error // buffered, receives exactly once
}

// New validates the configuration, opens the store, connects, creates the metadata topic if
// it is missing (or checks it), and starts the consumer loop. Reaching the cluster and the topic
// is retried every initialization retry interval until the initialization timeout; then New
// fails, having closed everything it opened. A topic with another partition count than
// configured fails at once with ErrTopicMismatch.
//
// No partition is consumed until AssignPartitions.
func New(ctx context.Context, opts ...Option) (*Manager, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	for _, w := range cfg.warnings {
		cfg.log.Warn("ignoring unsupported metadata manager property", zap.String("property", w))
	}
	cfg.log.Info("starting remote log metadata manager", zap.Stringer("config", &cfg))

	// The store reports damage from any goroutine, possibly before New has built the manager.
	var self atomic.Pointer[Manager]
	// The store opens while the client reaches the cluster: each takes milliseconds, and a
	// restart then waits for the longer of the two only. A store that cannot open ends the
	// cluster's steps at once, so that its error is New's without waiting out their retries.
	initCtx, cancelInit := context.WithCancel(ctx)
	defer cancelInit()
	opening := make(chan openedStore, 1)
	go func() {
		store, err := openStore(&cfg, func(err error) {
			if m := self.Load(); m != nil {
				m.noteDamage(err)
			}
		})
		if err != nil {
			cancelInit()
		}
		opening <- openedStore{store, err}
	}()
	var once sync.Once
	var opened openedStore
	result := func() openedStore {
		once.Do(func() { opened = <-opening })
		return opened
	}
	// abandon waits for the store and closes it: New failed before the manager owned it. The
	// store's own error, when it did not open, is New's.
	abandon := func(err error) error {
		o := result()
		if o.store != nil {
			o.store.Close()
		}
		if o.err != nil {
			return o.err
		}
		return err
	}
	met, err := newMetrics(cfg.metrics, cfg.numPartitions)
	if err != nil {
		return nil, abandon(err)
	}
	client, err := kgo.NewClient(append(clientOptions(&cfg), met.clientOpts()...)...)
	if err != nil {
		met.unregister()
		return nil, abandon(fmt.Errorf("%w: %w", ErrConfig, err))
	}
	if err := checkClient(client); err != nil {
		client.Close()
		met.unregister()
		return nil, abandon(err)
	}
	lifetime, cancel := context.WithCancel(context.Background())
	m := &Manager{
		cfg:      cfg,
		log:      cfg.log,
		client:   client,
		adm:      kadm.NewClient(client),
		met:      met,
		lifetime: lifetime,
		cancel:   cancel,
		done:     make(chan struct{}),
		parts:    map[proto.TopicIDPartition]*userPart{},
		mps:      map[int32]*metaPart{},
		changed:  make(chan struct{}),

		skipsChecked: map[int32]*HaltError{},
	}
	fail := func(err error) (*Manager, error) {
		cancel()
		m.connecting.Wait()
		met.unregister()
		client.Close()
		if m.store != nil {
			m.store.Close()
			return nil, err
		}
		return nil, abandon(err)
	}
	meta, err := m.initTopic(initCtx)
	if err != nil {
		return fail(err)
	}
	m.connectLeaders(meta)
	want, err := m.topicIdentity(initCtx, meta)
	if err != nil {
		return fail(err)
	}
	o := result()
	if o.err != nil {
		return fail(o.err)
	}
	m.store = o.store
	self.Store(m)
	if err := met.registerStore(o.store); err != nil {
		return fail(err)
	}
	if err := m.checkIdentity(want); err != nil {
		return fail(err)
	}
	if err := m.initSkips(ctx, meta); err != nil {
		// Skips recorded for every node are an operator's tool; the manager works without them.
		m.log.Warn("cannot create the skips topic; SkipEverywhere creates it when first used",
			zap.String("topic", SkipsTopic), zap.Error(err))
	}
	met.bind(m)
	go m.loop(lifetime)
	return m, nil
}

// The consumer's fetch sizes, the largest part of the manager's memory during a cold load. A
// fetch stays in memory until the loop has applied all of it, and franz-go fetches the next one
// while it does, so about two fetches are held at a time: each as its decompressed batches and
// one kgo.Record per record (a few hundred bytes each). Metadata records compress about four to
// one, so a fetch of N bytes holds about 10*N bytes of heap once decoded: franz-go's 50 MiB
// default (Kafka's fetch.max.bytes) meant hundreds of MiB, and 8 MiB still ~200 MiB of the peak
// resident set of a cold load of 1M events (docs/MEMORY.md). 256 KiB is still thousands of
// records a fetch, more than one Apply takes (DefaultMaxPollRecords); with 512 KiB fetches
// and 5,000-record batches the peak was 6.5 MiB higher and the cold load no faster. The properties
// remote.log.metadata.consumer.fetch.max.bytes and .max.partition.fetch.bytes set others.
const (
	DefaultFetchMaxBytes          = 256 << 10
	DefaultMaxPartitionFetchBytes = 256 << 10
)

// clientOptions returns the options of the manager's client. Kafka's settings and the caller's
// come first; then the settings the manager's correctness depends on, which nothing overrides:
// the partition of every record is the one Kafka's partitioner picks (manual partitioning),
// every write is acknowledged by all in-sync replicas, and the consumer fetches exactly the
// metadata partitions the manager adds, from the offsets it chooses. Idempotence, franz-go's
// default, is checked by checkClient: no option turns it back on.
func clientOptions(cfg *config) []kgo.Opt {
	kopts := []kgo.Opt{
		kgo.SeedBrokers(cfg.brokers...),
		kgo.ClientID(cfg.clientID),
		// franz-go lingers 10ms by default to fill batches; a metadata write is one small
		// record whose caller waits for it, so it goes at once (BenchmarkPublishLatency).
		// producer linger.ms may set another.
		kgo.ProducerLinger(0),
		// Kafka's consumer default (fetch.max.wait.ms 500), not franz-go's 5s: a partition added
		// while the loop waits on caught-up ones is fetched no later than this.
		kgo.FetchMaxWait(500 * time.Millisecond),
		// See DefaultFetchMaxBytes and DefaultMaxPartitionFetchBytes.
		kgo.FetchMaxBytes(DefaultFetchMaxBytes),
		kgo.FetchMaxPartitionBytes(DefaultMaxPartitionFetchBytes),
	}
	if cfg.tls != nil {
		kopts = append(kopts, kgo.DialTLSConfig(cfg.tls))
	}
	if cfg.sasl != nil {
		kopts = append(kopts, kgo.SASL(cfg.sasl))
	}
	kopts = append(kopts, cfg.producerOpts...)
	kopts = append(kopts, cfg.consumerOpts...)
	kopts = append(kopts, cfg.clientOpts...)
	return append(kopts,
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// A direct consumer of no partition yet; AssignPartitions adds them.
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{proto.TopicName: {}}),
		// When the resume offset has expired, fetching restarts at the log start; the loop sees
		// the gap and rebuilds that metadata partition.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
}

// connectLeaders opens, in the background, the client's connection to each leader of the
// metadata topic's partitions that meta names (nil: none). New's requests go to a seed broker's
// connection; without this, the first assignment's offset listing, which goes to the leaders,
// would open theirs (a TCP connect and Kafka's ApiVersions handshake, a round trip or more)
// only after New, on every restart's path to ready: now it overlaps the rest of New. Bounded by
// the manager's lifetime and 10 s; a failure only leaves the listing to connect by itself.
func (m *Manager) connectLeaders(meta *kadm.Metadata) {
	if meta == nil {
		return
	}
	leaders := map[int32]bool{}
	for _, p := range meta.Topics[proto.TopicName].Partitions {
		if p.Leader >= 0 {
			leaders[p.Leader] = true
		}
	}
	for id := range leaders {
		m.connecting.Add(1)
		go func() {
			defer m.connecting.Done()
			ctx, cancel := context.WithTimeout(m.lifetime, 10*time.Second)
			defer cancel()
			// Any request opens the connection; ApiVersions is the one its handshake sends anyway.
			m.client.Broker(int(id)).Request(ctx, kmsg.NewPtrApiVersionsRequest()) //nolint:errcheck // see above
		}()
	}
}

// checkClient refuses a client whose options turn off what the manager relies on and that
// clientOptions cannot set back: idempotent writes (a retried write must not land twice, or a
// waiter would learn the outcome of the wrong copy), and consuming anything but the metadata
// partitions the manager adds.
func checkClient(cl *kgo.Client) error {
	if v, ok := cl.OptValue(kgo.DisableIdempotentWrite).(bool); ok && v {
		return fmt.Errorf("%w: WithClientOptions: kgo.DisableIdempotentWrite; the manager's writes must be idempotent", ErrConfig)
	}
	if g, ok := cl.OptValue(kgo.ConsumerGroup).(string); ok && g != "" {
		return fmt.Errorf("%w: WithClientOptions: kgo.ConsumerGroup(%q); the manager consumes the metadata partitions it chooses", ErrConfig, g)
	}
	if t, ok := cl.OptValue(kgo.ConsumeTopics).([]string); ok && len(t) > 0 {
		return fmt.Errorf("%w: WithClientOptions: kgo.ConsumeTopics(%v); the manager consumes the metadata partitions it chooses", ErrConfig, t)
	}
	return nil
}

// initTopic creates or checks the metadata topic, retrying transient failures. It returns the
// cluster's metadata when it found the topic already there (nil when it created it), which
// answers the checks New makes after it (see ensureTopic).
func (m *Manager) initTopic(ctx context.Context) (*kadm.Metadata, error) {
	deadline := time.Now().Add(m.cfg.initRetryMaxTimeout)
	for attempt := 1; ; attempt++ {
		meta, err := m.ensureTopic(ctx)
		if err == nil {
			return meta, nil
		}
		if errors.Is(err, ErrTopicMismatch) || errors.Is(err, ErrConfig) || errors.Is(err, ErrNoTopic) {
			return nil, err
		}
		if ctx.Err() != nil || time.Now().Add(m.cfg.initRetryInterval).After(deadline) {
			return nil, fmt.Errorf("%w: %d attempts in %s, the last: %w", ErrInitTimeout, attempt, m.cfg.initRetryMaxTimeout, err)
		}
		m.log.Warn("metadata topic not ready, retrying", zap.Int("attempt", attempt), zap.Error(err))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("rlmm: initialization: %w (last error: %w)", ctx.Err(), err)
		case <-time.After(m.cfg.initRetryInterval):
		}
	}
}

func (m *Manager) ensureTopic(ctx context.Context) (*kadm.Metadata, error) {
	reqCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// One request answers every question New asks the cluster: this topic, the cluster and
	// topic ids (topicIdentity) and the skips topic (initSkips); each of those asks again only
	// when this answer does not serve it.
	meta, err := m.adm.Metadata(reqCtx, proto.TopicName, SkipsTopic)
	if err != nil {
		return nil, fmt.Errorf("rlmm: describing %s: %w", proto.TopicName, err)
	}
	if d, ok := meta.Topics[proto.TopicName]; ok && d.Err == nil {
		if err := m.checkPartitions(len(d.Partitions)); err != nil {
			return nil, err
		}
		return &meta, nil
	} else if ok && !errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
		return nil, fmt.Errorf("rlmm: describing %s: %w", proto.TopicName, d.Err)
	}
	if m.cfg.noCreateTopic {
		return nil, fmt.Errorf("%w: %s (is tiered storage enabled on this cluster?)", ErrNoTopic, proto.TopicName)
	}
	retention := strconv.FormatInt(m.cfg.retentionMs, 10)
	minISR := strconv.Itoa(m.cfg.minISR)
	policy, disabled := "delete", "false"
	configs := map[string]*string{
		"cleanup.policy":        &policy,
		"retention.ms":          &retention,
		"min.insync.replicas":   &minISR,
		"remote.storage.enable": &disabled,
	}
	resp, err := m.adm.CreateTopic(reqCtx, m.cfg.numPartitions, m.cfg.replicationFactor, configs, proto.TopicName)
	if err == nil {
		err = resp.Err
	}
	switch {
	case err == nil:
		m.log.Info("created the metadata topic", zap.String("topic", proto.TopicName), zap.Int32("partitions", m.cfg.numPartitions),
			zap.Int16("replication.factor", m.cfg.replicationFactor))
		return nil, nil
	case errors.Is(err, kerr.TopicAlreadyExists):
		// Another broker created it between our look and our create: check what it made.
		return nil, fmt.Errorf("rlmm: %s was created concurrently; checking it again", proto.TopicName)
	}
	return nil, fmt.Errorf("rlmm: creating %s: %w", proto.TopicName, err)
}

func (m *Manager) checkPartitions(n int) error {
	if int32(n) != m.cfg.numPartitions {
		return fmt.Errorf("%w: %s has %d partitions but %s=%d; the partition of every user partition's events depends on the count, so it can never change",
			ErrTopicMismatch, proto.TopicName, n, PropNumPartitions, m.cfg.numPartitions)
	}
	return nil
}

// Close stops the consumer loop and the client and closes the store. Pending writes fail with
// ErrClosed. When Close returns, every goroutine the manager started has ended. It returns the
// store's error closing, if any; a second Close does nothing and returns nil.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	for _, st := range m.mps {
		st.failWaiters(ErrClosed)
	}
	m.broadcastLocked()
	m.mu.Unlock()

	m.met.unregister()
	m.cancel()
	<-m.done
	m.connecting.Wait()
	m.client.Close()
	m.writeMu.Lock()
	defer m.writeMu.Unlock()
	var lerr error
	if m.load != nil {
		// Nothing of it is in the store: the next start loads again from the same offsets.
		lerr, m.load = m.load.l.Abort(), nil
	}
	return errors.Join(lerr, m.store.Close())
}

// NumPartitions is the metadata topic's partition count.
func (m *Manager) NumPartitions() int32 { return m.cfg.numPartitions }

func (m *Manager) broadcastLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

func (st *metaPart) failWaiters(err error) {
	for _, w := range st.waiters {
		w.ch <- err
	}
	st.waiters = nil
}

// releaseWaiters completes the waiters whose record is now applied, with the error of its drop
// when dropped holds one for the waiter's offset, and fails those at or after a halt.
func (st *metaPart) releaseWaiters(dropped map[int64]error) {
	kept := st.waiters[:0]
	for _, w := range st.waiters {
		switch {
		case w.offset < st.applied:
			w.ch <- dropped[w.offset]
		case st.halt != nil && w.offset >= st.halt.Offset:
			w.ch <- st.halt
		default:
			kept = append(kept, w)
		}
	}
	clear(st.waiters[len(kept):])
	st.waiters = kept
}
