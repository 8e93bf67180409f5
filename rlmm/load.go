package rlmm

import (
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
)

// bulkLoad is a load of the metadata topic into a store that held no user partition
// (cache.Loader, WithLoadMinRecords). While it runs, the loop hands every fetch to the loader
// instead of applying it, and no metadata partition's applied offset moves: to readers and
// writers, the records are not applied yet. Once every metadata partition of the load has
// reached the end offset it had when its consumption started, the load is written into the
// store, and the partitions move to where the load reached, all at once.
//
// Anything else that writes to the store (a skip, a rebuild, a store replaced) ends the load
// first; a load that fails is abandoned and its metadata partitions are consumed again from
// their applied offsets, fetch by fetch.
//
// Owned by the loop; guarded by writeMu.
type bulkLoad struct {
	l       *cache.Loader
	until   map[int32]int64 // end offset of each metadata partition when its consumption started
	reached map[int32]int64 // next offset the load holds of each
	started time.Time
	records int
}

// startLoad starts a bulk load when the store holds no user partition and the metadata
// partitions starting to be consumed from resume are at least loadMinRecords behind endOf in
// all; a load already running takes them in. REQUIRES: writeMu held.
func (m *Manager) startLoad(resume, endOf map[int32]int64) {
	if m.load != nil {
		for mp, next := range resume {
			m.load.until[mp], m.load.reached[mp] = endOf[mp], next
		}
		return
	}
	if m.cfg.loadMinRecords <= 0 {
		return
	}
	var behind int64
	for mp, next := range resume {
		behind += max(endOf[mp]-next, 0)
	}
	if behind < m.cfg.loadMinRecords {
		return
	}
	l, err := m.store.NewLoader()
	if errors.Is(err, cache.ErrNotEmpty) {
		return
	}
	if err != nil {
		m.log.Warn("could not start a bulk load; applying the metadata topic fetch by fetch", zap.Error(err))
		return
	}
	m.load = &bulkLoad{l: l, until: map[int32]int64{}, reached: map[int32]int64{}, started: time.Now()}
	for mp, next := range resume {
		m.load.until[mp], m.load.reached[mp] = endOf[mp], next
	}
	m.log.Info("loading the metadata topic in bulk", zap.Int("metadata.partitions", len(resume)), zap.Int64("records.behind", behind))
}

// addToLoad hands the batch to the load. It reports whether the batch was taken: false when no
// load runs. The loop writes the load once it has reached its end offsets (process).
// REQUIRES: writeMu held.
func (m *Manager) addToLoad(b *batch) bool {
	if m.load == nil {
		return false
	}
	if err := m.load.l.Add(b.entries); err != nil {
		m.abandonLoad(fmt.Errorf("adding %d records: %w", len(b.entries), err))
		b.entries, b.reached = b.entries[:0], map[int32]int64{}
		return true
	}
	m.load.records += len(b.entries)
	for mp, next := range b.reached {
		m.load.reached[mp] = max(m.load.reached[mp], next)
	}
	b.entries = b.entries[:0]
	clear(b.reached)
	return true
}

// loadComplete reports whether every metadata partition of the load still consumed and not
// halted has reached its end offset.
func (m *Manager) loadComplete() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for mp, until := range m.load.until {
		if st, ok := m.mps[mp]; ok && st.halt == nil && m.load.reached[mp] < until {
			return false
		}
	}
	return true
}

// endLoad writes the load in progress, if any, into the store and moves its metadata
// partitions to where it reached. REQUIRES: writeMu held.
func (m *Manager) endLoad() {
	ld := m.load
	if ld == nil {
		return
	}
	m.load = nil
	start := time.Now()
	// Only a record produced after the load started can have a writer waiting for it, and its
	// offset is at or past the end offset its metadata partition had then: the drops of
	// earlier records are reported, not kept.
	var dropped map[int32]map[int64]error
	// Close cancels the lifetime: a load being written then stops, and the next start loads
	// again.
	res, err := ld.l.Finish(m.lifetime, func(d cache.Drop) {
		m.mu.Lock()
		m.reportDropLocked(d)
		m.mu.Unlock()
		if d.Offset < ld.until[d.Partition] {
			return
		}
		if dropped == nil {
			dropped = map[int32]map[int64]error{}
		}
		if dropped[d.Partition] == nil {
			dropped[d.Partition] = map[int64]error{}
		}
		dropped[d.Partition][d.Offset] = notApplied(d)
	})
	m.met.applied(ld.records, time.Since(start))
	if err != nil {
		m.rewindLoad(ld, err)
		return
	}
	m.mu.Lock()
	for mp, next := range ld.reached {
		if st, ok := m.mps[mp]; ok && next > st.applied {
			st.applied = next
			st.releaseWaiters(dropped[mp])
		}
	}
	m.broadcastLocked()
	m.mu.Unlock()
	m.log.Info("loaded the metadata topic in bulk", zap.Int("records", ld.records), zap.Int("applied", res.Applied),
		zap.Int("dropped", res.Dropped), zap.Int("duplicates", res.Duplicates),
		zap.Duration("took", time.Since(ld.started)), zap.Duration("writing", time.Since(start)))
}

// abandonLoad ends the load in progress without writing it. REQUIRES: writeMu held.
func (m *Manager) abandonLoad(cause error) {
	ld := m.load
	if ld == nil {
		return
	}
	m.load = nil
	m.rewindLoad(ld, errors.Join(cause, ld.l.Abort()))
}

// rewindLoad consumes the metadata partitions of a load that was not written again from their
// applied offsets: nothing the load held is lost, it is fetched and applied again.
func (m *Manager) rewindLoad(ld *bulkLoad, cause error) {
	m.log.Warn("the bulk load failed; applying the metadata topic fetch by fetch from where it started", zap.Error(cause))
	m.mu.Lock()
	defer m.mu.Unlock()
	// Every metadata partition whose records the load took: those it started with, and any
	// consumed already, whose fetches went to the load too.
	// A partition halted meanwhile is halted past what is applied: it resumes too, and halts
	// again when it meets the same record.
	rewind := map[int32]kgo.EpochOffset{}
	var resume []int32
	for _, mps := range []map[int32]int64{ld.until, ld.reached} {
		for mp := range mps {
			st, ok := m.mps[mp]
			if !ok {
				continue
			}
			rewind[mp] = kgo.EpochOffset{Epoch: -1, Offset: st.applied}
			if st.halt != nil {
				st.halt = nil
				resume = append(resume, mp)
			}
		}
	}
	if len(rewind) > 0 {
		m.client.SetOffsets(map[string]map[int32]kgo.EpochOffset{proto.TopicName: rewind})
	}
	if len(resume) > 0 {
		m.client.ResumeFetchPartitions(map[string][]int32{proto.TopicName: resume})
	}
	m.broadcastLocked()
}
