package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
)

func TestVersion(t *testing.T) {
	out, errOut, code := runCLI(t, "", "--version")
	if code != exitOK || !regexp.MustCompile(`^strata .+ \(commit .+, go1\.[0-9]+`).MatchString(out) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// Each command lists only the flags it uses, and its own --format.
func TestPerCommandFlags(t *testing.T) {
	for _, tc := range []struct {
		cmd         []string
		has, hasNot []string
		format      string // the default
	}{
		{[]string{"decode"}, []string{"--input"}, []string{"--brokers", "--s3-bucket", "--cache-dir"}, "json"},
		{[]string{"locate"}, []string{"--brokers", "--metadata-partitions"}, []string{"--s3-bucket", "--local-dir", "--cache-dir"}, "table"},
		{[]string{"segments"}, []string{"--brokers", "--cache-dir", "--topic"}, []string{"--s3-bucket", "--local-dir", "--stuck-after"}, "table"},
		{[]string{"partitions"}, []string{"--brokers", "--cache-dir"}, []string{"--s3-bucket", "--local-dir"}, "table"},
		{[]string{"describe", "segment"}, []string{"--brokers", "--cache-dir"}, []string{"--s3-bucket", "--local-dir"}, "table"},
		{[]string{"tail"}, []string{"--brokers", "--last"}, []string{"--s3-bucket", "--cache-dir"}, "text"},
		{[]string{"checkpoint"}, []string{"--brokers", "--topic"}, []string{"--s3-bucket", "--local-dir"}, "table"},
		{[]string{"verify"}, []string{"--brokers", "--s3-bucket", "--local-dir", "--stuck-after"}, []string{"--orphan-age", "--execute"}, "table"},
		{[]string{"repair"}, []string{"--brokers", "--s3-bucket", "--local-dir", "--orphan-age", "--execute"}, nil, "table"},
	} {
		out, _, code := runCLI(t, "", append(tc.cmd, "--help")...)
		if code != exitOK {
			t.Fatalf("%v --help: exit %d", tc.cmd, code)
		}
		for _, f := range tc.has {
			if !strings.Contains(out, f) {
				t.Errorf("%v --help lacks %s", tc.cmd, f)
			}
		}
		for _, f := range tc.hasNot {
			if strings.Contains(out, f+" ") {
				t.Errorf("%v --help lists %s, which it does not use", tc.cmd, f)
			}
		}
		if !strings.Contains(out, `(default "`+tc.format+`")`) && !strings.Contains(out, "--format format") {
			t.Errorf("%v --help: no --format", tc.cmd)
		}
		if !strings.Contains(out, "Exit status: 0") {
			t.Errorf("%v --help does not document the exit status", tc.cmd)
		}
	}
}

// Values that make no sense are refused before anything connects (the broker given refuses
// connections, so a command that tried would fail otherwise), with exit status 2.
func TestRefusedValues(t *testing.T) {
	for _, args := range [][]string{
		{"verify", "--stuck-after", "-1s"},
		{"repair", "--orphan-age", "-1h"},
		{"repair", "--stuck-after", "-1m"},
		{"tail", "--last", "-1"},
		{"tail", "--partition", "-1"},
		{"segments", "--topic", "t", "--partition", "-2"},
		{"partitions", "--timeout", "0s"},
		{"verify", "--timeout", "-1s"},
		{"segments", "--topic", "t", "--format", "prometheus"},
		{"tail", "--format", "table"},
		{"decode", "--format", "table"},
		{"partitions", "--no-such-flag"},
	} {
		_, errOut, code := runCLI(t, "", append(args, "--brokers", "127.0.0.1:1")...)
		flag := args[len(args)-2]
		if args[len(args)-1] == "--no-such-flag" {
			flag = "--no-such-flag"
		}
		if code != exitError || !strings.Contains(errOut, flag) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message naming %s", args, code, errOut, flag)
		}
	}
}

func TestDecodeHelpExample(t *testing.T) {
	help, _, _ := runCLI(t, "", "decode", "--help")
	m := regexp.MustCompile(`echo ([0-9a-f]+) \| strata decode --format text`).FindStringSubmatch(help)
	if m == nil {
		t.Fatalf("no echo example in:\n%s", help)
	}
	out, errOut, code := runCLI(t, m[1]+"\n", "decode", "--format", "text")
	if code != exitOK || !strings.HasPrefix(out, "RemotePartitionDeleteMetadata{") {
		t.Fatalf("the example does not decode: exit %d, %q, %q", code, out, errOut)
	}
}

