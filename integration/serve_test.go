//go:build integration

package integration

import (
	"context"
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

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	rlmmv1 "github.com/stratalog/strata/api/rlmm/v1"
	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rlmm"
)

// serveProcess is one `strata serve` child, as the Kafka plugin runs it: properties on stdin,
// stopping at stdin EOF.
type serveProcess struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	log   *strings.Builder
}

// startServe starts `strata serve` with the properties a broker whose first log directory is
// logDir passes its metadata manager, and waits for its socket.
func startServe(t *testing.T, logDir, socket string) *serveProcess {
	t.Helper()
	props := strings.Join([]string{
		rlmm.PrefixCommonClient + "bootstrap.servers=" + strings.Join(kafkaBrokers(t), ","),
		rlmm.PrefixCommonClient + "security.protocol=PLAINTEXT",
		fmt.Sprintf("%s=%d", rlmm.PropNumPartitions, kafkaMetadataPartitions),
		rlmm.PropReplicationFactor + "=1",
		rlmm.PropMinISR + "=1",
		rlmm.PropInitRetryMaxTimeout + "=30000",
		"log.dir=" + logDir,
		"broker.id=1",
		"cluster.id=strata-it",
	}, "\n")
	cmd := exec.Command(strataBinary(t), "serve", "--properties", "-", "--exit-on-stdin-eof", "--socket", socket)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProcess{cmd: cmd, stdin: stdin, log: &strings.Builder{}}
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	if _, err := io.WriteString(stdin, props+"\n#end\n"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if c, err := net.Dial("unix", socket); err == nil {
			c.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("strata serve not serving on %s after a minute", socket)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop closes stdin, as a broker that goes away does, and waits for a clean exit.
func (p *serveProcess) stop(t *testing.T) {
	t.Helper()
	p.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("strata serve after stdin EOF: %v\n%s", err, p.log)
		}
	case <-time.After(time.Minute):
		p.cmd.Process.Kill()
		t.Fatalf("strata serve did not stop at stdin EOF\n%s", p.log)
	}
}

func serveClient(t *testing.T, socket string) rlmmv1.RemoteLogMetadataServiceClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return rlmmv1.NewRemoteLogMetadataServiceClient(conn)
}

func pbPartition(tp proto.TopicIDPartition) *rlmmv1.TopicIdPartition {
	return &rlmmv1.TopicIdPartition{TopicId: tp.TopicID[:], Topic: tp.Topic, Partition: tp.Partition}
}

