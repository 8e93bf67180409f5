// Package testwait waits, in tests, for a condition that other goroutines make true: one helper
// with a deadline, so that no test polls in a loop of its own or sleeps a fixed time and hopes.
package testwait

import (
	"testing"
	"time"
)

// Interval is how often For checks its condition.
const Interval = 10 * time.Millisecond

// For waits until cond returns true, checking it every Interval, and fails the test (Fatalf,
// so call it from the test's goroutine) once timeout has passed without it, with what
// describing the state it ended in. cond must not block.
func For(t testing.TB, timeout time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not so after %s: %s", timeout, what())
		}
		<-tick.C
	}
}
