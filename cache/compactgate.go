package cache

import (
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// compactionGate is the store's Pebble compaction scheduler: Pebble's own policy (as many
// compactions as the DB allows, granted when one ends, when the DB asks and every 100 ms),
// except that nothing is granted until Open has returned, and compactions a store owed when it
// opened wait a little longer (see compactionHold). Pebble's Open waits for every compaction
// running before it finishes; on a store closed right after a heavy load the first compaction
// it would start takes hundreds of milliseconds, which a broker's restart would otherwise wait
// for. Held back, the compaction runs once the restart is over instead.
type compactionGate struct {
	db   pebble.DBForCompaction
	poke chan struct{} // buffered 1: a grant attempt is wanted
	stop chan struct{}
	done chan struct{} // closed when the granter goroutine has returned

	mu           sync.Mutex
	open         bool
	heldUntil    time.Time // nothing is granted before it
	unregistered bool
	running      int
}

// compactionHold is how long compactions a store owes when it opens (Pebble's estimated debt,
// from a heavy load before a restart) wait after Open. A manager's restart is ready in tens of
// milliseconds; the compaction would take one of the host's cores for much of a second of
// that, beside the broker and the manager catching up. It waits, not for ever: writes stop
// only after many flushes pile up in L0 (L0StopWritesThreshold), far more than a second of
// writes makes. A variable so that a test can shorten it.
var compactionHold = time.Second

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
	if !g.granting() || g.db.GetAllowedWithoutPermission() <= g.running {
		return false, nil
	}
	g.running++
	return true, g
}

// UpdateGetAllowedWithoutPermission implements pebble.CompactionScheduler.
func (g *compactionGate) UpdateGetAllowedWithoutPermission() { g.wake() }

// release lets compactions run from until on (at once when it has passed): the store has
// opened. The granter's tick grants them then.
func (g *compactionGate) release(until time.Time) {
	g.mu.Lock()
	g.open = true
	g.heldUntil = until
	g.mu.Unlock()
	g.wake()
}

// granting reports whether compactions may be granted now. g.mu is held.
func (g *compactionGate) granting() bool {
	return g.open && !g.unregistered && !time.Now().Before(g.heldUntil)
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
	if !g.granting() {
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
