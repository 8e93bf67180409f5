package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rlmm"
)

// clusterFlags are the flags of the commands that talk to a cluster.
type clusterFlags struct {
	brokers       []string
	cacheDir      string
	timeout       time.Duration
	tls           bool
	tlsCA         string
	tlsCert       string
	tlsKey        string
	tlsServerName string
	tlsInsecure   bool
	saslMechanism string
	saslUser      string
	saslPassword  string
	verbose       bool
}

// register adds the connection flags to cmd; withCache adds --cache-dir, for the commands that
// load the metadata topic into the local cache.
func (f *clusterFlags) register(cmd *cobra.Command, withCache bool) {
	brokers := []string{"127.0.0.1:9092"}
	if env := os.Getenv("STRATA_BROKERS"); env != "" {
		brokers = splitComma(env)
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.brokers, "brokers", brokers, "bootstrap brokers, comma separated (env STRATA_BROKERS)")
	if withCache {
		fl.StringVar(&f.cacheDir, "cache-dir", "", "local cache of the metadata topic, so a second run reads only the tail (default: the user cache dir, per cluster)")
	}
	fl.DurationVar(&f.timeout, "timeout", 5*time.Minute, "give up after this long (must be positive)")
	fl.BoolVar(&f.tls, "tls", false, "connect with TLS")
	fl.StringVar(&f.tlsCA, "tls-ca", "", "PEM file of the CA certificates to trust (implies --tls)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "PEM file of the client certificate (implies --tls)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "PEM file of the client key")
	fl.StringVar(&f.tlsServerName, "tls-server-name", "", "server name to verify instead of the broker's host")
	fl.BoolVar(&f.tlsInsecure, "tls-insecure-skip-verify", false, "do not verify the brokers' certificates")
	fl.StringVar(&f.saslMechanism, "sasl-mechanism", "", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	fl.StringVar(&f.saslUser, "sasl-username", "", "SASL user name")
	fl.StringVar(&f.saslPassword, "sasl-password", "", "SASL password (prefer env STRATA_SASL_PASSWORD: flags show in process lists)")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "log what the tool does on stderr")
}

func (f *clusterFlags) validate() error {
	if f.timeout <= 0 {
		return fmt.Errorf("--timeout %s: must be positive", f.timeout)
	}
	if len(f.brokers) == 0 {
		return errors.New("--brokers: give at least one broker")
	}
	return nil
}

var commaRe = regexp.MustCompile(`\s*,\s*`)

func splitComma(s string) []string {
	var out []string
	for _, p := range commaRe.Split(s, -1) {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// kgoOptions builds the connection options of the tool's client.
func (f *clusterFlags) kgoOptions() ([]kgo.Opt, *tls.Config, sasl.Mechanism, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(f.brokers...), kgo.ClientID("strata-cli")}
	var tc *tls.Config
	if f.tls || f.tlsCA != "" || f.tlsCert != "" || f.tlsInsecure {
		tc = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.tlsServerName, InsecureSkipVerify: f.tlsInsecure}
		if f.tlsCA != "" {
			pem, err := os.ReadFile(f.tlsCA)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("--tls-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, nil, nil, fmt.Errorf("--tls-ca %s: no PEM certificate in it", f.tlsCA)
			}
			tc.RootCAs = pool
		}
		if f.tlsCert != "" {
			cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	var mech sasl.Mechanism
	if f.saslMechanism != "" {
		pass := f.saslPassword
		if pass == "" {
			pass = os.Getenv("STRATA_SASL_PASSWORD")
		}
		switch f.saslMechanism {
		case "PLAIN":
			mech = plain.Auth{User: f.saslUser, Pass: pass}.AsMechanism()
		case "SCRAM-SHA-256":
			mech = scram.Auth{User: f.saslUser, Pass: pass}.AsSha256Mechanism()
		case "SCRAM-SHA-512":
			mech = scram.Auth{User: f.saslUser, Pass: pass}.AsSha512Mechanism()
		default:
			return nil, nil, nil, fmt.Errorf("--sasl-mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", f.saslMechanism)
		}
		opts = append(opts, kgo.SASL(mech))
	}
	return opts, tc, mech, nil
}

func (f *clusterFlags) logger(stderr io.Writer) *zap.Logger {
	level := zapcore.WarnLevel
	if f.verbose {
		level = zapcore.InfoLevel
	}
	enc := zap.NewDevelopmentEncoderConfig()
	enc.TimeKey = ""
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(stderr), level)
	return zap.New(core)
}

// How soon, and how often after that, the tool says on stderr that it cannot reach a broker.
var (
	unreachableAfter = 3 * time.Second
	unreachableEvery = 30 * time.Second
)

// connWatch sees every connection attempt of a client (a kgo hook) and, while the latest ones
// fail, warns on stderr after unreachableAfter and then every unreachableEvery, naming the
// broker and the error, so that a command waiting on a broker that is down does not look hung.
type connWatch struct {
	w io.Writer

	mu        sync.Mutex
	failSince time.Time // first failure since the last success; zero while connections succeed
	lastAddr  string
	lastErr   error
	client    *kgo.Client // the client the hook was installed on, once created

	stop chan struct{}
	done chan struct{}
}

func newConnWatch(w io.Writer) *connWatch {
	cw := &connWatch{w: w, stop: make(chan struct{}), done: make(chan struct{})}
	go cw.run()
	return cw
}

func (cw *connWatch) OnNewClient(c *kgo.Client) {
	cw.mu.Lock()
	cw.client = c
	cw.mu.Unlock()
}

func (cw *connWatch) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	if err == nil {
		cw.failSince = time.Time{}
		return
	}
	if cw.failSince.IsZero() {
		cw.failSince = time.Now()
	}
	cw.lastAddr, cw.lastErr = net.JoinHostPort(meta.Host, fmt.Sprint(meta.Port)), err
}

