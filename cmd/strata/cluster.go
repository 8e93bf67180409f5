package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rlmm"
)

// clusterFlags are the flags of every command that talks to a cluster.
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

func (f *clusterFlags) register(cmd *cobra.Command) {
	brokers := []string{"127.0.0.1:9092"}
	if env := os.Getenv("STRATA_BROKERS"); env != "" {
		brokers = splitComma(env)
	}
	fl := cmd.PersistentFlags()
	fl.StringSliceVar(&f.brokers, "brokers", brokers, "bootstrap brokers, comma separated (env STRATA_BROKERS)")
	fl.StringVar(&f.cacheDir, "cache-dir", "", "local cache of the metadata topic, so a second run reads only the tail (default: the user cache dir, per cluster)")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Minute, "give up after this long")
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

// kgoOptions builds the connection options shared by every client the tool opens.
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

// cluster is an open view of a cluster's metadata topic: a read-only-by-default metadata
// manager watching every metadata partition, fully loaded.
type cluster struct {
	m      *rlmm.Manager
	client *kgo.Client
	adm    *kadm.Client
	n      int32 // metadata partitions
}

func (c *cluster) Close() {
	c.m.Close()
	c.client.Close()
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// openCluster connects, finds the metadata topic and its partition count, and loads every
// metadata partition into the local cache, showing progress on stderr when it is a terminal.
func openCluster(ctx context.Context, f *clusterFlags, stderr io.Writer) (*cluster, error) {
	opts, tc, mech, err := f.kgoOptions()
	if err != nil {
		return nil, err
	}
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	adm := kadm.NewClient(client)
	topics, err := adm.ListTopics(ctx, proto.TopicName)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("reaching the cluster at %v: %w", f.brokers, err)
	}
	td, ok := topics[proto.TopicName]
	if !ok || td.Err != nil {
		client.Close()
		return nil, fmt.Errorf("the cluster at %v has no %s topic: is tiered storage enabled?", f.brokers, proto.TopicName)
	}
	n := int32(len(td.Partitions))
	dir := f.cacheDir
	if dir == "" {
		meta, err := adm.BrokerMetadata(ctx)
		if err != nil {
			client.Close()
			return nil, fmt.Errorf("reading cluster metadata: %w", err)
		}
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		dir = filepath.Join(base, "strata", "clusters", unsafeChars.ReplaceAllString(meta.Cluster, "_"))
	}
	mopts := []rlmm.Option{
		rlmm.WithBootstrapServers(f.brokers...), rlmm.WithClientID("strata-cli"), rlmm.WithCacheDir(dir),
		rlmm.WithMetadataPartitions(n), rlmm.WithTopicCreation(false), rlmm.WithLogger(f.logger(stderr)),
		rlmm.WithInitRetry(100*time.Millisecond, 30*time.Second),
	}
	if tc != nil {
		mopts = append(mopts, rlmm.WithTLS(tc))
	}
	if mech != nil {
		mopts = append(mopts, rlmm.WithSASL(mech))
	}
	m, err := rlmm.New(ctx, mopts...)
	if err != nil {
		client.Close()
		return nil, err
	}
	c := &cluster{m: m, client: client, adm: adm, n: n}
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
// partition does not stop the tool: what it could not read is reported by verify.
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
			if err != nil && !errors.As(err, &halt) {
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
	filled := int(float64(width) * float64(done) / float64(total))
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

// withCluster checks the output format, opens the cluster within the command's timeout, runs fn
// and closes the cluster.
func withCluster(cmd *cobra.Command, cf *clusterFlags, format string, fn func(ctx context.Context, c *cluster) error) error {
	if err := checkFormat(format, "table", "json"); err != nil {
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
