package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	rlmmv1 "github.com/stratalog/strata/api/rlmm/v1"
	"github.com/stratalog/strata/rlmm"
)

// TestMain runs the command itself when re-executed by a test that needs a real process
// (signals): STRATA_TEST_MAIN=1 makes this binary strata.
func TestMain(m *testing.M) {
	if os.Getenv("STRATA_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// serveDir is a short temporary directory: a Unix socket path must fit in 108 bytes.
func serveDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "strata-cmd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func serveCluster(t *testing.T) *kfake.Cluster {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// brokerProperties is what a broker passes its metadata manager, as a properties file.
func brokerProperties(c *kfake.Cluster, logDir string) string {
	return strings.Join([]string{
		"# as Kafka's RemoteLogManager passes them",
		rlmm.PrefixCommonClient + "bootstrap.servers=" + strings.Join(c.ListenAddrs(), ","),
		rlmm.PropNumPartitions + "=5",
		rlmm.PropReplicationFactor + "=1",
		rlmm.PropMinISR + " : 1",
		"log.dir=" + logDir,
		"broker.id=1",
		"cluster.id=abc",
		"strata.binary=/opt/strata/bin/strata",
	}, "\n") + "\n"
}

func health(t *testing.T, target string) *rlmmv1.HealthResponse {
	t.Helper()
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := rlmmv1.NewRemoteLogMetadataServiceClient(conn).Health(ctx, &rlmmv1.HealthRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func waitForSocket(t *testing.T, path string, exited <-chan int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return
		}
		select {
		case code := <-exited:
			t.Fatalf("serve exited with %d before serving", code)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no server on %s after 30s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeUntilStdinEOF: properties from stdin, ended by #end; the store beside the log
// directory and the socket beside the store by default; EOF on stdin stops it cleanly, with
// nothing on stdout and the socket removed.
func TestServeUntilStdinEOF(t *testing.T) {
	c := serveCluster(t)
	dir := serveDir(t)
	logDir := filepath.Join(dir, "kafka-logs")
	if err := os.Mkdir(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	var stdout, stderr syncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(context.Background(), []string{"serve", "--properties", "-", "--exit-on-stdin-eof"}, pr, &stdout, &stderr)
	}()
	if _, err := io.WriteString(pw, brokerProperties(c, logDir)+"#end\n"); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "kafka-logs-strata-rlmm.sock")
	waitForSocket(t, sock, exited)
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v %v, want mode 0600", fi, err)
	}
	h := health(t, "unix://"+sock)
	if !h.Serving || h.MetadataTopicPartitions != 5 {
		t.Fatalf("Health = %v", h)
	}
	if fi, err := os.Stat(filepath.Join(dir, "kafka-logs-strata-rlmm")); err != nil || !fi.IsDir() {
		t.Fatalf("store beside the log dir: %v", err)
	}
	if entries, _ := os.ReadDir(logDir); len(entries) != 0 {
		t.Fatalf("the log dir holds %v: Kafka would refuse to start", entries)
	}
	if !strings.Contains(stderr.String(), "strata.binary") {
		t.Errorf("the plugin's own property was not reported as ignored:\n%s", stderr.String())
	}

	pw.Close()
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("exit %d after stdin EOF\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop at stdin EOF")
	}
	if stdout.String() != "" {
		t.Errorf("stdout = %q, want nothing", stdout.String())
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}

// TestServeSIGTERM: the real process, on loopback TCP, stops cleanly on SIGTERM with exit 0.
func TestServeSIGTERM(t *testing.T) {
	c := serveCluster(t)
	dir := serveDir(t)
	propsFile := filepath.Join(dir, "rlmm.properties")
	if err := os.WriteFile(propsFile, []byte(brokerProperties(c, filepath.Join(dir, "logs"))), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "serve", "--properties", propsFile, "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "STRATA_TEST_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	// The log line "serving" names the address the kernel picked.
	lines := bufio.NewScanner(stderr)
	var addr string
	var log []string
	for addr == "" && lines.Scan() {
		log = append(log, lines.Text())
		var entry struct {
			Msg     string `json:"msg"`
			Address string `json:"address"`
		}
		if json.Unmarshal(lines.Bytes(), &entry) == nil && entry.Msg == "serving" {
			addr = entry.Address
		}
	}
	if addr == "" {
		t.Fatalf("no serving line:\n%s", strings.Join(log, "\n"))
	}
	if h := health(t, addr); !h.Serving {
		t.Fatalf("Health = %v", h)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(stderr)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, rest)
	}
	if !strings.Contains(string(rest), `"msg":"stopped"`) {
		t.Fatalf("no clean stop logged:\n%s", rest)
	}
}

// TestServeRefuses: bad invocations fail at once, saying why, before anything starts.
func TestServeRefuses(t *testing.T) {
	dir := serveDir(t)
	props := filepath.Join(dir, "p.properties")
	os.WriteFile(props, []byte("log.dir=/var/kafka/data\n"), 0o600)
	noDir := filepath.Join(dir, "none.properties")
	os.WriteFile(noDir, []byte("broker.id=1\n"), 0o600)
	notSocket := filepath.Join(dir, "file")
	os.WriteFile(notSocket, nil, 0o600)
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"serve"}, "--properties is required"},
		{"", []string{"serve", "--properties", props, "--listen", "10.1.2.3:9000"}, "only a loopback address"},
		{"", []string{"serve", "--properties", props, "--listen", "0.0.0.0:9000"}, "only a loopback address"},
		{"", []string{"serve", "--properties", props, "--listen", "example.com:9000"}, "only a loopback address"},
		{"", []string{"serve", "--properties", props, "--listen", "127.0.0.1"}, "--listen"},
		{"", []string{"serve", "--properties", props, "--listen", "127.0.0.1:0", "--socket", "/x"}, "none of the others"},
		{"", []string{"serve", "--properties", noDir}, "no store directory"},
		{"", []string{"serve", "--properties", filepath.Join(dir, "missing")}, "--properties"},
		{"log.dir=/x\n", []string{"serve", "--properties", "-", "--exit-on-stdin-eof"}, "before a line #end"},
		{"", []string{"serve", "--properties", props, "--log-level", "loud"}, "--log-level"},
		{"", []string{"serve", "--properties", props, "--socket", notSocket}, "not a socket"},
	} {
		_, errOut, code := runCLI(t, tc.stdin, tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want it to say %q", tc.args, code, errOut, tc.want)
		}
	}
}

