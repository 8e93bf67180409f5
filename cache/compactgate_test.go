package cache

import (
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// fakeCompactionDB is a DB that always has a compaction waiting and allows four at once.
type fakeCompactionDB struct {
	mu        sync.Mutex
	scheduled int
}

func (f *fakeCompactionDB) GetAllowedWithoutPermission() int { return 4 }
func (f *fakeCompactionDB) GetWaitingCompaction() (bool, pebble.WaitingCompaction) {
	return true, pebble.WaitingCompaction{}
}
func (f *fakeCompactionDB) Schedule(pebble.CompactionGrantHandle) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scheduled++
	return true
}

func (f *fakeCompactionDB) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.scheduled
}

// TestCompactionGateHolds: nothing is granted before release, nor before the time release
// names; from then on, compactions are granted (by the granter's tick, and to a DB that asks).
func TestCompactionGateHolds(t *testing.T) {
	db := &fakeCompactionDB{}
	g := newCompactionGate()
	g.Register(1, db)
	defer g.Unregister()

	if ok, _ := g.TrySchedule(); ok {
		t.Fatal("a compaction granted before Open returned")
	}
	g.release(time.Now().Add(time.Hour))
	g.grant()
	if ok, _ := g.TrySchedule(); ok || db.count() != 0 {
		t.Fatalf("a compaction granted while held (TrySchedule %v, %d scheduled)", ok, db.count())
	}

	g.release(time.Now().Add(50 * time.Millisecond))
	deadline := time.Now().Add(20 * time.Second)
	for db.count() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no compaction granted after the hold ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	g.mu.Lock()
	granting := g.granting()
	g.mu.Unlock()
	if !granting {
		t.Fatal("the gate refuses compactions after the hold ended")
	}
}