// assignThroughServe makes tp a leader through the service and waits until IsReady says so.
func assignThroughServe(t *testing.T, ctx context.Context, c rlmmv1.RemoteLogMetadataServiceClient, tp proto.TopicIDPartition) {
	t.Helper()
	if _, err := c.OnPartitionLeadershipChanges(ctx, &rlmmv1.OnPartitionLeadershipChangesRequest{LeaderPartitions: []*rlmmv1.TopicIdPartition{pbPartition(tp)}}); err != nil {
		t.Fatal(err)
	}
	for {
		r, err := c.IsReady(ctx, &rlmmv1.IsReadyRequest{TopicIdPartition: pbPartition(tp)})
		if err != nil {
			t.Fatal(err)
		}
		if r.Ready {
			return
		}
		if r.Reason.GetKind() != rlmmv1.ErrorKind_ERROR_KIND_NOT_READY {
			t.Fatalf("IsReady(%s) = %v", tp, r)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never ready: %v", tp, r)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func lookupThroughServe(t *testing.T, ctx context.Context, c rlmmv1.RemoteLogMetadataServiceClient, tp proto.TopicIDPartition, epoch int32, offset int64) *proto.SegmentMetadata {
	t.Helper()
	r, err := c.RemoteLogSegmentMetadata(ctx, &rlmmv1.RemoteLogSegmentMetadataRequest{TopicIdPartition: pbPartition(tp), EpochForOffset: epoch, Offset: offset})
	if err != nil {
		t.Fatal(err)
	}
	if r.Record == nil {
		return nil
	}
	rec, err := proto.Decode(r.Record)
	if err != nil {
		t.Fatal(err)
	}
	return rec.(*proto.SegmentMetadata)
}

// TestServeOnKafka: `strata serve` on the real broker, as the plugin runs it: the store goes
// beside the log directory, writes through the socket are applied when they return, a clean
// stop at stdin EOF and a SIGKILL both leave a store the next process resumes from, and the
// stale socket a killed process leaves is replaced.
func TestServeOnKafka(t *testing.T) {
	dir, err := os.MkdirTemp("", "strata-serve-it")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	logDir := filepath.Join(dir, "kafka-logs")
	if err := os.Mkdir(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "rlmm.sock")
	ctx := testContext(t, 3*time.Minute)
	tp := newPartition(t, uniqueTopic(t), 0)

	p := startServe(t, logDir, socket)
	c := serveClient(t, socket)
	assignThroughServe(t, ctx, c, tp)
	segs := []*proto.SegmentMetadata{newSegment(tp, 0, 99, 1000), newSegment(tp, 100, 199, 1000)}
	for _, s := range segs {
		b, err := proto.Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.AddRemoteLogSegmentMetadata(ctx, &rlmmv1.AddRemoteLogSegmentMetadataRequest{Record: b}); err != nil {
			t.Fatalf("add %s: %v", s.SegmentID, err)
		}
		if b, err = proto.Encode(updateOf(s, proto.CopySegmentFinished)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.UpdateRemoteLogSegmentMetadata(ctx, &rlmmv1.UpdateRemoteLogSegmentMetadataRequest{Record: b}); err != nil {
			t.Fatalf("finish %s: %v", s.SegmentID, err)
		}
		// Applied when the call returns.
		if got := lookupThroughServe(t, ctx, c, tp, 0, s.StartOffset); got == nil || got.SegmentID != s.SegmentID || got.State != proto.CopySegmentFinished {
			t.Fatalf("lookup after finishing %s = %v", s.SegmentID, got)
		}
	}
	if entries, _ := os.ReadDir(logDir); len(entries) != 0 {
		t.Fatalf("the log directory holds %v: Kafka would refuse to start", entries)
	}
	if fi, err := os.Stat(rlmm.DefaultCacheDir(logDir)); err != nil || !fi.IsDir() {
		t.Fatalf("no store beside the log directory: %v", err)
	}

	// A clean stop, then a new process resumes from the store.
	p.stop(t)
	p = startServe(t, logDir, socket)
	c = serveClient(t, socket)
	assignThroughServe(t, ctx, c, tp)
	if got := lookupThroughServe(t, ctx, c, tp, 0, 150); got == nil || got.SegmentID != segs[1].SegmentID {
		t.Fatalf("lookup after a restart = %v, want %s", got, segs[1].SegmentID)
	}

	// SIGKILL leaves the socket file behind and the store unclosed; the next process replaces
	// the one and reopens the other.
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	if _, err := os.Lstat(socket); err != nil {
		t.Fatalf("a killed server left no socket file (%v): the test no longer covers a stale socket", err)
	}
	p = startServe(t, logDir, socket)
	c = serveClient(t, socket)
	assignThroughServe(t, ctx, c, tp)
	stream, err := c.ListRemoteLogSegments(ctx, &rlmmv1.ListRemoteLogSegmentsRequest{TopicIdPartition: pbPartition(tp)})
	if err != nil {
		t.Fatal(err)
	}
	var listed []proto.SegmentID
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range r.Records {
			rec, err := proto.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			listed = append(listed, rec.(*proto.SegmentMetadata).SegmentID)
		}
	}
	if len(listed) != 2 || listed[0] != segs[0].SegmentID || listed[1] != segs[1].SegmentID {
		t.Fatalf("segments after SIGKILL and restart = %v", listed)
	}
	p.stop(t)
}
