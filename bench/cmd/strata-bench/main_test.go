package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/stratalog/strata/proto"
)

// childEnv makes the test binary act as strata-bench, so that run can start it as a side.
const childEnv = "STRATA_BENCH_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		if err := dispatch(context.Background(), os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "strata-bench:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// selfSide runs Strata's side in this test binary under name: the run cannot tell it from
// another manager, which is all the orchestration needs.
func selfSide(t *testing.T, name string) side {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return side{name: name, command: func(ctx context.Context, phase string, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, self, append([]string{"strata-" + phase}, args...)...)
		cmd.Env = append(os.Environ(), childEnv+"=1")
		return cmd
	}}
}

// TestRun runs the whole benchmark, small, against an in-process cluster, with Strata's side
// standing in for Kafka's: it fills the topic, runs both sides alternately in their own
// processes, checks their lookups agree and writes the page.
func TestRun(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(5, proto.TopicName))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out := filepath.Join(t.TempDir(), "docs", "BENCHMARKS.md")
	cfg := runConfig{
		brokers: c.ListenAddrs()[0], events: 2000, rounds: 2, publishSegments: 3, publishWarmup: 1,
		lookups: 50, lookupWarmup: 5, kafkaVersion: "test", out: out, command: "make bench", workDir: t.TempDir(),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, cfg, selfSide(t, "Strata"), selfSide(t, "Kafka"), nil, nil); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Medians of 2 rounds", "| 3. Restart", "Strata #2", "Kafka #2", "2,000 events"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("the page lacks %q:\n%s", want, page)
		}
	}
	// The work folder is gone: nothing is left behind but the page.
	if left, _ := os.ReadDir(cfg.workDir); len(left) != 0 {
		t.Errorf("left in the work folder: %v", left)
	}

	// The topic was not empty any more: a second run refuses it.
	err = run(ctx, cfg, selfSide(t, "Strata"), selfSide(t, "Kafka"), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "needs a fresh broker") {
		t.Fatalf("second run: %v, want a refusal of the used topic", err)
	}
}

// TestScaleSeries runs the load phase of one size with a third side whose JVM dies of an
// OutOfMemoryError, as Kafka's manager does with a broker's default heap at 4M events: the run
// records the error and goes on, and the series' page shows it, with the picture beside it.
func TestScaleSeries(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(5, proto.TopicName))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir := t.TempDir()
	results := filepath.Join(dir, "scale-2000.json")
	cfg := runConfig{
		brokers: c.ListenAddrs()[0], events: 2000, rounds: 2, publishSegments: 3, publishWarmup: 1,
		lookups: 50, lookupWarmup: 5, kafkaVersion: "test", out: filepath.Join(dir, "unused.md"),
		command: "make bench", workDir: t.TempDir(), skipPublish: true, results: results, jvmOpts: "-Xmx1g",
	}
	calls := 0
	oom := side{name: "Kafka", kafka: true, command: func(ctx context.Context, phase string, args ...string) *exec.Cmd {
		calls++
		return exec.CommandContext(ctx, "sh", "-c", `echo "some log line" >&2
echo "Terminating due to java.lang.OutOfMemoryError: Java heap space"; exit 3`)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	big := selfSide(t, "Kafka -Xmx8g")
	big.kafka = true
	if err := run(ctx, cfg, selfSide(t, "Strata"), oom, &big, nil); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("the failing side ran %d times, want once: a side that failed is not run again", calls)
	}
	if _, err := os.Stat(cfg.out); !os.IsNotExist(err) {
		t.Errorf("a run without its publish phase wrote the benchmark page (%v)", err)
	}
	page, svg := filepath.Join(dir, "scale.md"), filepath.Join(dir, "scale.svg")
	if err := scaleCommand([]string{"-out", page, "-svg", svg, results}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| 2k | Strata | ", "| 2k | Kafka -Xmx8g | ",
		"| 2k | Kafka -Xmx1g | FAILED: run: round 1, Kafka's load process failed after 0s (exit status 3): Terminating due to java.lang.OutOfMemoryError: Java heap space |",
		"(scale.svg)",
		"## Where Strata's bytes go as history grows", "| Events | Side | Sampled peak | Go heap objects |",
	} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("the page lacks %q:\n%s", want, b)
		}
	}
	pic, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "Peak RSS during the cold load", "Kafka -Xmx1g (failed at 2k)"} {
		if !bytes.Contains(pic, []byte(want)) {
			t.Errorf("the picture lacks %q", want)
		}
	}
}

func TestOrderAlternates(t *testing.T) {
	s, k, p := side{name: "Strata"}, side{name: "Kafka"}, side{name: "Plugin"}
	for round, want := range []string{"Strata Kafka", "Kafka Strata", "Strata Kafka"} {
		o := order(round, s, k)
		if got := o[0].name + " " + o[1].name; got != want {
			t.Errorf("round %d: %s, want %s", round+1, got, want)
		}
	}
	for round, want := range []string{"Strata Kafka Plugin", "Kafka Plugin Strata", "Plugin Strata Kafka", "Strata Kafka Plugin"} {
		o := order(round, s, k, p)
		if got := o[0].name + " " + o[1].name + " " + o[2].name; got != want {
			t.Errorf("round %d of three: %s, want %s", round+1, got, want)
		}
	}
}

