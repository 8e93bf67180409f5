// Package report turns the rounds of Strata's benchmark into its table: the median of each
// figure on each side, Strata's advantage over Kafka, whether each target is met and by how much
// it is missed, and the page docs/BENCHMARKS.md with the machine, the versions and the command
// that reproduces it. Every figure on the page comes from a Run; none is written by hand.
package report

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stratalog/strata/bench/internal/measure"
)

// Phase is the process a figure is measured in.
type Phase int

// The two processes each side runs per round.
const (
	LoadPhase    Phase = iota // cold load, memory, lookups, restart
	PublishPhase              // publish latency
)

// Side holds the results of one side, one per round.
type Side struct {
	Load    []measure.Result
	Publish []measure.Result
}

func (s Side) results(p Phase) []measure.Result {
	if p == PublishPhase {
		return s.Publish
	}
	return s.Load
}

// Workload describes what ran, for the page.
type Workload struct {
	Events               int64
	UserPartitions       int
	Topics               int
	MetadataPartitions   int32
	SegmentsPerPartition int
	SegmentSpan          int64
	Lookups              int
	LookupWarmup         int
	PublishSegments      int
	PublishWarmup        int
	Fill                 time.Duration // producing the events once, before the rounds
}

// Run is a whole benchmark run.
type Run struct {
	Workload Workload
	Rounds   int
	Strata   Side
	Kafka    Side
	// Plugin is Strata through its Kafka plugin, driven as Kafka's side is; nil when not run.
	Plugin   *Side
	Machine  Machine
	Versions Versions
	Command  string        // the command that reproduces the run
	Started  time.Time     // when the run started
	Elapsed  time.Duration // from filling the topic to the end of the last round
}

// unit says how a figure prints.
type unit int

const (
	durationMs unit = iota // metric in milliseconds
	durationNs             // metric in nanoseconds
	bytesUnit
	perSecond
)

// Row is one line of the table.
type Row struct {
	Workload string
	Figure   string
	phase    Phase
	metric   string
	unit     unit
	// higherIsBetter: the advantage is Strata/Kafka instead of Kafka/Strata.
	higherIsBetter bool
	// Target is the advantage Strata must reach (0: none).
	Target float64
	// Under is a bound Strata's figure must stay below, in the metric's unit (0: none).
	Under float64
	// eventsPerSecond: the figure is the workload's events over metric (a time in ms).
	eventsPerSecond bool
}

// Rows are the table's lines, in order. The targets are the project's claims: restart at least
// 50 times faster, peak memory at least 10 times smaller, publish p50 at least 5 times lower,
// cold load no slower.
var Rows = []Row{
	{Workload: "1. Publish", Figure: "add segment, p50", phase: PublishPhase, metric: measure.AddP50Ns, unit: durationNs, Target: 5},
	{Workload: "1. Publish", Figure: "add segment, p99", phase: PublishPhase, metric: measure.AddP99Ns, unit: durationNs},
	{Workload: "1. Publish", Figure: "finish segment, p50", phase: PublishPhase, metric: measure.FinishP50Ns, unit: durationNs, Target: 5},
	{Workload: "1. Publish", Figure: "finish segment, p99", phase: PublishPhase, metric: measure.FinishP99Ns, unit: durationNs},
	{Workload: "2. Cold load", Figure: "time until ready", phase: LoadPhase, metric: measure.ColdLoadMs, unit: durationMs, Target: 1},
	{Workload: "2. Cold load", Figure: "events per second", phase: LoadPhase, metric: measure.ColdLoadMs, unit: perSecond, higherIsBetter: true, eventsPerSecond: true},
	{Workload: "3. Restart", Figure: "time until ready", phase: LoadPhase, metric: measure.RestartMs, unit: durationMs, Target: 50},
	{Workload: "4. Lookup", Figure: "segment for offset, p50", phase: LoadPhase, metric: measure.LookupP50Ns, unit: durationNs},
	{Workload: "4. Lookup", Figure: "segment for offset, p99", phase: LoadPhase, metric: measure.LookupP99Ns, unit: durationNs},
	{Workload: "4. Lookup", Figure: "as consumers read, p50", phase: LoadPhase, metric: measure.ConsumerLookupP50Ns, unit: durationNs},
	{Workload: "4. Lookup", Figure: "as consumers read, p99", phase: LoadPhase, metric: measure.ConsumerLookupP99Ns, unit: durationNs},
	{Workload: "5. Memory", Figure: "peak RSS during cold load", phase: LoadPhase, metric: measure.PeakRSSBytes, unit: bytesUnit, Target: 10},
	{Workload: "5. Memory", Figure: "heap in use after full GC", phase: LoadPhase, metric: measure.HeapAfterGCBytes, unit: bytesUnit},
}

