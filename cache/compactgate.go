package cache

import (
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// compactionGate is the store's Pebble compaction scheduler: Pebble's own policy (as many
// compactions as the DB allows, granted when one ends, when the DB asks and every 100 ms),
// except that nothing is granted until Open has returned. Pebble's Open waits for every
// compaction running before it finishes; on a store closed right after a heavy load the first
// compaction it would start takes hundreds of milliseconds, which a broker's restart would
// otherwise wait for. Held back, the compaction runs just after Open instead.
type compactionGate struct {
	db   pebble.DBForCompaction
	poke chan struct{} // buffered 1: a grant attempt is wanted
	stop chan struct{}
	done chan struct{} // closed when the granter goroutine has returned

	mu           sync.Mutex
	open         bool
	unregistered bool
	running      int
}

var _ pebble.CompactionScheduler = (*compactionGate)(nil)
var _ pebble.CompactionGrantHandle = (*compactionGate)(nil)

func newCompactionGate() *compactionGate {
	return &compactionGate{poke: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// Register implements pebble.CompactionScheduler; Pebble calls it once from a successful Open.
// It starts the granter, which Unregister stops.
func (g *compactionGate) Register(_ int, db pebble.DBForCompaction) {
	g.db = db
	go g.granter()
}

// Unregister implements pebble.CompactionScheduler; Pebble calls it from Close. It returns once
// the granter has stopped, so no call into the DB is in flight.
func (g *compactionGate) Unregister() {
	close(g.stop)
	<-g.done
	g.mu.Lock()
	g.unregistered = true
	g.mu.Unlock()
}

// TrySchedule implements pebble.CompactionScheduler.
func (g *compactionGate) TrySchedule() (bool, pebble.CompactionGrantHandle) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.open || g.unregistered || g.db.GetAllowedWithoutPermission() <= g.running {
		return false, nil
	}
	g.running++
	return true, g
}

// UpdateGetAllowedWithoutPermission implements pebble.CompactionScheduler.
func (g *compactionGate) UpdateGetAllowedWithoutPermission() { g.wake() }

// release lets compactions run: the store has opened.
func (g *compactionGate) release() {
	g.mu.Lock()
	g.open = true
	g.mu.Unlock()
	g.wake()
}

func (g *compactionGate) wake() {
	select {
	case g.poke <- struct{}{}:
	default:
	}
}

func (g *compactionGate) granter() {
	defer close(g.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-tick.C:
		case <-g.poke:
		}
		g.grant()
	}
}

// grant offers the DB as many compactions as it may run beyond those running. Only the granter
// goroutine calls it, so grants never race one another.
func (g *compactionGate) grant() {
	g.mu.Lock()
	if !g.open || g.unregistered {
		g.mu.Unlock()
		return
	}
	toGrant := g.db.GetAllowedWithoutPermission() - g.running
	g.mu.Unlock()
	for ; toGrant > 0; toGrant-- {
		if waiting, _ := g.db.GetWaitingCompaction(); !waiting {
			return
		}
		// Counted before the grant: the compaction may end, and call Done, before Schedule
		// returns.
		g.mu.Lock()
		g.running++
		g.mu.Unlock()
		if !g.db.Schedule(g) {
			g.mu.Lock()
			g.running--
			g.mu.Unlock()
			return
		}
	}
}

// The pebble.CompactionGrantHandle of every compaction the gate grants.

func (g *compactionGate) Started()                                          {}
func (g *compactionGate) MeasureCPU(pebble.CompactionGoroutineKind)         {}
func (g *compactionGate) CumulativeStats(pebble.CompactionGrantHandleStats) {}

// Done implements pebble.CompactionGrantHandle: a compaction ended, another may start.
func (g *compactionGate) Done() {
	g.mu.Lock()
	g.running--
	g.mu.Unlock()
	g.wake()
}
