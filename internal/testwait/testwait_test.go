package testwait

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func TestForReturnsOnceTrue(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			time.Sleep(time.Millisecond)
			n.Add(1)
		}
	}()
	For(t, 10*time.Second, func() bool { return n.Load() == 3 }, func() string { return fmt.Sprint(n.Load()) })
}

// recorder is a testing.TB that records a Fatalf instead of ending the test.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	panic(r)
}

func TestForFailsAtTheDeadline(t *testing.T) {
	r := &recorder{TB: t}
	func() {
		defer func() {
			if p := recover(); p != r {
				t.Fatalf("For returned without failing (recovered %v)", p)
			}
		}()
		For(r, 50*time.Millisecond, func() bool { return false }, func() string { return "still false" })
	}()
	if r.msg != "not so after 50ms: still false" {
		t.Fatalf("message %q", r.msg)
	}
}