// PluginRows are the lines of the plugin's table: Strata through its Kafka plugin against
// Kafka's manager, as Kafka's RemoteLogManager sees them. The targets are the project's claims for
// the plugin: publish p50 still at least 5 times lower, a lookup through the socket under 50 µs
// at the median, restart at least 50 times faster. Peak RSS is the JVM's plus its strata serve
// child's.
var PluginRows = []Row{
	{Workload: "1. Publish", Figure: "add segment, p50", phase: PublishPhase, metric: measure.AddP50Ns, unit: durationNs, Target: 5},
	{Workload: "1. Publish", Figure: "add segment, p99", phase: PublishPhase, metric: measure.AddP99Ns, unit: durationNs},
	{Workload: "1. Publish", Figure: "finish segment, p50", phase: PublishPhase, metric: measure.FinishP50Ns, unit: durationNs, Target: 5},
	{Workload: "1. Publish", Figure: "finish segment, p99", phase: PublishPhase, metric: measure.FinishP99Ns, unit: durationNs},
	{Workload: "2. Cold load", Figure: "time until ready", phase: LoadPhase, metric: measure.ColdLoadMs, unit: durationMs},
	{Workload: "3. Restart", Figure: "time until ready", phase: LoadPhase, metric: measure.RestartMs, unit: durationMs, Target: 50},
	{Workload: "4. Lookup", Figure: "segment for offset, p50", phase: LoadPhase, metric: measure.LookupP50Ns, unit: durationNs, Under: 50_000},
	{Workload: "4. Lookup", Figure: "segment for offset, p99", phase: LoadPhase, metric: measure.LookupP99Ns, unit: durationNs},
	{Workload: "5. Memory", Figure: "peak RSS, JVM + strata serve", phase: LoadPhase, metric: measure.PeakRSSBytes, unit: bytesUnit},
}

// Line is a row with its figures.
type Line struct {
	Row
	Strata, Kafka float64 // medians, in the metric's unit (events per second for those rows)
	// Advantage is how many times better Strata is: above 1 Strata is better, below 1 worse.
	Advantage float64
}

// Met reports whether the line's target is met; true when it has none.
func (l Line) Met() bool {
	if l.Under > 0 {
		return l.Strata < l.Under
	}
	return l.Target == 0 || l.Advantage >= l.Target
}

// Lines computes the table of r.
func (r *Run) Lines() ([]Line, error) {
	for _, side := range []struct {
		name string
		Side
	}{{"Strata", r.Strata}, {"Kafka", r.Kafka}} {
		if len(side.Load) != r.Rounds || len(side.Publish) != r.Rounds {
			return nil, fmt.Errorf("report: %s has %d load and %d publish results for %d rounds", side.name, len(side.Load), len(side.Publish), r.Rounds)
		}
	}
	return lines(Rows, "Strata", r.Strata, r.Kafka, r.Workload.Events)
}

// PluginLines computes the plugin's table of r: Strata through its Kafka plugin against Kafka.
func (r *Run) PluginLines() ([]Line, error) {
	if r.Plugin == nil {
		return nil, fmt.Errorf("report: the run has no plugin side")
	}
	if len(r.Plugin.Load) != r.Rounds || len(r.Plugin.Publish) != r.Rounds {
		return nil, fmt.Errorf("report: the plugin has %d load and %d publish results for %d rounds", len(r.Plugin.Load), len(r.Plugin.Publish), r.Rounds)
	}
	return lines(PluginRows, "the plugin", *r.Plugin, r.Kafka, r.Workload.Events)
}