// TestReadProperties: Java properties syntax, read as Kafka's Properties.load would, with no
// ${...} expansion; from stdin, #end ends them.
func TestReadProperties(t *testing.T) {
	in := "# comment\n! also a comment\na=1\nb : two\nc three\nd=multi\\\n    line\ne=\\u00e9t\\u00e9\nf=${a}\nempty=\n#end\nafter=1\n"
	got, rest, err := readProperties("-", strings.NewReader(in), true)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "1", "b": "two", "c": "three", "d": "multiline", "e": "été", "f": "${a}", "empty": ""}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	if left, _ := io.ReadAll(rest); string(left) != "after=1\n" {
		t.Fatalf("stdin after #end = %q", left)
	}
	// Without --exit-on-stdin-eof, stdin to EOF is the properties.
	got, _, err = readProperties("-", strings.NewReader("a=1\nb=2"), false)
	if err != nil || len(got) != 2 || got["b"] != "2" {
		t.Fatalf("to EOF: %v %v", got, err)
	}
}

// TestServeNotifyReady: with --notify-ready, one line "serving ADDRESS" on stdout, and a call
// made as soon as it appears is answered (no polling for the socket).
func TestServeNotifyReady(t *testing.T) {
	c := serveCluster(t)
	dir := serveDir(t)
	pr, pw := io.Pipe()
	var stdout, stderr syncBuffer
	exited := make(chan int, 1)
	sock := filepath.Join(dir, "s.sock")
	go func() {
		exited <- run(context.Background(), []string{"serve", "--properties", "-", "--exit-on-stdin-eof", "--notify-ready", "--socket", sock}, pr, &stdout, &stderr)
	}()
	if _, err := io.WriteString(pw, brokerProperties(c, filepath.Join(dir, "kafka-logs"))+"#end\n"); err != nil {
		t.Fatal(err)
	}
	want := "serving " + sock + "\n"
	deadline := time.Now().Add(30 * time.Second)
	for stdout.String() == "" {
		select {
		case code := <-exited:
			t.Fatalf("serve exited with %d before serving\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing on stdout after 30s\n%s", stderr.String())
		}
		time.Sleep(time.Millisecond)
	}
	if got := stdout.String(); got != want {
		t.Fatalf("stdout = %q, want %q", got, want)
	}
	if h := health(t, "unix://"+sock); !h.Serving {
		t.Fatalf("Health = %v", h)
	}
	pw.Close()
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("exit %d after stdin EOF\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop at stdin EOF")
	}
	if got := stdout.String(); got != want {
		t.Errorf("stdout at exit = %q, want only %q", got, want)
	}
}

// TestServeListensWhileTheManagerStarts: the socket accepts calls, and --notify-ready says so,
// before the manager is up, so that a client connects while it starts; no call is answered
// before it is. Here the cluster never answers: a call with a short deadline ends with
// DeadlineExceeded, one that waits ends with Unavailable naming why the manager did not start,
// and serve exits with that error.
func TestServeListensWhileTheManagerStarts(t *testing.T) {
	// A loopback port no one listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nobody := l.Addr().String()
	l.Close()
	dir := serveDir(t)
	props := strings.Join([]string{
		rlmm.PrefixCommonClient + "bootstrap.servers=" + nobody,
		rlmm.PropInitRetryMaxTimeout + "=3000",
		"log.dir=" + filepath.Join(dir, "kafka-logs"),
	}, "\n") + "\n#end\n"
	pr, pw := io.Pipe()
	defer pw.Close()
	var stdout, stderr syncBuffer
	exited := make(chan int, 1)
	sock := filepath.Join(dir, "s.sock")
	go func() {
		exited <- run(context.Background(), []string{"serve", "--properties", "-", "--exit-on-stdin-eof", "--notify-ready", "--socket", sock}, pr, &stdout, &stderr)
	}()
	if _, err := io.WriteString(pw, props); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for stdout.String() == "" {
		select {
		case code := <-exited:
			t.Fatalf("serve exited with %d before it said it listens\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing on stdout after 30s\n%s", stderr.String())
		}
		time.Sleep(time.Millisecond)
	}
	if got, want := stdout.String(), "serving "+sock+"\n"; got != want {
		t.Fatalf("stdout = %q, want %q", got, want)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := rlmmv1.NewRemoteLogMetadataServiceClient(conn)
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := client.Health(short, &rlmmv1.HealthRequest{}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Health while the manager starts = %v, want DeadlineExceeded (held, not answered)", err)
	}
	long, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = client.Health(long, &rlmmv1.HealthRequest{})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "the manager did not start") {
		t.Fatalf("Health waiting for a manager that fails to start = %v, want Unavailable saying so", err)
	}
	select {
	case code := <-exited:
		if code == 0 {
			t.Fatalf("serve exited 0 with no manager\n%s", stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not exit after its manager failed to start")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("the socket is left after the exit: %v", err)
	}
}