func (cw *connWatch) run() {
	defer close(cw.done)
	tick := time.NewTicker(min(unreachableAfter, time.Second))
	defer tick.Stop()
	var warned time.Time
	for {
		select {
		case <-cw.stop:
			return
		case now := <-tick.C:
			cw.mu.Lock()
			since, addr, err := cw.failSince, cw.lastAddr, cw.lastErr
			cw.mu.Unlock()
			if since.IsZero() || now.Sub(since) < unreachableAfter || now.Sub(warned) < unreachableEvery {
				continue
			}
			warned = now
			fmt.Fprintf(cw.w, "strata: cannot reach broker %s for %s: %v; still trying\n", addr, now.Sub(since).Round(time.Second), err)
		}
	}
}

// Close stops the watch and waits for its goroutine.
func (cw *connWatch) Close() {
	close(cw.stop)
	<-cw.done
}

// newClient opens the tool's client with a connWatch, which the caller closes after the client.
func (f *clusterFlags) newClient(stderr io.Writer, extra ...kgo.Opt) (*kgo.Client, *connWatch, error) {
	opts, _, _, err := f.kgoOptions()
	if err != nil {
		return nil, nil, err
	}
	cw := newConnWatch(stderr)
	cl, err := kgo.NewClient(append(append(opts, kgo.WithHooks(cw)), extra...)...)
	if err != nil {
		cw.Close()
		return nil, nil, err
	}
	return cl, cw, nil
}

// metadataPartitions returns the partition count of the metadata topic, or an error saying the
// cluster has none.
func metadataPartitions(ctx context.Context, adm *kadm.Client, brokers []string) (int32, error) {
	topics, err := adm.ListTopics(ctx, proto.TopicName)
	if err != nil {
		return 0, fmt.Errorf("reaching the cluster at %v: %w", brokers, err)
	}
	td, ok := topics[proto.TopicName]
	switch {
	case !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition):
		return 0, fmt.Errorf("the cluster at %v has no %s topic: is tiered storage enabled?", brokers, proto.TopicName)
	case td.Err != nil:
		return 0, fmt.Errorf("describing %s: %w", proto.TopicName, td.Err)
	case len(td.Partitions) == 0:
		return 0, fmt.Errorf("%s has no partitions", proto.TopicName)
	}
	return int32(len(td.Partitions)), nil
}

// cluster is an open view of a cluster's metadata topic: a metadata manager watching every
// metadata partition, fully loaded. It opens no Kafka client of its own: adm works over the
// manager's.
type cluster struct {
	m    *rlmm.Manager
	adm  *kadm.Client
	cw   *connWatch
	n    int32 // metadata partitions
	once sync.Once
}

