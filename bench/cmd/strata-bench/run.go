package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/bench/internal/measure"
	"github.com/stratalog/strata/bench/internal/report"
	"github.com/stratalog/strata/bench/internal/workload"
	"github.com/stratalog/strata/proto"
)

// kafkaMain is the Java side's main class (bench/kafka-rlmm).
const kafkaMain = "io.github.stratalog.strata.bench.KafkaRlmmBench"

// pluginClass is Strata's RemoteLogMetadataManager for Kafka (kafka-plugin/, bin/strata-kafka.jar),
// which the Java side drives instead of Kafka's manager for the plugin side.
const pluginClass = "io.github.stratalog.strata.kafka.StrataRemoteLogMetadataManager"

// pluginName is the third side's name: Strata as Kafka's RemoteLogManager sees it, through the
// plugin and its strata serve child.
const pluginName = "Strata plugin"

// childTimeout bounds one side's process: a hung manager fails the run instead of stalling it.
const childTimeout = 30 * time.Minute

type runConfig struct {
	brokers         string
	events          int64
	rounds          int
	publishSegments int
	publishWarmup   int
	lookups         int
	lookupWarmup    int
	java            string
	kafkaClasspath  string
	jvmOpts         string
	kafkaVersion    string
	strataCommit    string
	out             string
	command         string
	workDir         string
	// The scale series: a third side with another heap, no publish phase, the results as
	// JSON, a bound on each cold load and restart.
	kafkaBigHeapOpts string
	skipPublish      bool
	results          string
	readyTimeout     time.Duration
	// The plugin side: Strata's plugin jar and the strata command it starts; both empty, no
	// plugin side.
	pluginJar    string
	strataBinary string
}

func runCommand(ctx context.Context, args []string) error {
	var c runConfig
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.StringVar(&c.brokers, "brokers", os.Getenv("STRATA_KAFKA_BROKERS"), "the broker, host:port (default $STRATA_KAFKA_BROKERS)")
	fs.Int64Var(&c.events, "events", 1_000_000, "events in __remote_log_metadata for the load, restart, lookup and memory workloads")
	fs.IntVar(&c.rounds, "rounds", 3, "rounds of each side; the table shows medians")
	fs.IntVar(&c.publishSegments, "publish-segments", 2000, "segments added then finished in the publish workload")
	fs.IntVar(&c.publishWarmup, "publish-warmup", 20, "segments published before the measured ones")
	fs.IntVar(&c.lookups, "lookups", 100_000, "measured segment-for-offset lookups")
	fs.IntVar(&c.lookupWarmup, "lookup-warmup", 20_000, "lookups before the measured ones")
	fs.StringVar(&c.java, "java", "java", "the java command for Kafka's side")
	fs.StringVar(&c.kafkaClasspath, "kafka-classpath", "", "classpath of Kafka's side (bench/kafka-rlmm's classes and jars)")
	fs.StringVar(&c.jvmOpts, "jvm-opts", "-Xmx1g", "JVM options of Kafka's side, space-separated")
	fs.StringVar(&c.kafkaVersion, "kafka-version", "unknown", "the broker's Kafka version, for the page")
	fs.StringVar(&c.strataCommit, "strata-commit", "", "the Strata commit measured, for the page (default: from the binary's build information, when stamped)")
	fs.StringVar(&c.out, "out", "docs/BENCHMARKS.md", "the page to write")
	fs.StringVar(&c.command, "command", "make bench", "the command that reproduces this run, for the page")
	fs.StringVar(&c.workDir, "work-dir", "", "the folder in which a temporary folder for the sides' stores is made (default: the system's temp dir)")
	fs.StringVar(&c.kafkaBigHeapOpts, "kafka-big-heap-opts", "", "JVM options of a third side, Kafka's manager with a heap large enough to finish (load phase only; e.g. -Xmx8g)")
	fs.BoolVar(&c.skipPublish, "skip-publish", false, "skip the publish workload (the scale series measures the load phase only)")
	fs.StringVar(&c.results, "results", "", "also write every side's load results, and how a side failed, as JSON to this file")
	fs.DurationVar(&c.readyTimeout, "ready-timeout", 15*time.Minute, "how long Kafka's side may take to become ready, at the cold load and at the restart")
	fs.StringVar(&c.pluginJar, "plugin-jar", "", "Strata's plugin for Kafka (bin/strata-kafka.jar): adds a third side, the plugin driven by Kafka's side's Java program (needs -strata-binary)")
	fs.StringVar(&c.strataBinary, "strata-binary", "", "the strata command the plugin starts as its child (bin/strata)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("run: unexpected arguments %q", fs.Args())
	}
	switch {
	case c.brokers == "":
		return errors.New("run: -brokers (or STRATA_KAFKA_BROKERS) is required")
	case c.kafkaClasspath == "":
		return errors.New("run: -kafka-classpath is required")
	case c.rounds < 1:
		return fmt.Errorf("run: -rounds must be at least 1, got %d", c.rounds)
	case (c.pluginJar == "") != (c.strataBinary == ""):
		return errors.New("run: -plugin-jar and -strata-binary go together")
	}
	strata, kafka, err := sides(c)
	if err != nil {
		return err
	}
	var big *side
	if c.kafkaBigHeapOpts != "" {
		b := kafkaSide(c, c.kafkaBigHeapOpts)
		big = &b
	}
	var plugin *side
	if c.pluginJar != "" {
		p, err := pluginSide(c)
		if err != nil {
			return err
		}
		plugin = &p
	}
	return run(ctx, c, strata, kafka, big, plugin)
}