// TestRunPlugin runs the benchmark with a third side standing in for the plugin: every phase of
// it runs, in turn first of the three, and the page shows its table and its rounds.
func TestRunPlugin(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(5, proto.TopicName))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	cfg := runConfig{
		brokers: c.ListenAddrs()[0], events: 2000, rounds: 3, publishSegments: 3, publishWarmup: 1,
		lookups: 50, lookupWarmup: 5, kafkaVersion: "test", out: out, command: "make bench", workDir: t.TempDir(),
	}
	var ran []string
	counted := func(s side) side {
		command := s.command
		s.command = func(ctx context.Context, phase string, args ...string) *exec.Cmd {
			ran = append(ran, s.name+" "+phase)
			return command(ctx, phase, args...)
		}
		return s
	}
	plugin := counted(selfSide(t, pluginName))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, cfg, counted(selfSide(t, "Strata")), counted(selfSide(t, "Kafka")), nil, &plugin); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"Strata load", "Kafka load", "Strata plugin load",
		"Kafka load", "Strata plugin load", "Strata load",
		"Strata plugin load", "Strata load", "Kafka load",
		"Strata publish", "Kafka publish", "Strata plugin publish",
		"Kafka publish", "Strata plugin publish", "Strata publish",
		"Strata plugin publish", "Strata publish", "Kafka publish",
	}
	if strings.Join(ran, ", ") != strings.Join(want, ", ") {
		t.Errorf("ran %q,\nwant %q", ran, want)
	}
	page, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Strata through its Kafka plugin", "| 3. Restart", "Plugin #3", "Kafka #3"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("the page lacks %q:\n%s", want, page)
		}
	}
}

// TestPluginSide checks the command of the plugin side: Kafka's side's Java program with the
// plugin's class, its jar on the classpath and the strata command passed to its configuration.
func TestPluginSide(t *testing.T) {
	dir := t.TempDir()
	jar, binary := filepath.Join(dir, "strata-kafka.jar"), filepath.Join(dir, "strata")
	cfg := runConfig{java: "java", jvmOpts: "-Xmx1g", kafkaClasspath: "/k/classes:/k/libs/*", pluginJar: jar, strataBinary: binary, readyTimeout: time.Minute}
	if _, err := pluginSide(cfg); err == nil || !strings.Contains(err.Error(), "make kafka-plugin") {
		t.Fatalf("pluginSide without the jar: %v, want an error naming make kafka-plugin", err)
	}
	if err := os.WriteFile(jar, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := pluginSide(cfg); err == nil || !strings.Contains(err.Error(), "make build") {
		t.Fatalf("pluginSide without the strata command: %v, want an error naming make build", err)
	}
	if err := os.WriteFile(binary, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := pluginSide(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(s.command(context.Background(), "load", "W", "D").Args, " ")
	want := "java -Xmx1g -XX:+ExitOnOutOfMemoryError -Dstrata.bench.ready.timeout.s=60 -Dstrata.bench.manager=" + pluginClass +
		" -Dstrata.bench.config.strata.binary=" + binary + " -cp /k/classes:/k/libs/*:" + jar + " " + kafkaMain + " load W D"
	if got != want {
		t.Errorf("command:\n%s\nwant\n%s", got, want)
	}
	if s.name != pluginName || s.kafka {
		t.Errorf("side %q (kafka %v), want %q, not Kafka's", s.name, s.kafka, pluginName)
	}
}

func TestPublishPartition(t *testing.T) {
	for range 20 {
		if tp := publishPartition(3, 50); proto.MetadataPartition(tp, 50) != 3 {
			t.Fatalf("%s maps to %d, want 3", tp, proto.MetadataPartition(tp, 50))
		}
	}
}

func TestPrefixWriter(t *testing.T) {
	var b bytes.Buffer
	w := &prefixWriter{w: &b, prefix: "[k] "}
	for _, s := range []string{"one\ntw", "o\n", "three\n\nfour"} {
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if want := "[k] one\n[k] two\n[k] three\n[k] \n[k] four"; b.String() != want {
		t.Fatalf("wrote %q, want %q", b.String(), want)
	}
}

func TestDispatchUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"strata-load", "only-one"}, {"strata-publish", "a", "b"}} {
		if err := dispatch(context.Background(), args); err == nil || !strings.Contains(err.Error(), "usage:") {
			t.Errorf("dispatch(%q): %v, want the usage", args, err)
		}
	}
	if err := runCommand(context.Background(), []string{"-brokers", "x"}); err == nil || !strings.Contains(err.Error(), "-kafka-classpath") {
		t.Errorf("run without a classpath: %v", err)
	}
}