func (c *cluster) Close() {
	c.once.Do(func() {
		c.m.Close()
		c.cw.Close()
	})
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// discover asks the cluster, through a client the tool closes before it opens the manager, for
// the metadata topic's partition count and, when dir is empty, the cache directory of the
// cluster (by cluster id).
func discover(ctx context.Context, f *clusterFlags, stderr io.Writer) (n int32, dir string, err error) {
	cl, cw, err := f.newClient(stderr)
	if err != nil {
		return 0, "", err
	}
	defer cw.Close()
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if n, err = metadataPartitions(ctx, adm, f.brokers); err != nil {
		return 0, "", err
	}
	dir = f.cacheDir
	if dir == "" {
		meta, err := adm.BrokerMetadata(ctx)
		if err != nil {
			return 0, "", fmt.Errorf("reading cluster metadata: %w", err)
		}
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		dir = filepath.Join(base, "strata", "clusters", unsafeChars.ReplaceAllString(meta.Cluster, "_"))
	}
	return n, dir, nil
}

// openCluster finds the metadata topic and its partition count, opens a manager on the local
// cache and loads every metadata partition, showing progress on stderr when it is a terminal.
func openCluster(ctx context.Context, f *clusterFlags, stderr io.Writer) (*cluster, error) {
	n, dir, err := discover(ctx, f, stderr)
	if err != nil {
		return nil, err
	}
	_, tc, mech, err := f.kgoOptions()
	if err != nil {
		return nil, err
	}
	cw := newConnWatch(stderr)
	mopts := []rlmm.Option{
		rlmm.WithBootstrapServers(f.brokers...), rlmm.WithClientID("strata-cli"), rlmm.WithCacheDir(dir),
		rlmm.WithMetadataPartitions(n), rlmm.WithTopicCreation(false), rlmm.WithLogger(f.logger(stderr)),
		rlmm.WithInitRetry(100*time.Millisecond, 30*time.Second), rlmm.WithClientOptions(kgo.WithHooks(cw)),
	}
	if tc != nil {
		mopts = append(mopts, rlmm.WithTLS(tc))
	}
	if mech != nil {
		mopts = append(mopts, rlmm.WithSASL(mech))
	}
	m, err := rlmm.New(ctx, mopts...)
	if err != nil {
		cw.Close()
		if errors.Is(err, cache.ErrLocked) || errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another strata process holds the cache in %s: wait for it to end, or give another --cache-dir", dir)
		}
		return nil, err
	}
	cw.mu.Lock()
	client := cw.client
	cw.mu.Unlock()
	c := &cluster{m: m, adm: kadm.NewClient(client), cw: cw, n: n}
	all := make([]int32, n)
	for i := range all {
		all[i] = int32(i)
	}
	if err := m.WatchMetadataPartitions(ctx, all...); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.waitLoaded(ctx, stderr); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// waitLoaded waits until every metadata partition is read to the end seen at start. A halted
// partition does not stop the tool: what it could not read is reported.
func (c *cluster) waitLoaded(ctx context.Context, stderr io.Writer) error {
	bar := newProgress(stderr, "reading "+proto.TopicName)
	defer bar.done()
	for {
		ch := c.m.Changed()
		pending := false
		var total, doneN int64
		for _, s := range c.m.Stats() {
			total += s.Target - s.ResumedAt
			doneN += min(s.Applied, s.Target) - s.ResumedAt
			err := c.m.MetadataPartitionReady(s.Partition)
			var halt *rlmm.HaltError
			// A halt is final once every skip recorded in the skips topic is applied.
			if err != nil && (!errors.As(err, &halt) || !c.m.SkipsRead()) {
				pending = true
			}
		}
		bar.update(doneN, total)
		if !pending {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("reading %s: %w", proto.TopicName, ctx.Err())
		case <-ch:
		}
	}
}

// halts returns the halted metadata partitions, by partition.
func (c *cluster) halts() map[int32]*rlmm.HaltError {
	out := map[int32]*rlmm.HaltError{}
	for _, s := range c.m.Stats() {
		if s.Halt != nil {
			out[s.Partition] = s.Halt
		}
	}
	return out
}

// haltList is halts as a slice, by partition.
func (c *cluster) haltList() []*rlmm.HaltError {
	var out []*rlmm.HaltError
	for _, s := range c.m.Stats() {
		if s.Halt != nil {
			out = append(out, s.Halt)
		}
	}
	return out
}

// progress draws a one-line bar on stderr when stderr is a terminal, and nothing otherwise.
type progress struct {
	w     io.Writer
	label string
	on    bool
	last  time.Time
}

func newProgress(w io.Writer, label string) *progress {
	f, ok := w.(*os.File)
	on := false
	if ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			on = true
		}
	}
	return &progress{w: w, label: label, on: on}
}

func (p *progress) update(done, total int64) {
	if !p.on || total <= 0 || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	const width = 30
	filled := max(0, min(width, int(float64(width)*float64(done)/float64(total))))
	fmt.Fprintf(p.w, "\r%s [%-*s] %d/%d records", p.label, width, string(repeatRune('#', filled)), done, total)
}

func (p *progress) done() {
	if p.on && !p.last.IsZero() {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func repeatRune(r rune, n int) []rune {
	out := make([]rune, max(n, 0))
	for i := range out {
		out[i] = r
	}
	return out
}

// withCluster opens the cluster within the command's timeout, runs fn and closes the cluster.
func withCluster(cmd *cobra.Command, cf *clusterFlags, fn func(ctx context.Context, c *cluster) error) error {
	if err := cf.validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), cf.timeout)
	defer cancel()
	c, err := openCluster(ctx, cf, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(ctx, c)
}