// side is one of the two managers measured: how to start its process for a phase ("load" or
// "publish") with the phase's arguments.
type side struct {
	name    string
	kafka   bool // Kafka's manager: its load may fail (out of memory), which the run records
	command func(ctx context.Context, phase string, args ...string) *exec.Cmd
}

// sides are Strata's (this program again) and Kafka's (the Java program).
func sides(c runConfig) (strata, kafka side, err error) {
	self, err := os.Executable()
	if err != nil {
		return side{}, side{}, fmt.Errorf("run: finding this program: %w", err)
	}
	strata = side{name: "Strata", command: func(ctx context.Context, phase string, args ...string) *exec.Cmd {
		return exec.CommandContext(ctx, self, append([]string{"strata-" + phase}, args...)...)
	}}
	kafka = kafkaSide(c, c.jvmOpts)
	kafka.name = "Kafka"
	return strata, kafka, nil
}

// kafkaSide is Kafka's manager in a JVM started with jvmOpts. The JVM exits at its first
// OutOfMemoryError, so that a consumer thread killed by one ends the run of that side at once
// instead of leaving it polling isReady until the ready timeout; the Java side also fails as
// soon as it sees that thread gone.
func kafkaSide(c runConfig, jvmOpts string) side {
	return side{name: "Kafka " + jvmOpts, kafka: true, command: func(ctx context.Context, phase string, args ...string) *exec.Cmd {
		a := append(strings.Fields(jvmOpts), "-XX:+ExitOnOutOfMemoryError",
			fmt.Sprintf("-Dstrata.bench.ready.timeout.s=%d", int64(c.readyTimeout.Seconds())),
			"-cp", c.kafkaClasspath, kafkaMain, phase)
		return exec.CommandContext(ctx, c.java, append(a, args...)...)
	}}
}

// pluginSide is Strata's plugin for Kafka, driven by the Java program of Kafka's side through the
// RemoteLogMetadataManager interface, in a JVM with the same options as Kafka's side. The plugin
// starts the strata command as its child; its store goes beside the manager's log.dir, inside the
// phase's folder.
func pluginSide(c runConfig) (side, error) {
	jar, err := filepath.Abs(c.pluginJar)
	if err == nil {
		_, err = os.Stat(jar)
	}
	if err != nil {
		return side{}, fmt.Errorf("run: the plugin jar (make kafka-plugin): %w", err)
	}
	binary, err := filepath.Abs(c.strataBinary)
	if err == nil {
		_, err = os.Stat(binary)
	}
	if err != nil {
		return side{}, fmt.Errorf("run: the strata command (make build): %w", err)
	}
	return side{name: pluginName, command: func(ctx context.Context, phase string, args ...string) *exec.Cmd {
		a := append(strings.Fields(c.jvmOpts), "-XX:+ExitOnOutOfMemoryError",
			fmt.Sprintf("-Dstrata.bench.ready.timeout.s=%d", int64(c.readyTimeout.Seconds())),
			"-Dstrata.bench.manager="+pluginClass,
			"-Dstrata.bench.config.strata.binary="+binary,
			"-cp", c.kafkaClasspath+string(os.PathListSeparator)+jar, kafkaMain, phase)
		return exec.CommandContext(ctx, c.java, append(a, args...)...)
	}}, nil
}

