// Command strata is the operator's tool for Kafka's tiered-storage metadata: it decodes the
// records of __remote_log_metadata, says which metadata partition holds a user partition's
// events, and inspects, verifies and repairs what a cluster keeps in remote storage.
//
// Data goes to stdout and diagnostics to stderr. The exit status is 0 on success, 1 when the
// command found what it looks for (verify's anomalies, rows left incomplete by a halted
// metadata partition), and 2 on every error: usage, connection, storage, bad input. The
// commands only parse flags and print; the work is in the library packages (audit, rlmm, rsm).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit statuses.
const (
	exitOK       = 0
	exitFindings = 1
	exitError    = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit status. It is main without the
// process: tests call it with their own arguments and streams.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd(stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var findings *findingsError
	var reported *reportedError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &findings):
		fmt.Fprintf(stderr, "strata: %s\n", findings.msg)
		return exitFindings
	case !errors.As(err, &reported):
		fmt.Fprintf(stderr, "strata: %v\n", err)
	}
	return exitError
}

// findingsError ends a command that ran to completion and found something to report: exit
// status 1.
type findingsError struct{ msg string }

func (e *findingsError) Error() string { return e.msg }

// reportedError is a failure whose details the command already wrote to stderr (one line per
// bad input, say); run only sets the exit status, 2, for it.
type reportedError struct{ msg string }

func (e *reportedError) Error() string { return e.msg }
