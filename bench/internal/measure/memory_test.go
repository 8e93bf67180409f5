package measure

import (
	"testing"
	"time"
)

// TestMemorySampler samples this process while it allocates and then frees a large buffer, and
// expects the peak sample to hold it in the Go heap, and the store's parts as reported.
func TestMemorySampler(t *testing.T) {
	s := StartMemorySampler(time.Millisecond, func() (int64, int64) { return 3, 5 })
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	time.Sleep(20 * time.Millisecond)
	keep(buf)
	buf = nil
	m, err := s.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS < 64<<20 || m.GoHeapLive < 64<<20 {
		t.Fatalf("peak sample %+v: want the 64 MiB buffer resident and in the Go heap", m)
	}
	if m.Memtables != 3 || m.BlockCache != 5 {
		t.Fatalf("peak sample %+v: want the store's parts as reported (3, 5)", m)
	}
	r := NewResult()
	m.Record(r)
	if r.Metrics[PeakGoHeapLiveBytes] != float64(m.GoHeapLive) || r.Metrics[PeakOtherBytes] != float64(m.Other()) {
		t.Fatalf("recorded %v from %+v", r.Metrics, m)
	}
	if (Memory{RSS: 1, GoHeapLive: 2}).Other() != 0 {
		t.Fatal("Other is negative when the parts exceed the resident set")
	}
}

var sink []byte

func keep(b []byte) { sink = b; sink = nil }
