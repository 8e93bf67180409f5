package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
)

// fillCommand fills a fresh broker's __remote_log_metadata as `run` does and writes the workload
// to a file, so that one side's load can be run again and again against the same topic
// (`strata-bench strata-load WORKLOAD DIR`) while tuning it.
func fillCommand(ctx context.Context, args []string) error {
	var c runConfig
	fs := flag.NewFlagSet("fill", flag.ContinueOnError)
	fs.StringVar(&c.brokers, "brokers", os.Getenv("STRATA_KAFKA_BROKERS"), "the broker, host:port (default $STRATA_KAFKA_BROKERS)")
	fs.Int64Var(&c.events, "events", 1_000_000, "events in __remote_log_metadata")
	fs.IntVar(&c.lookups, "lookups", 100_000, "measured segment-for-offset lookups")
	fs.IntVar(&c.lookupWarmup, "lookup-warmup", 20_000, "lookups before the measured ones")
	fs.IntVar(&c.publishSegments, "publish-segments", 2000, "segments added then finished in the publish workload")
	fs.IntVar(&c.publishWarmup, "publish-warmup", 20, "segments published before the measured ones")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("fill: usage: strata-bench fill [flags] WORKLOAD")
	}
	if c.brokers == "" {
		return errors.New("fill: -brokers (or STRATA_KAFKA_BROKERS) is required")
	}
	spec, _, err := fillTopic(ctx, c)
	if err != nil {
		return err
	}
	if err := writeSpec(fs.Arg(0), spec); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s\n", fs.Arg(0))
	return nil
}
