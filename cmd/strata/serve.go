package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/magiconair/properties"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/stratalog/strata/rlmm"
	"github.com/stratalog/strata/serve"
)

// propertiesEnd ends properties read from stdin when the process keeps reading stdin after
// them (--exit-on-stdin-eof). It is a comment, so the text stays a valid properties file.
const propertiesEnd = "#end"

// serveFlags are the flags of `strata serve`.
type serveFlags struct {
	socket         string
	listen         string
	properties     string
	exitOnStdinEOF bool
	notifyReady    bool
	grace          time.Duration
	callTimeout    time.Duration
	closeTimeout   time.Duration
	logLevel       string
	metricsAddr    string // see serve_metrics.go
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve one broker's remote log metadata manager over gRPC (for the Kafka plugin)",
		Long: `serve hosts Strata's remote log metadata manager for one Kafka broker and serves it over gRPC
(api/rlmm/v1/rlmm.proto), on a Unix socket by default or on a loopback TCP address. The Kafka
plugin (io.github.stratalog.strata.kafka.StrataRemoteLogMetadataManager) starts it; an operator
seldom does.

The configuration is the broker's own: the properties its metadata manager receives, by Kafka's
names (remote.log.metadata.*, log.dir, strata.cache.dir, ...), from a file or from stdin. The
store goes to strata.cache.dir, else beside the broker's log directory (<log.dir>-strata-rlmm).
The properties, not flags, say how to reach the cluster (TLS and SASL included).

The socket appears at once, and calls made on it are answered once the manager is up (its
store open, the cluster reached), so that a client connects while the manager starts; with
--notify-ready a line "serving ADDRESS" on stdout says the socket accepts calls, so that a
parent waits for that line instead of polling for the socket. SIGTERM or SIGINT stops it: calls in flight get --grace, then the manager closes.
Logs go to stderr; nothing else is written to stdout.

With --metrics-addr it also serves, over HTTP on a loopback address, Prometheus metrics
(/metrics: the manager's, its store's, its Kafka client's, Go's and the process's), liveness
(/healthz) and readiness (/readyz: 503 naming any halted metadata partition and its offset).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), &f, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.socket, "socket", "", "Unix socket to serve on (default: the store's directory + \".sock\")")
	fl.StringVar(&f.listen, "listen", "", "serve on this loopback TCP address instead (127.0.0.1:PORT, [::1]:PORT or localhost:PORT)")
	fl.StringVar(&f.properties, "properties", "", "the broker's metadata manager properties: a file, or - for stdin (ended by EOF or a line "+propertiesEnd+")")
	fl.BoolVar(&f.exitOnStdinEOF, "exit-on-stdin-eof", false, "stop when stdin reaches EOF (the parent holds it open for its life)")
	fl.BoolVar(&f.notifyReady, "notify-ready", false, "print \"serving ADDRESS\" on stdout once the socket accepts calls")
	fl.DurationVar(&f.grace, "grace", serve.DefaultGracePeriod, "how long a stop waits for calls in flight before cancelling them")
	fl.DurationVar(&f.callTimeout, "call-timeout", serve.DefaultCallTimeout, "bound on a call whose client set no deadline")
	fl.DurationVar(&f.closeTimeout, "close-timeout", 30*time.Second, "give up closing the manager after this long")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "serve /metrics, /healthz and /readyz on this loopback TCP address (127.0.0.1:PORT)")
	cmd.MarkFlagsMutuallyExclusive("socket", "listen")
	return cmd
}

func runServe(ctx context.Context, f *serveFlags, stdin io.Reader, stdout, stderr io.Writer) error {
	// The parent may go away with our stderr pipe: a write to it must fail, not kill us.
	signal.Ignore(syscall.SIGPIPE)

	var level zapcore.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: %w", f.logLevel, err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(stderr)), level))
	defer log.Sync() //nolint:errcheck // stderr may be gone

	props, rest, err := readProperties(f.properties, stdin, f.exitOnStdinEOF)
	if err != nil {
		return err
	}
	cacheDir := rlmm.CacheDirFromProperties(props)
	if cacheDir == "" {
		return fmt.Errorf("no store directory: the properties have neither %s nor %s", rlmm.PropCacheDir, rlmm.PropLogDir)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if f.exitOnStdinEOF {
		// Owned by the process: it returns at EOF, which is what ends the process. A stop for
		// another reason leaves it blocked on a read the exit ends.
		go func() {
			io.Copy(io.Discard, rest) //nolint:errcheck // EOF or a read error both mean the parent is gone
			log.Info("stdin reached EOF: stopping")
			cancel()
		}()
	}

	if err := f.checkListen(cacheDir); err != nil {
		return err
	}
	if err := f.checkMetricsAddr(); err != nil {
		return err
	}
	reg, metricsOpts := f.metricsRegistry()
	// The socket opens before the manager starts, and calls wait for it (serve.NewStarting): the
	// client connects, and sends its first calls, while the store opens and the cluster answers,
	// instead of after. A second server of the same store finds this one answering on the
	// socket (listenOn), or fails to lock the store, before it serves anything.
	lis, err := f.listenOn(cacheDir)
	if err != nil {
		return err
	}
	srv := serve.NewStarting(f.serverOptions(log)...)
	serveCtx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(serveCtx, lis) }()
	if f.notifyReady {
		// The listener queues connections from now on, and Serve answers each call once the
		// manager is up. A parent gone with our stdout is no reason to stop.
		if _, werr := fmt.Fprintf(stdout, "serving %s\n", lis.Addr()); werr != nil {
			log.Warn("could not say on stdout that the server is up", zap.Error(werr))
		}
	}
	m, err := rlmm.New(ctx, append([]rlmm.Option{rlmm.WithProperties(props), rlmm.WithLogger(log.Named("rlmm"))}, metricsOpts...)...)
	if err != nil {
		srv.StartFailed(err)
		stopServing()
		<-served
		return err
	}
	srv.Started(m)
	stopMetrics, err := f.serveMetrics(reg, m, log.Named("metrics"))
	if err != nil {
		stopServing()
		<-served
		m.Close()
		return err
	}
	defer stopMetrics()
	err = <-served
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	select {
	case cerr := <-closed:
		if cerr != nil && err == nil {
			err = fmt.Errorf("closing the manager: %w", cerr)
		}
	case <-time.After(f.closeTimeout):
		if err == nil {
			err = fmt.Errorf("closing the manager did not finish within %s", f.closeTimeout)
		}
	}
	if err == nil {
		log.Info("stopped")
	}
	return err
}

// serverOptions are the options of the gRPC server. Whatever else serve gains (metrics
// interceptors behind --metrics-addr, say) is added here.
func (f *serveFlags) serverOptions(log *zap.Logger) []serve.Option {
	return []serve.Option{
		serve.WithLogger(log.Named("serve")),
		serve.WithGracePeriod(f.grace),
		serve.WithCallTimeout(f.callTimeout),
		serve.WithVersion(version()),
	}
}

// checkListen refuses, before the manager starts, a TCP address that is not loopback (the
// service has no authentication) and a socket path taken by something else than a socket.
func (f *serveFlags) checkListen(cacheDir string) error {
	if f.listen == "" {
		path := f.socketPath(cacheDir)
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket == 0 {
			return fmt.Errorf("--socket %s: exists and is not a socket", path)
		}
		return nil
	}
	host, _, err := net.SplitHostPort(f.listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", f.listen, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--listen %q: only a loopback address (127.0.0.1, ::1, localhost) is allowed: the service has no authentication", f.listen)
	}
	return nil
}

// listenOn opens the listener. For a Unix socket, a stale socket file (no one answering) is
// replaced, and one that answers is refused. Serve closes the listener, which removes the file.
func (f *serveFlags) listenOn(cacheDir string) (net.Listener, error) {
	if f.listen != "" {
		lis, err := net.Listen("tcp", f.listen)
		if err != nil {
			return nil, fmt.Errorf("--listen: %w", err)
		}
		return lis, nil
	}
	path := f.socketPath(cacheDir)
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("--socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("--socket %s: another server answers on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("--socket %s: removing the stale socket: %w", path, err)
		}
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("--socket: %w", err)
	}
	// Only the broker's user may call: the service has no authentication of its own.
	if err := os.Chmod(path, 0o600); err != nil {
		lis.Close()
		return nil, fmt.Errorf("--socket %s: %w", path, err)
	}
	return lis, nil
}

// socketPath is --socket, by default the store's directory + ".sock", beside it.
func (f *serveFlags) socketPath(cacheDir string) string {
	if f.socket != "" {
		return f.socket
	}
	return strings.TrimRight(cacheDir, "/") + ".sock"
}

// readProperties reads the broker's properties from a file, or from stdin for "-". It returns
// what is left of stdin: with keepStdin, properties from stdin end at a line "#end", and the
// rest of stdin is the caller's to watch for EOF.
func readProperties(from string, stdin io.Reader, keepStdin bool) (map[string]string, io.Reader, error) {
	var text []byte
	rest := stdin
	switch from {
	case "":
		return nil, nil, errors.New("--properties is required: a file, or - for stdin")
	case "-":
		br := bufio.NewReader(stdin)
		var buf bytes.Buffer
		ended := false
		for {
			line, err := br.ReadString('\n')
			if strings.TrimRight(line, "\r\n") == propertiesEnd {
				ended = true
				break
			}
			buf.WriteString(line)
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, nil, fmt.Errorf("--properties -: reading stdin: %w", err)
			}
		}
		if keepStdin && !ended {
			return nil, nil, fmt.Errorf("--properties - with --exit-on-stdin-eof: stdin ended before a line %s, so it is already at EOF", propertiesEnd)
		}
		text, rest = buf.Bytes(), br
	default:
		b, err := os.ReadFile(from)
		if err != nil {
			return nil, nil, fmt.Errorf("--properties: %w", err)
		}
		text = b
	}
	loader := properties.Loader{Encoding: properties.UTF8, DisableExpansion: true}
	p, err := loader.LoadBytes(text)
	if err != nil {
		return nil, nil, fmt.Errorf("--properties %s: %w", from, err)
	}
	return p.Map(), rest, nil
}
