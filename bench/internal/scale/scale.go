// Package scale turns the runs of the scale series (the same load workload at several history
// sizes, each side at each size) into its page and its picture: for each size and side the
// cold load, the restart, the lookups, memory and disk, or how the side failed; and peak
// memory and cold-load time against history size, drawn with gonum/plot.
package scale

import (
	"fmt"
	"image/color"
	"io"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/stratalog/strata/bench/internal/measure"
	"github.com/stratalog/strata/bench/internal/report"
)

// Point is one side at one history size: the medians of its rounds, or its failure.
type Point struct {
	Events  int64
	Side    string
	Rounds  int
	Metrics map[string]float64 // medians
	Failure string             // why the side did not finish; Metrics is empty then
}

// NewPoint takes the medians of a side's rounds at one size.
func NewPoint(events int64, side string, rounds []measure.Result, failure string) Point {
	p := Point{Events: events, Side: side, Rounds: len(rounds), Metrics: map[string]float64{}, Failure: failure}
	if failure != "" {
		return p
	}
	names := map[string]bool{}
	for _, r := range rounds {
		for k := range r.Metrics {
			names[k] = true
		}
	}
	for k := range names {
		var vs []float64
		for _, r := range rounds {
			if v, ok := r.Metrics[k]; ok {
				vs = append(vs, v)
			}
		}
		p.Metrics[k] = report.Median(vs)
	}
	return p
}

// Sort orders points by size, then side as given in sides.
func Sort(ps []Point, sides []string) {
	slices.SortStableFunc(ps, func(a, b Point) int {
		if a.Events != b.Events {
			return int(a.Events - b.Events)
		}
		return slices.Index(sides, a.Side) - slices.Index(sides, b.Side)
	})
}

// Table writes the page's table in Markdown.
func Table(w io.Writer, ps []Point) error {
	var b strings.Builder
	b.WriteString("| Events | Side | Cold load | Events/s | Restart | Lookup p50 | Lookup p99 | Peak RSS | Heap after GC | Disk |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range ps {
		if p.Failure != "" {
			fmt.Fprintf(&b, "| %s | %s | FAILED: %s | | | | | | | |\n", count(p.Events), p.Side, escape(p.Failure))
			continue
		}
		m := p.Metrics
		cold := m[measure.ColdLoadMs]
		fmt.Fprintf(&b, "| %s | %s | %s | %s/s | %s | %s | %s | %s | %s | %s |\n",
			count(p.Events), p.Side, ms(cold), report.FormatCount(float64(p.Events)/(cold/1000)), ms(m[measure.RestartMs]),
			ns(m[measure.LookupP50Ns]), ns(m[measure.LookupP99Ns]), mib(m[measure.PeakRSSBytes]),
			mib(m[measure.HeapAfterGCBytes]), mib(m[measure.DiskBytes]))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// SVG draws peak RSS and cold-load time against history size, one line per side, side by
// side. A side that failed at a size has no point there; its legend says where it failed.
func SVG(w io.Writer, ps []Point, sides []string) error {
	rss := plot.New()
	rss.Title.Text = "Peak RSS during the cold load"
	rss.X.Label.Text = "events in __remote_log_metadata (millions)"
	rss.Y.Label.Text = "MiB"
	load := plot.New()
	load.Title.Text = "Cold load, until every partition is ready"
	load.X.Label.Text = "events in __remote_log_metadata (millions)"
	load.Y.Label.Text = "seconds"
	for i, side := range sides {
		var memXY, loadXY plotter.XYs
		var failed []string
		for _, p := range ps {
			if p.Side != side {
				continue
			}
			if p.Failure != "" {
				failed = append(failed, count(p.Events))
				continue
			}
			x := float64(p.Events) / 1e6
			memXY = append(memXY, plotter.XY{X: x, Y: p.Metrics[measure.PeakRSSBytes] / (1 << 20)})
			loadXY = append(loadXY, plotter.XY{X: x, Y: p.Metrics[measure.ColdLoadMs] / 1000})
		}
		name := side
		if len(failed) > 0 {
			name += " (failed at " + strings.Join(failed, ", ") + ")"
		}
		for _, pl := range []struct {
			p   *plot.Plot
			xys plotter.XYs
		}{{rss, memXY}, {load, loadXY}} {
			if len(pl.xys) == 0 {
				// Failed at every size: in the legend all the same, with nothing drawn.
				pl.p.Legend.Add(name, &plotter.Line{LineStyle: draw.LineStyle{Color: plotColor(i), Width: vg.Points(1.5)}})
				continue
			}
			line, points, err := plotter.NewLinePoints(pl.xys)
			if err != nil {
				return fmt.Errorf("scale: %s: %w", side, err)
			}
			line.Color = plotColor(i)
			line.Width = vg.Points(1.5)
			points.Color = plotColor(i)
			points.Shape = draw.CircleGlyph{}
			pl.p.Add(line, points)
			pl.p.Legend.Add(name, line, points)
		}
	}
	for _, p := range []*plot.Plot{rss, load} {
		p.Legend.Top = true
		p.Legend.Left = true
		p.Y.Min = 0
		p.X.Min = 0
		p.Add(plotter.NewGrid())
	}
	const width, height = 10 * vg.Inch, 4 * vg.Inch
	c := vgsvg.New(width, height)
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Millimeter * 6, PadY: vg.Millimeter * 4,
		PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2}
	rss.Draw(tiles.At(dc, 0, 0))
	load.Draw(tiles.At(dc, 1, 0))
	if _, err := c.WriteTo(w); err != nil {
		return fmt.Errorf("scale: writing the picture: %w", err)
	}
	return nil
}

// plotColor is the i-th side's color: Strata's first, then Kafka's.
func plotColor(i int) color.Color { return plotutil.Color(i) }

func escape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func count(n int64) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

func ms(v float64) string { return report.FormatDuration(time.Duration(v * float64(time.Millisecond))) }

func ns(v float64) string { return report.FormatDuration(time.Duration(v)) }

func mib(v float64) string {
	if v >= 1<<30 {
		return fmt.Sprintf("%.2f GiB", v/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", v/(1<<20))
}

// MemoryTable writes, for every point that sampled them (Strata's), the parts of its resident
// set at the sample where it peaked during the cold load (see measure.MemorySampler), so that
// the page shows which part grows with history, if any. It writes nothing when no point has them.
func MemoryTable(w io.Writer, ps []Point) error {
	var b strings.Builder
	for _, p := range ps {
		m := p.Metrics
		if _, ok := m[measure.PeakSampledRSSBytes]; !ok || p.Failure != "" {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("| Events | Side | Sampled peak | Go heap objects | Go heap free | Go runtime | Memtables | Block cache | The rest |\n")
			b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", count(p.Events), p.Side,
			mib(m[measure.PeakSampledRSSBytes]), mib(m[measure.PeakGoHeapLiveBytes]), mib(m[measure.PeakGoHeapFreeBytes]),
			mib(m[measure.PeakGoOtherBytes]), mib(m[measure.PeakMemtableBytes]), mib(m[measure.PeakBlockCacheBytes]),
			mib(m[measure.PeakOtherBytes]))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