// lines computes rows for strata (the side named name) against kafka.
func lines(rows []Row, name string, strata, kafka Side, events int64) ([]Line, error) {
	var out []Line
	for _, row := range rows {
		s, err := row.median(strata, events)
		if err != nil {
			return nil, fmt.Errorf("report: %s, %s %s: %w", name, row.Workload, row.Figure, err)
		}
		k, err := row.median(kafka, events)
		if err != nil {
			return nil, fmt.Errorf("report: Kafka, %s %s: %w", row.Workload, row.Figure, err)
		}
		l := Line{Row: row, Strata: s, Kafka: k}
		switch {
		case row.higherIsBetter && k > 0:
			l.Advantage = s / k
		case !row.higherIsBetter && s > 0:
			l.Advantage = k / s
		default:
			l.Advantage = math.Inf(1)
		}
		out = append(out, l)
	}
	return out, nil
}

func (row Row) values(side Side, events int64) ([]float64, error) {
	results := side.results(row.phase)
	if len(results) == 0 {
		return nil, fmt.Errorf("no rounds")
	}
	var vs []float64
	for i, res := range results {
		v, ok := res.Metrics[row.metric]
		if !ok {
			return nil, fmt.Errorf("round %d did not report %s", i+1, row.metric)
		}
		if row.eventsPerSecond {
			if v <= 0 {
				return nil, fmt.Errorf("round %d: %s is %v", i+1, row.metric, v)
			}
			v = float64(events) / (v / 1000)
		}
		vs = append(vs, v)
	}
	return vs, nil
}

func (row Row) median(side Side, events int64) (float64, error) {
	vs, err := row.values(side, events)
	if err != nil {
		return 0, err
	}
	return Median(vs), nil
}

// Median is the middle value of vs, or the mean of the two middle values when their number is
// even. REQUIRES: len(vs) > 0.
func Median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// format prints v in the row's unit.
func (row Row) format(v float64) string {
	switch row.unit {
	case durationMs:
		return FormatDuration(time.Duration(v * float64(time.Millisecond)))
	case durationNs:
		return FormatDuration(time.Duration(v))
	case bytesUnit:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case perSecond:
		return FormatCount(v) + "/s"
	}
	return fmt.Sprint(v)
}

// FormatDuration prints d in the unit that suits it: ns, µs, ms, s, or minutes.
func FormatDuration(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%d ns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	case d >= time.Minute:
		return d.Round(time.Second).String()
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// FormatCount prints n with thousands separators, rounded to a whole number.
func FormatCount(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// FormatAdvantage prints an advantage as "12.3× better" or "2.0× worse".
func FormatAdvantage(a float64) string {
	switch {
	case math.IsInf(a, 1):
		return "∞"
	case a >= 1:
		return fmt.Sprintf("%s× better", ratio(a))
	}
	return fmt.Sprintf("%s× worse", ratio(1/a))
}

func ratio(a float64) string {
	if a >= 100 {
		return FormatCount(a)
	}
	return fmt.Sprintf("%.1f", a)
}

// TargetStatus says whether a line's target is met, and when not by how much it falls short:
// the table's last column.
func (l Line) TargetStatus() string {
	switch {
	case l.Under > 0 && l.Met():
		return "met (< " + l.format(l.Under) + ")"
	case l.Under > 0:
		return "MISSED (" + l.Shortfall() + ")"
	case l.Target == 0:
		return ""
	case l.Met() && l.Target == 1:
		return "met (no slower)"
	case l.Met():
		return fmt.Sprintf("met (≥ %s×)", strconv.FormatFloat(l.Target, 'g', -1, 64))
	}
	return "MISSED (" + l.Shortfall() + ")"
}

// Shortfall says by how much a missed target is missed.
func (l Line) Shortfall() string {
	if l.Under > 0 {
		return fmt.Sprintf("under %s wanted: %s× over", l.format(l.Under), ratio(l.Strata/l.Under))
	}
	if l.Target == 1 {
		return fmt.Sprintf("no slower wanted: %s× slower", ratio(1/l.Advantage))
	}
	return fmt.Sprintf("≥ %s× wanted: %s× short", strconv.FormatFloat(l.Target, 'g', -1, 64), ratio(l.Target/l.Advantage))
}
