//go:build faults

package faults

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rsm"
)

func TestMain(m *testing.M) {
	if raw := os.Getenv(envChild); raw != "" {
		os.Exit(runChild(raw))
	}
	os.Exit(m.Run())
}

// TestFaults runs the scenarios in order on one cluster and prints the table.
func TestFaults(t *testing.T) {
	e, err := loadEnv()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	s := &suite{env: e, c: newCluster(t, e), prefix: fmt.Sprintf("faults-%d/", time.Now().UnixNano()),
		log: zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))}
	s.proxy = newFaultProxy(t, e)
	if s.files, s.size, err = writeSegmentFiles(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	s.strata = filepath.Join(t.TempDir(), "strata")
	if out, err := exec.Command("go", "build", "-o", s.strata, "github.com/stratalog/strata/cmd/strata").CombinedOutput(); err != nil {
		t.Fatalf("go build strata: %v\n%s", err, out)
	}
	checkTopic(t, s)

	var rows []row
	for _, sc := range []struct {
		name string
		run  func(t *testing.T, s *suite) row
	}{
		{"kill -9 metadata leader; roll all", scenarioKillLeader},
		{"SIGSTOP metadata leader 12s", scenarioStopBroker},
		{"SIGKILL strata mid-copy, mid-remove", scenarioKillStrata},
		{"S3 errors, resets and stalls", scenarioS3Faults},
	} {
		start := time.Now()
		var r row
		t.Run(strings.NewReplacer(" ", "_", ";", "", ",", "").Replace(sc.name), func(t *testing.T) {
			r = sc.run(t, s)
		})
		r.scenario = sc.name
		r.notes = append(r.notes, fmt.Sprintf("took %v", time.Since(start).Round(time.Second)))
		rows = append(rows, r)
	}
	printTable(os.Stdout, rows)
}

// checkTopic creates the metadata topic through a Strata manager (RF 3, min ISR 2) and checks
// that the cluster holds it so.
func checkTopic(t *testing.T, s *suite) {
	t.Helper()
	m := s.newManager(t, t.TempDir(), "faults-setup")
	m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.c.waitHealthy(ctx, metadataTopic, time.Minute); err != nil {
		t.Fatal(err)
	}
	md, err := s.c.adm.Metadata(ctx, metadataTopic)
	if err != nil {
		t.Fatal(err)
	}
	for p, pd := range md.Topics[metadataTopic].Partitions {
		if len(pd.Replicas) != 3 {
			t.Fatalf("%s-%d has replicas %v, want 3", metadataTopic, p, pd.Replicas)
		}
	}
	cfgs, err := s.c.adm.DescribeTopicConfigs(ctx, metadataTopic)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := cfgs.On(metadataTopic, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Configs {
		if c.Key == "min.insync.replicas" && c.MaybeValue() != "2" {
			t.Fatalf("%s has min.insync.replicas=%s, want 2", metadataTopic, c.MaybeValue())
		}
	}
}

// busiestLeader returns the node leading most of the metadata partitions w writes to.
func busiestLeader(t *testing.T, s *suite, w *workload) int32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leaders, err := s.c.leaders(ctx, metadataTopic)
	if err != nil {
		t.Fatal(err)
	}
	count := map[int32]int{}
	best := int32(1)
	for _, tp := range append(w.tps(), w.doomed) {
		l := leaders[proto.MetadataPartition(tp, metadataPartitions)]
		count[l]++
		if count[l] > count[best] {
			best = l
		}
	}
	return best
}

func (w *workload) tps() []proto.TopicIDPartition {
	var out []proto.TopicIDPartition
	for _, p := range w.pubs {
		out = append(out, p.tp)
	}
	return out
}

