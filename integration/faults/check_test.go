//go:build faults

package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/proto"
)

// row is one scenario's line of the table.
type row struct {
	scenario     string
	acked, found int
	duplicated   int
	failed       int
	longest      call
	over         []call // calls that outlived their bound
	recovery     time.Duration
	recovered    bool
	repairSteps  int
	repairFailed int
	verify       string
	notes        []string
}

// topicRecords reads the whole metadata topic: each partition's record values with their count,
// and the decoded records.
func topicRecords(ctx context.Context, s *suite) (map[int32]map[string]int, []proto.Record, error) {
	ends, err := s.c.adm.ListEndOffsets(ctx, metadataTopic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("end offsets of %s: %w", metadataTopic, err)
	}
	want := map[int32]int64{}
	offsets := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
			offsets[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	values := map[int32]map[string]int{}
	var recs []proto.Record
	if len(want) == 0 {
		return values, nil, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.env.brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{metadataTopic: offsets}))
	if err != nil {
		return nil, nil, err
	}
	defer cl.Close()
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("reading %s back: %d partitions not read to their end: %w", metadataTopic, len(want), err)
		}
		var ferr error
		fs.EachError(func(_ string, p int32, err error) { ferr = fmt.Errorf("fetch %s-%d: %w", metadataTopic, p, err) })
		if ferr != nil {
			return nil, nil, ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			if values[r.Partition] == nil {
				values[r.Partition] = map[string]int{}
			}
			values[r.Partition][string(r.Value)]++
			if d, err := proto.Decode(r.Value); err == nil {
				recs = append(recs, d)
			}
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return values, recs, nil
}

// checkScenario stops nothing: it reads the topic back and compares it with what the workload
// recorded, then runs repair and verify. Failures are reported on t and noted in the row.
func checkScenario(t *testing.T, s *suite, w *workload, name string) row {
	t.Helper()
	r := row{scenario: name}
	calls := w.rec.snapshot()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	values, recs, err := topicRecords(ctx, s)
	if err != nil {
		t.Fatalf("%v", err)
	}

	// Every acknowledged write, byte for byte, in the metadata partition it was written to.
	var missing []call
	for _, c := range calls {
		if c.Err != "" {
			r.failed++
		}
		if c.Dur > r.longest.Dur {
			r.longest = c
		}
		if c.Bound > 0 && c.Dur > c.Bound {
			r.over = append(r.over, c)
		}
		if !c.write() || c.Err != "" {
			continue
		}
		r.acked++
		switch n := values[c.MP][string(c.Value)]; {
		case n == 0:
			missing = append(missing, c)
		case n > 1:
			r.found++
			r.duplicated++
			t.Errorf("%s of %s acknowledged once is %d times in %s-%d", c.Op, c.TP, n, metadataTopic, c.MP)
		default:
			r.found++
		}
	}
	for i, c := range missing {
		if i < 10 {
			t.Errorf("%s of %s acknowledged after %v is not in %s-%d", c.Op, c.TP, c.Dur, metadataTopic, c.MP)
		}
	}
	if len(missing) > 0 {
		r.notes = append(r.notes, fmt.Sprintf("%d acknowledged writes missing", len(missing)))
	}
	sort.Slice(r.over, func(i, j int) bool { return r.over[i].Dur-r.over[i].Bound > r.over[j].Dur-r.over[j].Bound })
	for i, c := range r.over {
		if i < 10 {
			t.Errorf("%s of %s took %v, past its bound %v (err: %s)", c.Op, c.TP, c.Dur.Round(time.Millisecond), c.Bound.Round(time.Millisecond), orNil(c.Err))
		}
	}
	if len(r.over) > 0 {
		r.notes = append(r.notes, fmt.Sprintf("%d calls outlived their deadline, by up to %v (%s)",
			len(r.over), (r.over[0].Dur-r.over[0].Bound).Round(time.Millisecond), r.over[0].Op))
	}

	// Each partition marked for deletion finished exactly once.
	for _, tp := range w.marked {
		n := 0
		for _, rec := range recs {
			if d, ok := rec.(*proto.PartitionDeleteMetadata); ok && d.TopicIDPartition == tp && d.State == proto.DeletePartitionFinished {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: DELETE_PARTITION_FINISHED %d times in the topic, want once", tp, n)
			r.notes = append(r.notes, fmt.Sprintf("%s finished %d times", tp.Topic, n))
		}
	}

	r.recovery, r.recovered = recoveryTime(calls, w.ends())
	if !r.recovered {
		t.Errorf("not every publisher tiered a segment after the faults")
	}

	// repair, then verify: verify must find nothing. Repair deletes orphans at once
	// (--orphan-age 1ms), so it waits until no request to S3 is in flight.
	if err := s.proxy.waitIdle(30 * time.Second); err != nil {
		t.Error(err)
	}
	steps, err := s.runStrata(t, "repair", "--execute", "--stuck-after", "1ms", "--orphan-age", "1ms")
	if err != nil {
		t.Errorf("strata repair --execute: %v", err)
	}
	var plan []struct {
		Action, Kind, Target, Result string
	}
	if err := json.Unmarshal(steps, &plan); err != nil && len(bytes.TrimSpace(steps)) > 0 {
		t.Errorf("strata repair printed %q: %v", steps, err)
	}
	r.repairSteps = len(plan)
	kinds := map[string]int{}
	for _, p := range plan {
		kinds[p.Kind+"/"+p.Action]++
		if p.Result != "done" {
			r.repairFailed++
		}
	}
	if len(kinds) > 0 {
		r.notes = append(r.notes, "repair: "+formatCounts(kinds))
	}
	out, err := s.runStrata(t, "verify", "--stuck-after", "1ms")
	var found []struct{ Kind, Partition, SegmentID, Object, Detail string }
	_ = json.Unmarshal(out, &found)
	switch {
	case err == nil && len(found) == 0:
		r.verify = "clean"
	case len(found) > 0:
		k := map[string]int{}
		for _, a := range found {
			k[a.Kind]++
			t.Errorf("verify after repair: %s %s %s %s: %s", a.Kind, a.Partition, a.SegmentID, a.Object, a.Detail)
		}
		r.verify = fmt.Sprintf("%d anomalies (%s)", len(found), formatCounts(k))
	default:
		r.verify = "error"
		t.Errorf("strata verify: %v", err)
	}
	return r
}

func orNil(s string) string {
	if s == "" {
		return "nil"
	}
	return s
}

func formatCounts(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%d %s", v, k))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// runStrata runs the strata command on the cluster and the S3 server itself (not the proxy) with
// --format json, and returns its stdout. Exit status 1 (findings) is not an error.
func (s *suite) runStrata(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args = append(args, "--format", "json", "--timeout", "2m",
		"--brokers", strings.Join(s.env.brokers, ","), "--cache-dir", t.TempDir(),
		"--s3-bucket", s.env.bucket, "--s3-prefix", s.prefix, "--s3-endpoint", s.env.s3Endpoint, "--s3-region", s.env.region)
	cmd := exec.CommandContext(ctx, s.strata, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 1 {
		err = nil
	}
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("strata %s: %w: %s", args[0], err, stderr.String())
	}
	return stdout.Bytes(), nil
}
