//go:build integration

package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	// The tests run the strata command as a user does, from a binary. Linking it takes seconds,
	// so it is built while the first tests run, when the servers are there to test against.
	if os.Getenv(envKafkaBrokers) != "" {
		strataBuild.start()
	}
	code := m.Run()
	strataBuild.remove()
	os.Exit(code)
}

// strataBuild is the one build of cmd/strata the tests share.
var strataBuild build

type build struct {
	once   sync.Once
	cancel context.CancelFunc
	done   chan struct{}
	dir    string
	path   string
	err    error
}

// start builds cmd/strata in the background, once. Under -race the binary is built with -race
// too: it reuses the instrumented packages the test binary was built from, and a race in the
// command fails its run (exit status 66).
func (b *build) start() {
	b.once.Do(func() {
		b.done = make(chan struct{})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		b.cancel = cancel
		go func() {
			defer close(b.done)
			goTool, err := exec.LookPath("go")
			if err != nil {
				b.err = fmt.Errorf("go is not on PATH: %w", err)
				return
			}
			// Inside the harness's state folder when there is one, which stop.sh removes even
			// if this process is killed before it cleans up.
			if b.dir, err = os.MkdirTemp(os.Getenv(envState), "strata-bin-"); err != nil {
				b.err = err
				return
			}
			b.path = filepath.Join(b.dir, "strata")
			// -w: no DWARF, which the race detector and panics do not need, and the link is faster.
			args := []string{"build", "-ldflags=-w", "-o", b.path}
			if raceEnabled {
				args = append(args, "-race")
			}
			cmd := exec.CommandContext(ctx, goTool, append(args, "github.com/stratalog/strata/cmd/strata")...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				b.err = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out.String())
			}
		}()
	})
}

// remove stops a build still running (no test needed it) and removes what it made.
func (b *build) remove() {
	if b.done == nil {
		return
	}
	b.cancel()
	<-b.done
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// strataBinary returns the path of the strata command built for the tests.
func strataBinary(t testing.TB) string {
	t.Helper()
	requireTool(t, "go")
	strataBuild.start()
	<-strataBuild.done
	if strataBuild.err != nil {
		t.Fatalf("build the strata command: %v", strataBuild.err)
	}
	return strataBuild.path
}

// strataResult is what one run of the strata command did.
type strataResult struct {
	Stdout, Stderr string
	Code           int
}

// runStrata runs the strata command with args and stdin, and returns what it printed and its
// exit status. A run that cannot start, or is killed, fails the test.
func runStrata(t testing.TB, stdin string, args ...string) strataResult {
	t.Helper()
	ctx := testContext(t, 2*time.Minute)
	cmd := exec.CommandContext(ctx, strataBinary(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && (!errors.As(err, &exit) || ctx.Err() != nil) {
		t.Fatalf("strata %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strataResult{Stdout: stdout.String(), Stderr: stderr.String(), Code: cmd.ProcessState.ExitCode()}
}