// logStep logs a scenario's step with the time of day, so that a slow step shows.
func logStep(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("%s "+format, append([]any{time.Now().Format("15:04:05.0")}, args...)...)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// scenarioKillLeader: kill -9 the node leading the metadata partitions in use just as the
// doomed partition is marked, restart it after 5 s, then roll every node once (SIGTERM,
// restart, wait until all replicas are back in sync).
func scenarioKillLeader(t *testing.T, s *suite) row {
	w := newWorkload(t, s, "kill", true)
	w.start()
	time.Sleep(3 * time.Second)
	leader := busiestLeader(t, s, w)
	w.mark(t)
	must(t, s.c.stop(leader, syscall.SIGKILL, 30*time.Second))
	logStep(t, "killed node %d", leader)
	time.Sleep(5 * time.Second)
	w.faultEnded()
	must(t, s.c.start(leader))
	must(t, s.c.waitHealthy(context.Background(), metadataTopic, 2*time.Minute))
	logStep(t, "node %d back, all replicas in sync", leader)
	for n := int32(1); n <= int32(s.env.nodes); n++ {
		must(t, s.c.stop(n, syscall.SIGTERM, time.Minute))
		w.faultEnded()
		must(t, s.c.start(n))
		must(t, s.c.waitHealthy(context.Background(), metadataTopic, 2*time.Minute))
		logStep(t, "rolled node %d", n)
	}
	w.finish(t)
	logStep(t, "workload finished")
	return checkScenario(t, s, w, "")
}

// scenarioStopBroker: SIGSTOP the node leading the metadata partitions in use for 12 s, more
// than the consume wait (5 s) and the session timeout (9 s), then SIGCONT it.
func scenarioStopBroker(t *testing.T, s *suite) row {
	w := newWorkload(t, s, "stop", true)
	w.start()
	time.Sleep(3 * time.Second)
	leader := busiestLeader(t, s, w)
	w.mark(t)
	must(t, s.c.signal(leader, syscall.SIGSTOP))
	t.Cleanup(func() { _ = s.c.signal(leader, syscall.SIGCONT) })
	time.Sleep(12 * time.Second)
	must(t, s.c.signal(leader, syscall.SIGCONT))
	w.faultEnded()
	must(t, s.c.waitHealthy(context.Background(), metadataTopic, 2*time.Minute))
	w.finish(t)
	return checkScenario(t, s, w, "")
}

// scenarioKillStrata: a Strata process tiering a partition is SIGKILLed while S3 holds one of
// its uploads, and started again; then a process removing the marked partition is SIGKILLed
// while S3 holds its batch delete, and started again. The publishers keep tiering meanwhile.
func scenarioKillStrata(t *testing.T, s *suite) row {
	w := newWorkload(t, s, "strata", false)
	w.start()
	copyTP := proto.TopicIDPartition{TopicID: w.doomed.TopicID, Topic: w.doomed.Topic, Partition: w.doomed.Partition + 1}
	dir := t.TempDir()
	spec := childSpec{Role: "copy", TP: copyTP, Segments: 10, CacheDir: filepath.Join(dir, "copy-cache"),
		Calls: filepath.Join(dir, "copy-calls"), Prefix: s.prefix, Endpoint: s.proxy.URL, Files: t.TempDir()}
	t.Cleanup(func() { s.proxy.setRule(passAll) })

	// Mid-copy: hold the copier's seventh upload (the fourth segment's), then SIGKILL it.
	var puts atomic.Int64
	copyDir := rsm.PartitionDirName(copyTP)
	s.proxy.setRule(func(r *http.Request, _ int64) action {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, copyDir) && puts.Add(1) >= 7 {
			return action{kind: actHold}
		}
		return action{}
	})
	c := startChild(t, spec)
	waitHeld(t, s, c)
	c.kill()
	s.proxy.setRule(passAll)
	logStep(t, "killed the copier mid-copy")
	// The copy partition recovers once the process started again tiers a segment.
	w.faultEnded(copyTP)
	must(t, startChild(t, spec).wait(2*time.Minute))

	// Mid-remove: hold the remover's batch delete of the doomed partition, then SIGKILL it.
	for len(s.proxy.held) > 0 {
		<-s.proxy.held
	}
	w.mark(t)
	doomedDir := rsm.PartitionDirName(w.doomed)
	s.proxy.setRule(func(r *http.Request, _ int64) action {
		if r.Method == http.MethodPost && r.URL.Query().Has("delete") && bodyHolds(r, doomedDir) ||
			r.Method == http.MethodDelete && strings.Contains(r.URL.Path, doomedDir) {
			return action{kind: actHold}
		}
		return action{}
	})
	rspec := childSpec{Role: "remove", TP: w.doomed, CacheDir: filepath.Join(dir, "remove-cache"),
		Calls: filepath.Join(dir, "remove-calls"), Prefix: s.prefix, Endpoint: s.proxy.URL}
	c = startChild(t, rspec)
	waitHeld(t, s, c)
	c.kill()
	s.proxy.setRule(passAll)
	logStep(t, "killed the remover mid-remove")
	// The remover recovers once the process started again has finished the partition.
	restarted := time.Now()
	must(t, startChild(t, rspec).wait(2*time.Minute))
	w.recoveredIn(time.Since(restarted))

	w.finish(t)
	must(t, w.rec.load(spec.Calls))
	must(t, w.rec.load(rspec.Calls))
	return checkScenario(t, s, w, "")
}