// run measures the sides: Strata's and Kafka's always, big (the scale series' Kafka with a large
// heap, load phase only) and plugin (Strata through its Kafka plugin, every phase) when not nil.
func run(ctx context.Context, c runConfig, strata, kafka side, big, plugin *side) error {
	started := time.Now()
	// The sides' stores and the workload file go in a folder of their own, removed at the end.
	work, err := os.MkdirTemp(c.workDir, "strata-bench-")
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	defer os.RemoveAll(work)

	spec, fill, err := fillTopic(ctx, c)
	if err != nil {
		return err
	}
	specPath := filepath.Join(work, "workload.txt")
	if err := writeSpec(specPath, spec); err != nil {
		return err
	}
	wantChecksum := fmt.Sprint(spec.LookupChecksum())
	wantConsumer := fmt.Sprint(spec.ConsumerChecksum())

	r := &report.Run{
		Workload: report.Workload{
			Events: spec.Events(), UserPartitions: len(spec.Partitions), Topics: workload.Topics,
			MetadataPartitions: spec.MetadataPartitions, SegmentsPerPartition: spec.SegmentsPerPartition,
			SegmentSpan: spec.SegmentSpan, Lookups: spec.Lookups, LookupWarmup: spec.LookupWarmup,
			PublishSegments: spec.PublishSegments, PublishWarmup: spec.PublishWarmup, Fill: fill,
		},
		Rounds:   c.rounds,
		Machine:  report.ReadMachine(),
		Versions: report.ReadVersions(),
		Command:  c.command,
		Started:  started,
	}
	r.Versions.KafkaBroker = c.kafkaVersion
	if c.strataCommit != "" {
		r.Versions.Strata = c.strataCommit
	}
	results := map[string]*report.Side{strata.name: &r.Strata, kafka.name: &r.Kafka}
	// The sides every phase runs, in the order of round 1; order rotates it.
	every := []side{strata, kafka}
	if plugin != nil {
		r.Plugin = &report.Side{}
		results[plugin.name] = r.Plugin
		every = append(every, *plugin)
	}

	// Every load round first: publishing appends to the topic, and each load must read exactly
	// what the fill wrote. Alternating which side goes first evens out what one side leaves
	// behind for the other (the broker's page cache, a busy disk).
	all := slices.Clone(every)
	if big != nil {
		all = append(all, *big)
	}
	scale := scaleResults{Events: spec.Events(), Command: c.command}
	loads := make(map[string]*scaleSide)
	for _, s := range all {
		scale.Sides = append(scale.Sides, scaleSide{Name: s.name})
	}
	for i := range scale.Sides {
		loads[scale.Sides[i].Name] = &scale.Sides[i]
	}
	for round := range c.rounds {
		sides := order(round, every...)
		if big != nil {
			sides = append(sides, *big)
		}
		for _, s := range sides {
			if loads[s.name].Failure != "" {
				continue // failed in an earlier round: it would fail again
			}
			res, err := runPhase(ctx, s, round, c.rounds, work, "load", specPath)
			if err != nil && s.kafka && c.results != "" {
				logf("%s failed; recorded: %v", s.name, err)
				loads[s.name].Failure = err.Error()
				continue
			}
			if err != nil {
				return err
			}
			if got := res.Info[measure.InfoLookupChecksum]; got != wantChecksum {
				return fmt.Errorf("run: %s's lookups found segments summing to %s, want %s: the sides did not look up the same keys", s.name, got, wantChecksum)
			}
			if got := res.Info[measure.InfoConsumerChecksum]; got != wantConsumer {
				return fmt.Errorf("run: %s's consumer lookups found segments summing to %s, want %s: the sides did not look up the same keys", s.name, got, wantConsumer)
			}
			loads[s.name].Load = append(loads[s.name].Load, res)
			if side, ok := results[s.name]; ok {
				side.Load = append(side.Load, res)
			}
			if s.name == kafka.name {
				r.Versions.Java, r.Versions.JavaVM = res.Info["java.version"], res.Info["java.vm"]
				r.Versions.JVMArgs, r.Versions.KafkaRLMM = res.Info["jvm.args"], res.Info["kafka.version"]
			}
		}
	}
	if c.results != "" {
		// The series names Kafka's default side by its heap, beside the big-heap side.
		for i := range scale.Sides {
			if scale.Sides[i].Name == kafka.name {
				scale.Sides[i].Name = "Kafka " + c.jvmOpts
			}
		}
		if err := writeScaleResults(c.results, scale); err != nil {
			return err
		}
		logf("wrote %s", c.results)
	}
	if c.skipPublish {
		return nil
	}
	// Each publish runs on its own new user partition, on one metadata partition for all, so
	// that no side finds the other's segments and both write to a partition of the same size.
	target := proto.MetadataPartition(spec.Partitions[0], spec.MetadataPartitions)
	for round := range c.rounds {
		for _, s := range order(round, every...) {
			tp := publishPartition(target, spec.MetadataPartitions)
			res, err := runPhase(ctx, s, round, c.rounds, work, "publish", specPath, tp.TopicID.String(), tp.Topic, fmt.Sprint(tp.Partition))
			if err != nil {
				return err
			}
			results[s.name].Publish = append(results[s.name].Publish, res)
		}
	}
	r.Elapsed = time.Since(started)

	lines, err := r.Lines()
	if err != nil {
		return err
	}
	fmt.Printf("\nStrata against Kafka's TopicBasedRemoteLogMetadataManager: medians of %d rounds, %d events\n\n", c.rounds, spec.Events())
	if err := report.Table(os.Stdout, lines); err != nil {
		return err
	}
	if r.Plugin != nil {
		pl, err := r.PluginLines()
		if err != nil {
			return err
		}
		fmt.Printf("\nStrata through its Kafka plugin (StrataRemoteLogMetadataManager and its strata serve child) against Kafka's manager\n\n")
		if err := report.PluginTable(os.Stdout, pl); err != nil {
			return err
		}
	}
	var page bytes.Buffer
	if err := report.Page(&page, r); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.out), 0o755); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	if err := os.WriteFile(c.out, page.Bytes(), 0o644); err != nil {
		return fmt.Errorf("run: writing the page: %w", err)
	}
	fmt.Printf("\nwrote %s\n", c.out)
	return nil
}

