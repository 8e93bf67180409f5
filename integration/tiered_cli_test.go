//go:build integration

package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rsm"
)

// TestCLIOnKafkaTieredTopic runs the strata command, as an operator would, against the real
// broker after Kafka has tiered a topic with its own metadata manager into LocalTieredStorage:
// `segments` lists exactly Kafka's segments, `verify` finds nothing wrong with Kafka's healthy
// tiered data (and does find an object no segment owns, once one is put there), and
// `checkpoint` reports the offset up to which remote storage is contiguous.
func TestCLIOnKafkaTieredTopic(t *testing.T) {
	requireTool(t, "go") // to build the command, while Kafka tiers
	tieredDir := requireEnv(t, envTieredDir)
	tt := tierSomeSegments(t)
	// One cache for the three commands, as an operator's machine keeps one: the first run reads
	// the whole metadata topic, the others only what was published since.
	cluster := []string{"--brokers", strings.Join(kafkaBrokers(t), ","), "--cache-dir", t.TempDir(), "--timeout", "1m"}
	strata := func(args ...string) strataResult {
		t.Helper()
		return runStrata(t, "", append(args, cluster...)...)
	}

	res := strata("segments", "--topic", tt.TP.Topic, "--format", "json")
	if res.Code != 0 {
		t.Fatalf("strata segments: exit status %d\nstderr:\n%s", res.Code, res.Stderr)
	}
	var rows []json.RawMessage
	if err := json.Unmarshal([]byte(res.Stdout), &rows); err != nil {
		t.Fatalf("strata segments --format json: %v\n%s", err, res.Stdout)
	}
	if len(rows) != len(tt.Segments) {
		t.Fatalf("strata segments lists %d segments of %s, Kafka tiered %d:\n%s", len(rows), tt.TP.Topic, len(tt.Segments), res.Stdout)
	}
	for i, row := range rows {
		r, err := proto.UnmarshalRecordJSON(row)
		if err != nil {
			t.Fatalf("segment %d: %v\n%s", i, err, row)
		}
		got, ok := r.(*proto.SegmentMetadata)
		if !ok {
			t.Fatalf("segment %d is a %s: %s", i, r.TypeName(), row)
		}
		// Kafka's segments by start offset, each as its files describe it.
		s := tt.Segments[i]
		if got.SegmentID != (proto.SegmentID{TopicIDPartition: tt.TP, ID: s.ID}) || got.StartOffset != s.StartOffset ||
			got.EndOffset != s.EndOffset || got.SegmentSizeInBytes != int32(s.Size) || got.MaxTimestampMs != s.MaxTimestampMs ||
			!slices.Equal(got.LeaderEpochs, s.Epochs) || got.BrokerID != tt.BrokerID || got.State != proto.CopySegmentFinished {
			t.Errorf("strata segments, row %d:\n  %s\nwant the segment of %s, %d bytes, epochs %v, in COPY_SEGMENT_FINISHED by broker %d",
				i, got, filepath.Base(s.LogFile), s.Size, s.Epochs, tt.BrokerID)
		}
	}

	// Kafka's data is healthy: verify, over the whole metadata topic and the whole
	// LocalTieredStorage folder, exits 0. The other tests leave nothing behind that would make
	// it complain (see forgetPartitions).
	res = strata("verify", "--local-dir", tieredDir, "--format", "json")
	if anomalies := notOthersDrops(parseAnomalies(t, res), tt.TP.Topic); exitStatus(res, anomalies) != 0 || len(anomalies) != 0 {
		t.Fatalf("strata verify on Kafka's tiered data: exit status %d, %d anomalies, want none:\n%s\nstderr:\n%s",
			res.Code, len(anomalies), res.Stdout, res.Stderr)
	}

	// A copy of a segment's log under a segment id no metadata names is what a broker that
	// died mid-copy leaves behind: verify finds it, names it, and exits 1.
	orphanID := proto.NewUUID()
	orphan := filepath.Join(tt.Dir, rsm.SegmentFileName(tt.Segments[0].StartOffset, orphanID, rsm.FileLog))
	b, err := os.ReadFile(tt.Segments[0].LogFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(orphan, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// Removed before the topic is deleted: Kafka deletes only the files of its segments.
	t.Cleanup(func() { os.Remove(orphan) })
	res = strata("verify", "--local-dir", tieredDir, "--format", "json")
	anomalies := notOthersDrops(parseAnomalies(t, res), tt.TP.Topic)
	if res.Code != 1 || len(anomalies) != 1 || anomalies[0].Kind != "orphan" || anomalies[0].SegmentID != orphanID.String() ||
		!strings.HasSuffix(anomalies[0].Object, filepath.Base(orphan)) {
		t.Errorf("strata verify with %s added: exit status %d, anomalies\n%s\nwant exit status 1 and one orphan, that file",
			filepath.Base(orphan), res.Code, res.Stdout)
	}
	if err := os.Remove(orphan); err != nil {
		t.Fatal(err)
	}

	// Kafka tiered every closed segment, back to back from offset 0: the checkpoint is the end
	// of the last one, and its time the newest record's among them.
	res = strata("checkpoint", "--topic", tt.TP.Topic, "--format", "json")
	if res.Code != 0 {
		t.Fatalf("strata checkpoint: exit status %d\nstderr:\n%s", res.Code, res.Stderr)
	}
	var cps []struct {
		Topic      string     `json:"topic"`
		TopicID    proto.UUID `json:"topicId"`
		TimeMs     *int64     `json:"checkpointTimestampMs"`
		HeldBackBy []int32    `json:"heldBackBy"`
		Partitions []struct {
			Partition  int32  `json:"partition"`
			Status     string `json:"status"`
			Checkpoint *struct {
				StartOffset    int64 `json:"startOffset"`
				Offset         int64 `json:"offset"`
				MaxTimestampMs int64 `json:"maxTimestampMs"`
			} `json:"checkpoint"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &cps); err != nil {
		t.Fatalf("strata checkpoint --format json: %v\n%s", err, res.Stdout)
	}
	first, last := tt.Segments[0], tt.Segments[len(tt.Segments)-1]
	var maxTs int64
	for _, s := range tt.Segments {
		maxTs = max(maxTs, s.MaxTimestampMs)
	}
	ok := len(cps) == 1 && cps[0].Topic == tt.TP.Topic && cps[0].TopicID == tt.TP.TopicID && len(cps[0].Partitions) == 1 &&
		len(cps[0].HeldBackBy) == 0 && cps[0].TimeMs != nil && *cps[0].TimeMs == maxTs
	if ok {
		p := cps[0].Partitions[0]
		ok = p.Partition == 0 && p.Status == "tiered" && p.Checkpoint != nil &&
			p.Checkpoint.StartOffset == first.StartOffset && p.Checkpoint.Offset == last.EndOffset && p.Checkpoint.MaxTimestampMs == maxTs
	}
	if !ok {
		t.Errorf("strata checkpoint --topic %s:\n%s\nwant partition 0 tiered from offset %d to %d, checkpoint time %d for partition and topic",
			tt.TP.Topic, res.Stdout, first.StartOffset, last.EndOffset, maxTs)
	}
	t.Logf("strata checkpoint: %s tiered from offset %d to %d in %d segments", tt.TP, first.StartOffset, last.EndOffset, len(tt.Segments))
}

// anomaly is one finding of `strata verify --format json`.
type anomaly struct {
	Kind      string `json:"kind"`
	Partition string `json:"partition"`
	SegmentID string `json:"segmentId"`
	Object    string `json:"object"`
	Detail    string `json:"detail"`
}

// notOthersDrops leaves out the dropped records of user partitions outside topic: other tests
// of the suite publish records the metadata cannot apply on purpose (TestManagerWriteOutcomes),
// the topic keeps them for ever, and verify rightly reports them on every run after.
func notOthersDrops(as []anomaly, topic string) []anomaly {
	var out []anomaly
	for _, a := range as {
		if a.Kind == "dropped-record" && topicOf(a.Partition) != topic {
			continue
		}
		out = append(out, a)
	}
	return out
}

// topicOf returns the topic of a partition as verify prints it, <topic id>:<topic>-<partition>.
func topicOf(partition string) string {
	_, tp, ok := strings.Cut(partition, ":")
	if !ok {
		return ""
	}
	if i := strings.LastIndex(tp, "-"); i >= 0 {
		return tp[:i]
	}
	return tp
}

// exitStatus is what verify's exit status would be with only the anomalies as: 1 with any, 0
// without, and the status it had when it failed (2).
func exitStatus(res strataResult, as []anomaly) int {
	switch {
	case res.Code == 2:
		return 2
	case len(as) > 0:
		return 1
	}
	return 0
}

// parseAnomalies reads what `strata verify --format json` printed, failing the test if the
// command failed without reporting anomalies.
func parseAnomalies(t *testing.T, res strataResult) []anomaly {
	t.Helper()
	var out []anomaly
	if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil {
		t.Fatalf("strata verify --format json: exit status %d, %v\nstdout:\n%s\nstderr:\n%s", res.Code, err, res.Stdout, res.Stderr)
	}
	return out
}
