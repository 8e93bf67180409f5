//go:build integration

package integration

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHarnessIdentityNeverStartsWithDash draws many identities as start.sh does: a cluster id
// or secret starting with "-" is taken for an option by kafka-storage or versitygw, and one
// draw in 64 of either would start with one.
func TestHarnessIdentityNeverStartsWithDash(t *testing.T) {
	python := requireTool(t, "python3")
	const draws = 3000 // without redrawing, some start with "-" with probability 1 - (63/64)^6000
	out, err := exec.Command(python, "scripts/identity.py", strconv.Itoa(draws)).Output()
	if err != nil {
		t.Fatalf("identity.py: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != draws {
		t.Fatalf("identity.py printed %d lines, want %d", len(lines), draws)
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Fatalf("identity.py line %q: want cluster id, access key, secret", l)
		}
		if len(f[0]) != 22 {
			t.Errorf("cluster id %q: want 22 characters, as Kafka prints a Uuid", f[0])
		}
		for _, v := range f {
			if strings.HasPrefix(v, "-") {
				t.Errorf("identity.py drew %q, which starts with -", v)
			}
		}
	}
}

// TestHarnessStopsServersWhenStderrCloses runs run.sh with its stderr a pipe nobody reads (the
// reader gone, as when `run.sh ... 2>&1 | head` ends early): the command still runs and the
// servers it started are stopped. It starts a second broker and S3 server for about 20 s.
func TestHarnessStopsServersWhenStderrCloses(t *testing.T) {
	requireNativeHarness(t)
	requireEnv(t, envKafkaBrokers) // the servers are installed
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	var stdout bytes.Buffer
	cmd := exec.Command("./run.sh", "sh", "-c", `echo "$STRATA_IT_STATE"; cat "$STRATA_IT_STATE/kafka.pid" "$STRATA_IT_STATE/versitygw.pid"`)
	cmd.Stdout, cmd.Stderr = &stdout, w
	cmd.WaitDelay = time.Minute
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(4 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatal("run.sh did not finish within 4 minutes")
	}
	f := strings.Fields(stdout.String())
	if len(f) != 3 {
		t.Fatalf("run.sh (%v) printed %q: want the state folder and two pids; the command did not run", err, stdout.String())
	}
	state := f[0]
	for _, p := range f[1:] {
		pid, perr := strconv.Atoi(p)
		if perr != nil {
			t.Fatalf("pid %q: %v", p, perr)
		}
		cmdline, rerr := os.ReadFile("/proc/" + p + "/cmdline")
		if rerr == nil && bytes.Contains(cmdline, []byte(state)) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("server pid %d of %s still runs after run.sh exited", pid, state)
		}
	}
	if err != nil {
		t.Errorf("run.sh: %v, want exit 0 (the command succeeded)", err)
	}
	if _, serr := os.Stat(state); serr == nil {
		os.RemoveAll(state)
		t.Errorf("run.sh left its state folder %s", state)
	}
}
