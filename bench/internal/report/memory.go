package report

import "github.com/stratalog/strata/bench/internal/measure"

// memoryParts are the parts of Strata's resident set at its peak during the cold load, as the
// load phase samples them (measure.MemorySampler), each with what bounds it.
var memoryParts = []struct {
	metric, part, bound string
}{
	{measure.PeakGoHeapLiveBytes, "Go heap: objects",
		"the consumer's fetches, about two at a time decoded (`remote.log.metadata.consumer.fetch.max.bytes`, `.max.partition.fetch.bytes`: 256 KiB each by default); one Apply batch (`.max.poll.records`: 2,500 by default) and its Pebble batch"},
	{measure.PeakGoHeapFreeBytes, "Go heap: free",
		"Go's garbage collector lets the heap grow to twice what survived the last collection before the next (`GOGC`, default 100; `GOMEMLIMIT` caps it)"},
	{measure.PeakGoOtherBytes, "Go runtime", "goroutine stacks, the collector's own structures"},
	{measure.PeakMemtableBytes, "Pebble memtables",
		"`cache.WithMemTableSize` (16 MiB each by default, up to three; resident as far as filled)"},
	{measure.PeakBlockCacheBytes, "Pebble block cache", "`cache.WithBlockCacheSize` (8 MiB by default)"},
	{measure.PeakOtherBytes, "the rest",
		"the program's code and data (read from its file), the C allocator's own use around Pebble's memtables and block cache, which live outside the Go heap"},
}

// memorySection writes where Strata's bytes go at its peak during the cold load: the median of
// each part over the rounds. Nothing when the rounds did not sample them (a run of an older
// Strata side).
func memorySection(p func(string, ...any), r *Run) error {
	row := func(metric string) Row { return Row{phase: LoadPhase, metric: metric, unit: bytesUnit} }
	for _, part := range memoryParts {
		if _, err := row(part.metric).values(r.Strata, r.Workload.Events); err != nil {
			return nil
		}
	}
	sampled, err := row(measure.PeakSampledRSSBytes).median(r.Strata, r.Workload.Events)
	if err != nil {
		return nil
	}
	peak, err := row(measure.PeakRSSBytes).median(r.Strata, r.Workload.Events)
	if err != nil {
		return err
	}
	p("## Where Strata's bytes go\n\n")
	p("Strata's resident set during the cold load, sampled every 25 ms (`VmRSS`, Go's `runtime/metrics`, and\n")
	p("Pebble's `Metrics()` through the manager's metrics), at the sample where it was largest; medians of\n")
	p("the rounds. The sample misses what lies between samples: its median peak was %s, `VmHWM`'s %s.\n", row("").format(sampled), row("").format(peak))
	p("[MEMORY.md](MEMORY.md) says more about each part and its knob.\n\n")
	p("| Part | Median at the peak | Share | Bounded by |\n|---|---|---|---|\n")
	for _, part := range memoryParts {
		v, err := row(part.metric).median(r.Strata, r.Workload.Events)
		if err != nil {
			return err
		}
		p("| %s | %s | %.0f%% | %s |\n", part.part, row("").format(v), 100*v/max(sampled, 1), part.bound)
	}
	gcs, err := (Row{phase: LoadPhase, metric: measure.GCCycles}).median(r.Strata, r.Workload.Events)
	if err == nil {
		p("\nGo collected garbage %s times during the cold load (median).\n", FormatCount(gcs))
	}
	p("\n")
	return nil
}