// syncBuffer is a bytes.Buffer safe for a command writing while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A broker that goes away under tail --follow is named on stderr after unreachableAfter, and
// again every unreachableEvery, instead of silence.
func TestUnreachableBrokerIsNamed(t *testing.T) {
	defer func(after, every time.Duration) { unreachableAfter, unreachableEvery = after, every }(unreachableAfter, unreachableEvery)
	unreachableAfter, unreachableEvery = 200*time.Millisecond, 500*time.Millisecond
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, proto.TopicName))
	if err != nil {
		t.Fatal(err)
	}
	addr := c.ListenAddrs()[0]
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	rec := mustEncode(t, &proto.PartitionDeleteMetadata{TopicIDPartition: cliTP, State: proto.DeletePartitionMarked})
	err = cl.ProduceSync(context.Background(), &kgo.Record{Topic: proto.TopicName, Partition: 0, Value: rec}).FirstErr()
	cl.Close()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"tail", "--follow", "--brokers", addr}, strings.NewReader(""), &out, &errOut)
	}()
	deadline := time.After(time.Minute)
	// Once tail has read the record, the broker goes away.
	for !strings.Contains(out.String(), "DELETE_PARTITION_MARKED") {
		select {
		case <-deadline:
			t.Fatalf("tail printed nothing; stderr:\n%s", errOut.String())
		case code := <-done:
			t.Fatalf("tail ended with %d; stderr:\n%s", code, errOut.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	c.Close()
	for strings.Count(errOut.String(), "cannot reach broker "+addr) < 2 {
		select {
		case <-deadline:
			t.Fatalf("no warning naming %s twice; stderr:\n%s", addr, errOut.String())
		case code := <-done:
			t.Fatalf("tail ended with %d; stderr:\n%s", code, errOut.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("tail --follow interrupted: exit %d", code)
	}
}

func TestLocalDirMustExist(t *testing.T) {
	s := newScenario(t)
	_, errOut, code := runCLI(t, "", "verify", "--brokers", s.addr, "--cache-dir", s.cacheDir, "--local-dir", filepath.Join(t.TempDir(), "nosuch"))
	if code != exitError || !strings.Contains(errOut, "--local-dir") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

// holdCacheEnv names the cache directory a helper process holds open until its stdin closes.
const holdCacheEnv = "STRATA_TEST_HOLD_CACHE"

// TestHelperHoldCache is not a test: TestCacheHeldByAnotherProcess runs the test binary as a
// second process that holds a cache open, as another strata would.
func TestHelperHoldCache(t *testing.T) {
	dir := os.Getenv(holdCacheEnv)
	if dir == "" {
		t.Skip("helper process only")
	}
	s, err := cache.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fmt.Println("holding")
	_, _ = io.Copy(io.Discard, os.Stdin)
}

func TestCacheHeldByAnotherProcess(t *testing.T) {
	s := newScenario(t)
	helper := exec.Command(os.Args[0], "-test.run=^TestHelperHoldCache$")
	helper.Env = append(os.Environ(), holdCacheEnv+"="+s.cacheDir)
	stdin, err := helper.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := helper.Wait(); err != nil {
			t.Errorf("helper: %v", err)
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "holding\n" {
		t.Fatalf("helper said %q: %v", line, err)
	}
	_, errOut, code := s.run(t, "partitions")
	if code != exitError || !strings.Contains(errOut, "another strata process holds the cache in "+s.cacheDir) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestLocateAsksTheCluster(t *testing.T) {
	s := newScenario(t)
	out, errOut, code := runCLI(t, "", "locate", "--topic-id", s.orders.String(), "--partition", "1", "--brokers", s.addr, "--format", "json")
	want := proto.MetadataPartition(proto.TopicIDPartition{TopicID: s.orders, Partition: 1}, 5)
	if code != exitOK || !strings.Contains(out, `"metadataPartitions":5`) || !strings.Contains(out, `"metadataPartition":`+string(rune('0'+want))) {
		t.Fatalf("exit %d, stdout %q, stderr %q (want metadata partition %d of 5)", code, out, errOut, want)
	}
}

// newBareCluster starts a cluster and returns its address and a client on it.
func newBareCluster(t *testing.T) (string, *kgo.Client) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return c.ListenAddrs()[0], cl
}

func TestTailWithoutMetadataTopic(t *testing.T) {
	addr, _ := newBareCluster(t)
	_, errOut, code := runCLI(t, "", "tail", "--brokers", addr, "--timeout", "30s")
	if code != exitError || !strings.Contains(errOut, "has no "+proto.TopicName+" topic") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

// A metadata partition halted at a record it cannot decode leaves the rows of its partitions
// incomplete: partitions and segments mark them, say so on stderr, and exit with status 1.
func TestHaltedRowsAreMarked(t *testing.T) {
	addr, cl := newBareCluster(t)
	ctx := context.Background()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, proto.TopicName); err != nil {
		t.Fatal(err)
	}
	seg := &proto.SegmentMetadata{SegmentID: proto.SegmentID{TopicIDPartition: cliTP, ID: cliSeg}, EndOffset: 9,
		LeaderEpochs: []proto.EpochEntry{{Epoch: 0, StartOffset: 0}}, SegmentSizeInBytes: 1, State: proto.CopySegmentStarted, EventTimestampMs: time.Now().UnixMilli()}
	for _, v := range [][]byte{mustEncode(t, seg), {0x00, 0x63, 0x00}} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: proto.TopicName, Partition: 0, Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cacheDir := t.TempDir()
	for _, args := range [][]string{{"partitions"}, {"segments", "--topic", "foo"}} {
		out, errOut, code := runCLI(t, "", append(args, "--brokers", addr, "--cache-dir", cacheDir)...)
		if code != exitFindings || !strings.Contains(out, "halted at 1") || !strings.Contains(errOut, "halted at offset 1") {
			t.Fatalf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
		}
	}
	out, _, code := runCLI(t, "", "partitions", "--brokers", addr, "--cache-dir", cacheDir, "--format", "json")
	if code != exitFindings || !strings.Contains(out, `"halted": {`) {
		t.Fatalf("json: exit %d\n%s", code, out)
	}
}

// Records the metadata could not apply are kept, and verify reports each with why: an update of
// a segment nobody added, a delete finished without being started, a duplicate add.
func TestVerifyReportsDroppedRecords(t *testing.T) {
	addr, cl := newBareCluster(t)
	ctx := context.Background()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, proto.TopicName); err != nil {
		t.Fatal(err)
	}
	seg := func(n byte) *proto.SegmentMetadata {
		return &proto.SegmentMetadata{SegmentID: proto.SegmentID{TopicIDPartition: cliTP, ID: proto.UUID{15: n}}, StartOffset: int64(n) * 10, EndOffset: int64(n)*10 + 9,
			LeaderEpochs: []proto.EpochEntry{{Epoch: 0, StartOffset: int64(n) * 10}}, SegmentSizeInBytes: 1, State: proto.CopySegmentStarted, EventTimestampMs: time.Now().UnixMilli()}
	}
	upd := func(n byte, st proto.SegmentState) *proto.SegmentMetadataUpdate {
		return &proto.SegmentMetadataUpdate{SegmentID: seg(n).SegmentID, EventTimestampMs: time.Now().UnixMilli(), State: st}
	}
	for _, r := range []proto.Record{seg(1), upd(1, proto.CopySegmentFinished), upd(2, proto.CopySegmentFinished), seg(3), upd(3, proto.DeleteSegmentFinished), seg(1)} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: proto.TopicName, Partition: 0, Value: mustEncode(t, r)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, code := runCLI(t, "", "verify", "--brokers", addr, "--cache-dir", t.TempDir(), "--format", "json")
	if code != exitFindings {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	var found []anomalyJSON
	mustUnmarshal(t, out, &found)
	var offsets []int64
	for _, a := range found {
		if a.Kind == "dropped-record" && a.Offset != nil {
			offsets = append(offsets, *a.Offset)
		}
	}
	if !slices.Equal(offsets, []int64{2, 4, 5}) {
		t.Fatalf("dropped records reported at offsets %v, want 2, 4 and 5:\n%s", offsets, out)
	}
}
