// Command strata-bench measures Strata against Apache Kafka's own remote log metadata manager
// (TopicBasedRemoteLogMetadataManager) on the same running broker. bench/run.sh starts the broker,
// builds both sides and runs `strata-bench run`; see there.
//
//	strata-bench run -brokers HOST:PORT -kafka-classpath CP [flags]
//	    fills __remote_log_metadata, runs every round of both sides, prints the table and writes
//	    the page (docs/BENCHMARKS.md)
//	strata-bench fill [-events N] WORKLOAD
//	    fills a fresh broker's __remote_log_metadata as run does and writes the workload, for
//	    running one side's load again and again (strata-load) while tuning it
//	strata-bench strata-load WORKLOAD DIR   (STRATA_BENCH_CPUPROFILE=FILE writes a CPU profile)
//	strata-bench strata-publish WORKLOAD DIR TOPIC_ID TOPIC PARTITION
//	    Strata's side of one round, in its own process, as `run` starts it; prints one JSON line
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/stratalog/strata/bench/internal/measure"
	"github.com/stratalog/strata/bench/internal/strataside"
	"github.com/stratalog/strata/bench/internal/workload"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "strata-bench:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  strata-bench run -brokers HOST:PORT -kafka-classpath CP [flags]   (strata-bench run -h)
  strata-bench scale [-out PAGE] [-svg PICTURE] RESULTS.json...      (the scale series' page)
  strata-bench fill [-events N] WORKLOAD                             (fill a fresh broker's topic, write the workload)
  strata-bench strata-load WORKLOAD DIR
  strata-bench strata-publish WORKLOAD DIR TOPIC_ID TOPIC PARTITION`

func dispatch(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%s", usage)
	}
	switch cmd, rest := args[0], args[1:]; {
	case cmd == "run":
		return runCommand(ctx, rest)
	case cmd == "scale":
		return scaleCommand(rest)
	case cmd == "fill":
		return fillCommand(ctx, rest)
	case cmd == "strata-load" && len(rest) == 2:
		s, err := readSpec(rest[0])
		if err != nil {
			return err
		}
		stop, err := cpuProfile()
		if err != nil {
			return err
		}
		r, err := strataside.Load(ctx, s, rest[1], strataside.Options{})
		return errors.Join(printResult(r, err), stop())
	case cmd == "strata-publish" && len(rest) == 5:
		s, err := readSpec(rest[0])
		if err != nil {
			return err
		}
		tp, err := workload.ParsePartition(rest[2:])
		if err != nil {
			return err
		}
		return printResult(strataside.Publish(ctx, s, rest[1], tp, strataside.Options{}))
	}
	return fmt.Errorf("%s", usage)
}

// cpuProfile writes a CPU profile of the run to the file STRATA_BENCH_CPUPROFILE names, if
// set, until stop is called: where a load's time goes, for tuning.
func cpuProfile() (stop func() error, err error) {
	path := os.Getenv("STRATA_BENCH_CPUPROFILE")
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

func readSpec(path string) (*workload.Spec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s, err := workload.Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

func printResult(r measure.Result, err error) error {
	if err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Printf("%s\n", b)
	return err
}