// bodyHolds reports whether r's body contains s, leaving the body to be read again.
func bodyHolds(r *http.Request, s string) bool {
	b, err := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	return err == nil && bytes.Contains(b, []byte(s))
}

// waitHeld waits until the proxy holds a request, failing if the child exits first.
func waitHeld(t *testing.T, s *suite, c *child) {
	t.Helper()
	select {
	case <-s.proxy.held:
	case err := <-c.done:
		c.done <- err
		t.Fatalf("the child exited (%v) before the proxy held its request; its stderr:\n%s", err, c.stderr.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("the proxy held no request of the child within 2 minutes")
	}
}

// scenarioS3Faults: for 20 s a third of S3 requests fail (503 SlowDown, 500 InternalError), are
// reset, or stall (1 s, or 10 s: past the callers' 8 s deadline), while the publishers tier
// and the remover deletes the marked partition.
func scenarioS3Faults(t *testing.T, s *suite) row {
	w := newWorkload(t, s, "s3", true)
	w.start()
	time.Sleep(2 * time.Second)
	s.proxy.takeCounts()
	rng := rand.New(rand.NewPCG(1, 2))
	var mu = make(chan struct{}, 1)
	s.proxy.setRule(func(*http.Request, int64) action {
		mu <- struct{}{}
		n := rng.IntN(100)
		<-mu
		switch {
		case n < 12:
			return action{kind: actError, status: http.StatusServiceUnavailable, code: "SlowDown"}
		case n < 20:
			return action{kind: actError, status: http.StatusInternalServerError, code: "InternalError"}
		case n < 25:
			return action{kind: actReset}
		case n < 29:
			return action{kind: actStall, delay: time.Second}
		case n < 33:
			return action{kind: actStall, delay: 10 * time.Second}
		}
		return action{}
	})
	t.Cleanup(func() { s.proxy.setRule(passAll) })
	w.mark(t)
	time.Sleep(20 * time.Second)
	s.proxy.setRule(passAll)
	w.faultEnded()
	injected := s.proxy.takeCounts()
	w.finish(t)
	r := checkScenario(t, s, w, "")
	r.notes = append(r.notes, "S3 faults injected: "+formatCounts(toInt(injected)))
	return r
}

func toInt(m map[string]int64) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		out[k] = int(v)
	}
	return out
}

func printTable(out io.Writer, rows []row) {
	tw := tabwriter.NewWriter(out, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "scenario\twrites acked\tfound in topic\tcalls failed\tlongest call (bound)\ttime to recover\trepair steps\tverify after repair")
	for _, r := range rows {
		found := fmt.Sprint(r.found)
		if r.duplicated > 0 {
			found += fmt.Sprintf(" (%d twice)", r.duplicated)
		}
		longest := "-"
		if r.longest.Op != "" {
			longest = fmt.Sprintf("%s %v (%v)", r.longest.Op, r.longest.Dur.Round(10*time.Millisecond), r.longest.Bound.Round(10*time.Millisecond))
		}
		rec := "not recovered"
		if r.recovered {
			rec = r.recovery.Round(10 * time.Millisecond).String()
		}
		steps := fmt.Sprint(r.repairSteps)
		if r.repairFailed > 0 {
			steps += fmt.Sprintf(" (%d failed)", r.repairFailed)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\n", r.scenario, r.acked, found, r.failed, longest, rec, steps, r.verify)
	}
	tw.Flush()
	for _, r := range rows {
		fmt.Fprintf(out, "%s: %s\n", r.scenario, strings.Join(r.notes, "; "))
	}
}