// order is the order of the sides in a round: as given in round 1, then rotated by one each
// round, so that each side goes first in turn (with two: Strata first in odd rounds, counting
// from 1, Kafka first in even ones).
func order(round int, sides ...side) []side {
	n := len(sides)
	out := make([]side, 0, n)
	for i := range n {
		out = append(out, sides[(round+i)%n])
	}
	return out
}

// fillTopic checks that __remote_log_metadata exists and is empty, makes the workload and
// writes its events.
func fillTopic(ctx context.Context, c runConfig) (*workload.Spec, time.Duration, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(c.brokers, ",")...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedRecords(1<<17),
	)
	if err != nil {
		return nil, 0, fmt.Errorf("run: connecting to %s: %w", c.brokers, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	topics, err := adm.ListTopics(ctx, proto.TopicName)
	if err != nil {
		return nil, 0, fmt.Errorf("run: describing %s: %w", proto.TopicName, err)
	}
	td, ok := topics[proto.TopicName]
	if !ok || td.Err != nil {
		return nil, 0, fmt.Errorf("run: %s not found on %s (is tiered storage enabled?): %v", proto.TopicName, c.brokers, td.Err)
	}
	before, err := topicEvents(ctx, adm)
	if err != nil {
		return nil, 0, err
	}
	if before != 0 {
		return nil, 0, fmt.Errorf("run: %s already holds %d events; the benchmark needs a fresh broker (bench/run.sh starts one)", proto.TopicName, before)
	}
	spec, err := workload.New(workload.Params{
		Brokers: c.brokers, MetadataPartitions: int32(len(td.Partitions)), Events: c.events,
		Lookups: c.lookups, LookupWarmup: c.lookupWarmup, LookupSeed: uint64(time.Now().UnixNano()),
		PublishSegments: c.publishSegments, PublishWarmup: c.publishWarmup,
	})
	if err != nil {
		return nil, 0, fmt.Errorf("run: %w", err)
	}
	logf("filling %s: %d events, %d user partitions over %d metadata partitions", proto.TopicName, spec.Events(), len(spec.Partitions), spec.MetadataPartitions)
	t0 := time.Now()
	if err := spec.Fill(ctx, cl, proto.TopicName); err != nil {
		return nil, 0, fmt.Errorf("run: %w", err)
	}
	fill := time.Since(t0)
	after, err := topicEvents(ctx, adm)
	if err != nil {
		return nil, 0, err
	}
	if after != spec.Events() {
		return nil, 0, fmt.Errorf("run: %s holds %d events after the fill, want %d", proto.TopicName, after, spec.Events())
	}
	logf("filled in %s", fill.Round(time.Millisecond))
	return spec, fill, nil
}

// topicEvents counts the records in __remote_log_metadata: the sum of its end offsets less its
// start offsets.
func topicEvents(ctx context.Context, adm *kadm.Client) (int64, error) {
	ends, err := adm.ListEndOffsets(ctx, proto.TopicName)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("run: listing the end offsets of %s: %w", proto.TopicName, err)
	}
	starts, err := adm.ListStartOffsets(ctx, proto.TopicName)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("run: listing the start offsets of %s: %w", proto.TopicName, err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	starts.Each(func(o kadm.ListedOffset) { n -= o.Offset })
	return n, nil
}

func writeSpec(path string, s *workload.Spec) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	if err := s.Write(f); err != nil {
		f.Close()
		return fmt.Errorf("run: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("run: writing %s: %w", path, err)
	}
	return nil
}

// publishPartition returns a new user partition that Kafka's partitioner maps to metadata
// partition target.
func publishPartition(target, metadataPartitions int32) proto.TopicIDPartition {
	for {
		tp := proto.TopicIDPartition{TopicID: proto.NewUUID(), Topic: "bench-publish", Partition: 0}
		if proto.MetadataPartition(tp, metadataPartitions) == target {
			return tp
		}
	}
}

// runPhase runs one side's process for one phase in a fresh folder and returns what it
// printed. Its stderr (logs, errors) goes to ours.
func runPhase(ctx context.Context, s side, round, rounds int, work, phase string, args ...string) (measure.Result, error) {
	dir, err := os.MkdirTemp(work, strings.ReplaceAll(strings.ToLower(s.name), " ", "-")+"-"+phase+"-")
	if err != nil {
		return measure.Result{}, fmt.Errorf("run: %w", err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(ctx, childTimeout)
	defer cancel()
	cmd := s.command(ctx, phase, append([]string{args[0], dir}, args[1:]...)...)
	var out bytes.Buffer
	// The JVM prints its own fatal messages ("Terminating due to java.lang.OutOfMemoryError")
	// on stdout, where the result goes: both streams are searched for the error. Each has its own
	// lastError, as exec copies them in two goroutines.
	outErrs, errErrs := &lastError{}, &lastError{}
	cmd.Stdout = io.MultiWriter(&out, outErrs)
	cmd.Stderr = io.MultiWriter(&prefixWriter{w: os.Stderr, prefix: fmt.Sprintf("[%s %s] ", strings.ToLower(s.name), phase)}, errErrs)
	logf("round %d/%d: %s, %s", round+1, rounds, s.name, phase)
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return measure.Result{}, fmt.Errorf("run: round %d, %s's %s process failed after %s (%w): %s", round+1, s.name, phase, time.Since(t0).Round(time.Second), err, failureLine(outErrs, errErrs))
	}
	res, err := measure.ParseResult(out.Bytes())
	if err != nil {
		return measure.Result{}, fmt.Errorf("run: round %d, %s's %s process: %w", round+1, s.name, phase, err)
	}
	logf("round %d/%d: %s, %s done in %s: %s", round+1, rounds, s.name, phase, time.Since(t0).Round(time.Millisecond), summary(res))
	return res, nil
}

// summary prints a result's figures on one line, for the progress log.
func summary(r measure.Result) string {
	var parts []string
	for _, k := range []string{measure.ColdLoadMs, measure.RestartMs, measure.PeakRSSBytes, measure.LookupP50Ns, measure.AddP50Ns, measure.FinishP50Ns} {
		if v, ok := r.Metrics[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%.6g", k, v))
		}
	}
	return strings.Join(parts, " ")
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[strata-bench] "+format+"\n", args...)
}

// prefixWriter prefixes each line written through it, so that the two sides' logs can be told
// apart.
type prefixWriter struct {
	w       io.Writer
	prefix  string
	midLine bool
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	var buf bytes.Buffer
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if !p.midLine {
			buf.WriteString(p.prefix)
		}
		buf.Write(line)
		p.midLine = line[len(line)-1] != '\n'
	}
	if _, err := p.w.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	return len(b), nil
}

// lastError keeps what a failing side said last that names an error: the line of its stderr
// that last mentioned an Error or an Exception, else its last line.
type lastError struct {
	partial []byte
	last    string
	errLine string
}

func (l *lastError) Write(b []byte) (int, error) {
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimSpace(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
		if line == "" {
			continue
		}
		l.last = line
		if strings.Contains(line, "Error") || strings.Contains(line, "Exception") {
			l.errLine = line
		}
	}
	return len(b), nil
}

// failureLine is what a failed side said that best names its failure: an error line on its
// stdout (which carries only the result, so such a line is the JVM's own fatal message), else one
// on its stderr, else the last line of its stderr, else of its stdout.
func failureLine(stdout, stderr *lastError) string {
	switch {
	case stdout.errLine != "":
		return stdout.errLine
	case stderr.errLine != "" || stderr.last != "":
		return stderr.line()
	}
	return stdout.line()
}

func (l *lastError) line() string {
	if l.errLine != "" {
		return l.errLine
	}
	if l.last != "" {
		return l.last
	}
	return "(nothing on stderr)"
}
