package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/audit"
	"github.com/stratalog/strata/proto"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// scenario is a cluster with known metadata: topic "orders" with two partitions, partition 0
// with three finished segments (epochs 0 and 1) and partition 1 with one finished segment, a gap
// after it and a stuck copy; topic "gone" with a partition marked for deletion.
type scenario struct {
	addr, cacheDir, remote string
	orders, gone           proto.UUID
	replacer               *strings.Replacer
}

var (
	fixedNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	segIDs   = []string{"AAAAAAAAQACAAAAAAAAAAQ", "AAAAAAAAQACAAAAAAAAAAg", "AAAAAAAAQACAAAAAAAAAAw", "AAAAAAAAQACAAAAAAAAABA", "AAAAAAAAQACAAAAAAAAABQ", "AAAAAAAAQACAAAAAAAAABg"}
)

func newScenario(t *testing.T) *scenario {
	t.Helper()
	ctx := context.Background()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	tmp := t.TempDir()
	s := &scenario{addr: c.ListenAddrs()[0], cacheDir: filepath.Join(tmp, "cache"), remote: filepath.Join(tmp, "remote")}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for name, n := range map[string]int32{"orders": 2, "gone": 1} {
		if _, err := adm.CreateTopic(ctx, n, 1, nil, name); err != nil {
			t.Fatal(err)
		}
	}
	td, err := adm.ListTopics(ctx, "orders", "gone")
	if err != nil {
		t.Fatal(err)
	}
	s.orders, s.gone = proto.UUID(td["orders"].ID), proto.UUID(td["gone"].ID)
	s.replacer = strings.NewReplacer(s.orders.String(), "<orders-id>", s.gone.String(), "<gone-id>")

	b, err := startDemoBroker(ctx, s.addr, tmp, s.remote)
	if err != nil {
		t.Fatal(err)
	}
	defer b.m.Close()
	o0 := proto.TopicIDPartition{TopicID: s.orders, Topic: "orders", Partition: 0}
	o1 := proto.TopicIDPartition{TopicID: s.orders, Topic: "orders", Partition: 1}
	g0 := proto.TopicIDPartition{TopicID: s.gone, Topic: "gone", Partition: 0}
	if err := b.m.AssignPartitions(ctx, []proto.TopicIDPartition{o0, o1, g0}, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.m.WaitReady(ctx, o0, o1, g0); err != nil {
		t.Fatal(err)
	}
	type segSpec struct {
		tp         proto.TopicIDPartition
		start, end int64
		epochs     []proto.EpochEntry
		finish     bool
	}
	specs := []segSpec{
		{o0, 0, 99, []proto.EpochEntry{{Epoch: 0, StartOffset: 0}}, true},
		{o0, 100, 199, []proto.EpochEntry{{Epoch: 0, StartOffset: 100}, {Epoch: 1, StartOffset: 150}}, true},
		{o0, 200, 299, []proto.EpochEntry{{Epoch: 1, StartOffset: 200}}, true},
		{o1, 0, 49, []proto.EpochEntry{{Epoch: 0, StartOffset: 0}}, true},
		{o1, 60, 99, []proto.EpochEntry{{Epoch: 0, StartOffset: 60}}, true}, // gap 50-59
		{o1, 100, 149, []proto.EpochEntry{{Epoch: 0, StartOffset: 100}}, false},
	}
	for i, sp := range specs {
		id, err := proto.ParseUUID(segIDs[i])
		if err != nil {
			t.Fatal(err)
		}
		seg := &proto.SegmentMetadata{SegmentID: proto.SegmentID{TopicIDPartition: sp.tp, ID: id}, StartOffset: sp.start, EndOffset: sp.end,
			BrokerID: 1, MaxTimestampMs: fixedNow.Add(time.Duration(i) * time.Minute).UnixMilli(), EventTimestampMs: fixedNow.UnixMilli(),
			LeaderEpochs: sp.epochs, SegmentSizeInBytes: int32(1000 + i), State: proto.CopySegmentStarted, TxnIndexEmpty: true}
		if err := b.m.AddSegment(ctx, seg); err != nil {
			t.Fatal(err)
		}
		data, err := b.segmentFiles(sp.start, 100)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.store.Copy(ctx, seg, data); err != nil {
			t.Fatal(err)
		}
		if sp.finish {
			if err := b.m.UpdateSegment(ctx, &proto.SegmentMetadataUpdate{SegmentID: seg.SegmentID, BrokerID: 1, EventTimestampMs: fixedNow.UnixMilli(), State: proto.CopySegmentFinished}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.m.PutPartitionDelete(ctx, &proto.PartitionDeleteMetadata{TopicIDPartition: g0, BrokerID: 1, EventTimestampMs: fixedNow.UnixMilli(), State: proto.DeletePartitionMarked}); err != nil {
		t.Fatal(err)
	}
	return s
}

// run runs a command against the scenario's cluster with its cache; storage commands also get
// its local storage.
func (s *scenario) run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	full := append(args, "--brokers", s.addr)
	if args[0] != "tail" {
		full = append(full, "--cache-dir", s.cacheDir)
	}
	if args[0] == "verify" || args[0] == "repair" {
		full = append(full, "--local-dir", s.remote)
	}
	out, errOut, code := runCLI(t, "", full...)
	return s.replacer.Replace(out), s.replacer.Replace(errOut), code
}

// mustRun is run that fails the test unless the exit status is want.
func (s *scenario) mustRun(t *testing.T, want int, args ...string) string {
	t.Helper()
	out, errOut, code := s.run(t, args...)
	if code != want {
		t.Fatalf("strata %s: exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errOut)
	}
	return out
}

// golden compares got with testdata/<name>, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func mustUnmarshal(t *testing.T, data string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(data), v); err != nil {
		t.Fatalf("%v in:\n%s", err, data)
	}
}

func kindsOf(t *testing.T, out string) map[audit.Kind]int {
	t.Helper()
	var found []anomalyJSON
	mustUnmarshal(t, out, &found)
	kinds := map[audit.Kind]int{}
	for _, a := range found {
		kinds[a.Kind]++
	}
	return kinds
}

var mpRe = regexp.MustCompile(`"metadataPartition": [0-9]+`)

var ageRe = regexp.MustCompile(`(COPY_SEGMENT_STARTED for )[0-9hms.]+|"ageMs": [0-9]+|[0-9]+h[0-9]+m[0-9.]+s`)

func TestCommandsAgainstACluster(t *testing.T) {
	s := newScenario(t)

	golden(t, "segments.txt", s.mustRun(t, 0, "segments", "--topic", "orders"))
	out := s.mustRun(t, 0, "segments", "--topic", "orders", "--format", "json")
	golden(t, "segments.json", out)
	var rows []map[string]any
	mustUnmarshal(t, out, &rows)
	if len(rows) != 6 {
		t.Fatalf("segments json: %d rows", len(rows))
	}
	out = s.mustRun(t, 0, "segments", "--topic", "orders", "--partition", "1", "--state", "COPY_SEGMENT_STARTED")
	if strings.Count(out, "\n") != 2 || !strings.Contains(out, segIDs[5]) {
		t.Fatalf("filtered segments:\n%s", out)
	}
	// A topic neither in the cluster nor in the metadata is an error, as in checkpoint.
	if _, errOut, code := s.run(t, "segments", "--topic", "nosuch"); code != exitError || !strings.Contains(errOut, "topic nosuch not found") {
		t.Fatalf("segments of a missing topic: exit %d, %s", code, errOut)
	}

	golden(t, "partitions.txt", s.mustRun(t, 0, "partitions"))
	// The metadata partition follows from the topic id, which the cluster picks at random.
	golden(t, "partitions.json", mpRe.ReplaceAllString(s.mustRun(t, 0, "partitions", "--format", "json"), `"metadataPartition": <mp>`))

	out = s.mustRun(t, 0, "checkpoint", "--topic", "orders", "--format", "json")
	// The topic id is replaced in the output; the rest is read as audit.TopicCheckpoint has it.
	var cps []struct {
		TimeMs     *int64                        `json:"checkpointTimestampMs"`
		HeldBackBy []int32                       `json:"heldBackBy"`
		Partitions []audit.PartitionCheckpointOf `json:"partitions"`
	}
	mustUnmarshal(t, out, &cps)
	if len(cps) != 1 {
		t.Fatal(out)
	}
	cp := cps[0]
	// Partition 0 is contiguous to 299 with its last segment's timestamp; partition 1 stops at
	// the gap after offset 49; the topic is complete to the older of the two times, partition 0's.
	if cp.Partitions[0].Checkpoint.Offset != 299 || cp.Partitions[1].Checkpoint.Offset != 49 ||
		*cp.TimeMs != fixedNow.Add(2*time.Minute).UnixMilli() || len(cp.HeldBackBy) != 0 {
		t.Fatalf("checkpoint = %+v", cp)
	}
	golden(t, "checkpoint.txt", ageRe.ReplaceAllString(s.mustRun(t, 0, "checkpoint", "--topic", "orders"), "<age>"))

	out = s.mustRun(t, exitFindings, "verify", "--format", "json")
	golden(t, "verify.json", ageRe.ReplaceAllString(out, "<age>"))
	if kinds := kindsOf(t, out); kinds[audit.StuckCopy] != 1 || kinds[audit.Gap] != 1 || kinds[audit.PartitionDelete] != 1 || len(kinds) != 3 {
		t.Fatalf("anomalies = %v", kinds)
	}
	out = s.mustRun(t, exitFindings, "verify", "--format", "prometheus")
	for _, want := range []string{`strata_verify_anomalies{kind="stuck-copy"} 1`, `strata_verify_anomalies{kind="gap"} 1`,
		`strata_verify_anomalies{kind="orphan"} 0`, `strata_verify_anomalies{kind="halted-partition"} 0`, "strata_verify_timestamp_seconds "} {
		if !strings.Contains(out, want) {
			t.Fatalf("prometheus output lacks %q:\n%s", want, out)
		}
	}

	// An object nobody owns, and one that vanished.
	if err := os.WriteFile(filepath.Join(s.remote, "kafka-tiered-storage", "stray.bin"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	matches, err := filepath.Glob(filepath.Join(s.remote, "kafka-tiered-storage", "orders-0-*", "*"+segIDs[0]+".log"))
	if err != nil || len(matches) != 1 {
		t.Fatalf("log of the first segment: %v %v", matches, err)
	}
	if err := os.Remove(matches[0]); err != nil {
		t.Fatal(err)
	}
	out = s.mustRun(t, exitFindings, "verify")
	if !strings.Contains(out, string(audit.Stray)) || !strings.Contains(out, string(audit.MissingObjects)) {
		t.Fatalf("verify after damage:\n%s", out)
	}

	out = s.mustRun(t, 0, "repair")
	if !strings.Contains(out, string(audit.DeleteSegment)) || !strings.Contains(out, string(audit.FinishPartition)) || !strings.Contains(out, string(audit.Manual)) {
		t.Fatalf("repair plan:\n%s", out)
	}
	out = s.mustRun(t, 0, "repair", "--execute")
	if strings.Count(out, "done") != 2 {
		t.Fatalf("repair --execute:\n%s", out)
	}
	kinds := kindsOf(t, s.mustRun(t, exitFindings, "verify", "--format", "json"))
	if kinds[audit.StuckCopy] != 0 || kinds[audit.PartitionDelete] != 0 || kinds[audit.Gap] != 1 || kinds[audit.MissingObjects] != 1 || kinds[audit.Stray] != 1 {
		t.Fatalf("after repair: %v", kinds)
	}

	// Repair deleted the stuck copy: DELETE_SEGMENT_FINISHED takes it out of the metadata.
	if _, errOut, code := s.run(t, "describe", "segment", segIDs[5]); code != exitError || !strings.Contains(errOut, "no segment "+segIDs[5]) {
		t.Fatalf("describe of a deleted segment (%d): %s", code, errOut)
	}
	var desc struct {
		Segment map[string]any `json:"segment"`
		History []segmentEvent `json:"history"`
	}
	mustUnmarshal(t, s.mustRun(t, 0, "describe", "segment", segIDs[1], "--format", "json"), &desc)
	if len(desc.History) != 2 || desc.Segment["state"] != "COPY_SEGMENT_FINISHED" {
		t.Fatalf("describe: %+v", desc)
	}

	out = s.mustRun(t, 0, "tail", "--from-beginning")
	if strings.Count(out, "\n") != 16 || !strings.HasPrefix(out, "partition: ") {
		t.Fatalf("tail (%d lines):\n%s", strings.Count(out, "\n"), out)
	}
	for _, line := range strings.Split(strings.TrimSpace(s.mustRun(t, 0, "tail", "--last", "1", "--format", "json")), "\n") {
		var ev tailEvent
		mustUnmarshal(t, line, &ev)
		if ev.Record == nil {
			t.Fatalf("tail json line %q has no record", line)
		}
	}
	// Nothing to print ends at once with success, not with --timeout's error.
	if out := s.mustRun(t, 0, "tail", "--last", "0", "--partition", "0", "--timeout", "30s"); out != "" {
		t.Fatalf("tail --last 0 printed %q", out)
	}
}

func TestDemo(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := runDemo(context.Background(), &out, &errOut); err != nil {
		t.Fatalf("%v\n%s\n%s", err, out.String(), errOut.String())
	}
	for _, want := range []string{"stuck-copy", "delete-segment", "no anomalies", "complete", "STRATA_BROKERS"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}
