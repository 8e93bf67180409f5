// Command strata is the operator's tool for Kafka's tiered-storage metadata: it decodes the
// records of __remote_log_metadata, says which metadata partition holds a user partition's
// events, and inspects, verifies and repairs what a cluster keeps in remote storage.
//
// Data goes to stdout and diagnostics to stderr; the exit status is non-zero on any error.
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
	if err := root.ExecuteContext(ctx); err != nil {
		var reported *reportedError
		if !errors.As(err, &reported) {
			fmt.Fprintf(stderr, "strata: %v\n", err)
		}
		return 1
	}
	return 0
}

// reportedError is a failure whose details the command already wrote to stderr (one line per
// bad input, say); run only sets the exit status for it.
type reportedError struct{ msg string }

func (e *reportedError) Error() string { return e.msg }
