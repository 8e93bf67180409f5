package rlmm

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/stratalog/strata/proto"
)

// AssignPartitions tells the manager which user partitions this broker now leads and follows
// (Kafka's onPartitionLeadershipChanges). The manager starts fetching the metadata partitions
// they map to, each from the offset its store reached, and each user partition becomes ready
// once its metadata partition is applied up to the end offset read here. Partitions already
// assigned keep their readiness and only change role.
//
// A metadata partition whose stored offset is below the topic's log start (its records expired
// while this broker was away) or beyond its end (the topic was recreated) is rebuilt from the
// log start, with a warning: its rows are dropped and re-derived from what the topic holds.
func (m *Manager) AssignPartitions(ctx context.Context, leaders, followers []proto.TopicIDPartition) error {
	want := map[proto.TopicIDPartition]bool{}
	for _, tp := range followers {
		want[tp] = false
	}
	for _, tp := range leaders {
		want[tp] = true
	}
	if len(want) == 0 {
		return nil
	}
	// A closed manager's client is closed: listing offsets would retry until ctx ends.
	if m.isClosed() {
		return ErrClosed
	}
	mpSet := map[int32]bool{}
	for tp := range want {
		mpSet[proto.MetadataPartition(tp, m.cfg.numPartitions)] = true
	}
	endOf, err := m.consume(ctx, slices.Sorted(maps.Keys(mpSet)))
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	for tp, leader := range want {
		mp := proto.MetadataPartition(tp, m.cfg.numPartitions)
		if up, ok := m.parts[tp]; ok {
			up.leader = leader
			continue
		}
		m.parts[tp] = &userPart{mp: mp, leader: leader, target: endOf[mp]}
		m.mps[mp].users++
	}
	m.broadcastLocked()
	return nil
}

// consume makes sure mps are fetched and returns the end offset of each, read before fetching
// starts: what readiness is measured against.
func (m *Manager) consume(ctx context.Context, mps []int32) (map[int32]int64, error) {
	startOf, endOf, err := m.listOffsets(ctx, mps)
	if err != nil {
		return nil, err
	}
	m.writeMu.Lock()
	defer m.writeMu.Unlock()
	if err := m.startConsuming(mps, startOf, endOf); err != nil {
		return nil, err
	}
	return endOf, nil
}

// startConsuming starts fetching those of mps not fetched yet, each from its stored offset, or
// from the log start when that offset is out of the log's range (see AssignPartitions).
//
// REQUIRES: writeMu held, so that no store write interleaves with a reset.
func (m *Manager) startConsuming(mps []int32, startOf, endOf map[int32]int64) error {
	m.mu.Lock()
	closed := m.closed
	var fresh []int32
	for _, mp := range mps {
		if _, ok := m.mps[mp]; !ok {
			fresh = append(fresh, mp)
		}
	}
	m.mu.Unlock()
	if closed {
		return ErrClosed
	}
	resume := map[int32]int64{}
	rebuilt := map[int32]bool{}
	for _, mp := range fresh {
		next, err := m.store.NextOffset(mp)
		if err != nil && m.damaged() {
			// The loop replaces the store and reads every partition again from its log
			// start: that is where this one starts too.
			next, err = startOf[mp], nil
		}
		if err != nil {
			return fmt.Errorf("rlmm: reading the stored offset of %s-%d: %w", proto.TopicName, mp, err)
		}
		if next < startOf[mp] || next > endOf[mp] {
			m.endLoad() // a rebuild is a write of its own
			why := "its records from there have expired"
			if next > endOf[mp] {
				why = "the topic ends before it (recreated?)"
			}
			m.log.Warn("rebuilding metadata partition from the log start",
				zap.Int32("partition", mp), zap.Int64("stored.offset", next), zap.Int64("log.start", startOf[mp]),
				zap.Int64("log.end", endOf[mp]), zap.String("why", why))
			if err := m.store.ResetPartition(mp, startOf[mp]); err != nil {
				return fmt.Errorf("rlmm: rebuilding %s-%d: %w", proto.TopicName, mp, err)
			}
			next = startOf[mp]
			rebuilt[mp] = true
		}
		resume[mp] = next
	}
	m.startLoad(resume, endOf)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	add := map[int32]kgo.Offset{}
	for mp, next := range resume {
		st := &metaPart{applied: next}
		st.stats.Partition = mp
		st.stats.ResumedAt = next
		if rebuilt[mp] {
			st.stats.Rebuilds++
			m.met.rebuilt(mp)
		}
		m.mps[mp] = st
		add[mp] = kgo.NewOffset().At(next)
	}
	if len(add) > 0 {
		m.client.AddConsumePartitions(map[string]map[int32]kgo.Offset{proto.TopicName: add})
	}
	return nil
}

// WatchMetadataPartitions makes the manager consume whole metadata partitions, whatever user
// partitions are assigned: what a partition remover owning them needs. Writes for any user
// partition mapping to a watched metadata partition are accepted; MetadataPartitionReady says
// when the store holds everything the partition held when watching began.
func (m *Manager) WatchMetadataPartitions(ctx context.Context, mps ...int32) error {
	for _, mp := range mps {
		if mp < 0 || mp >= m.cfg.numPartitions {
			return fmt.Errorf("%w: metadata partition %d: the topic has %d", ErrInvalidArgument, mp, m.cfg.numPartitions)
		}
	}
	endOf, err := m.consume(ctx, mps)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	for _, mp := range mps {
		st := m.mps[mp]
		if !st.watched {
			st.watched, st.target = true, endOf[mp]
		}
	}
	m.broadcastLocked()
	return nil
}

// UnwatchMetadataPartitions undoes WatchMetadataPartitions; a metadata partition stays consumed
// while an assigned user partition maps to it.
func (m *Manager) UnwatchMetadataPartitions(mps ...int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var drop []int32
	for _, mp := range mps {
		st, ok := m.mps[mp]
		if !ok || !st.watched {
			continue
		}
		st.watched = false
		if st.users == 0 {
			drop = append(drop, mp)
		}
	}
	m.dropLocked(drop)
	m.broadcastLocked()
}

// MetadataPartitionReady reports whether a watched metadata partition has been applied up to
// the end offset seen when watching began: nil when it has; an error wrapping ErrNotReady (a
// *HaltError when halted) while it has not; ErrNotFound when it is not watched.
func (m *Manager) MetadataPartitionReady(mp int32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.mps[mp]
	switch {
	case m.closed:
		return ErrClosed
	case !ok || !st.watched:
		return fmt.Errorf("%w: metadata partition %d is not watched", ErrNotFound, mp)
	case st.halt != nil:
		return st.halt
	case m.damage != nil:
		return m.damageErrLocked()
	case st.applied < st.target:
		return fmt.Errorf("%w: %s-%d applied up to offset %d of %d", ErrNotReady, proto.TopicName, mp, st.applied, st.target)
	}
	return nil
}

// Changed returns a channel closed at the next change of what the manager holds: records
// applied, partitions assigned or stopped, a halt. Take a new one after each wake-up; it lets a
// caller wait for work without polling.
func (m *Manager) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

// dropLocked stops fetching mps and fails their waiters. REQUIRES: mu held.
func (m *Manager) dropLocked(mps []int32) {
	for _, mp := range mps {
		m.mps[mp].failWaiters(fmt.Errorf("%w: %s-%d was unassigned", ErrNotAssigned, proto.TopicName, mp))
		delete(m.mps, mp)
	}
	if len(mps) > 0 {
		m.client.RemoveConsumePartitions(map[string][]int32{proto.TopicName: mps})
	}
}

// StopPartitions tells the manager this broker no longer leads or follows tps (Kafka's
// onStopPartitions). A metadata partition no assigned user partition maps to any more is no
// longer fetched; its rows stay in the store, so assigning it again resumes where it stopped.
// Writes waiting on such a metadata partition fail with ErrNotAssigned.
func (m *Manager) StopPartitions(tps ...proto.TopicIDPartition) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var drop []int32
	for _, tp := range tps {
		up, ok := m.parts[tp]
		if !ok {
			continue
		}
		delete(m.parts, tp)
		st := m.mps[up.mp]
		st.users--
		if st.users == 0 && !st.watched {
			drop = append(drop, up.mp)
		}
	}
	m.dropLocked(drop)
	m.broadcastLocked()
}

// Ready reports whether tp can be read: nil when ready; an error wrapping ErrNotReady (a
// *HaltError if its metadata partition halted) while loading; ErrNotFound when not assigned.
func (m *Manager) Ready(tp proto.TopicIDPartition) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.readyLocked(tp)
}

// Readiness reports, for every user partition assigned to the manager, whether it is ready (as
// Ready reports it: nil means ready), in one look under the manager's lock. It is empty once the
// manager is closed. A caller that follows many partitions (strata serve's WatchReadiness) calls
// it after each wake-up of Changed instead of Ready once per partition.
func (m *Manager) Readiness() map[proto.TopicIDPartition]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[proto.TopicIDPartition]bool, len(m.parts))
	if m.closed {
		return out
	}
	for tp := range m.parts {
		out[tp] = m.readyLocked(tp) == nil
	}
	return out
}

func (m *Manager) readyLocked(tp proto.TopicIDPartition) error {
	if m.closed {
		return ErrClosed
	}
	up, ok := m.parts[tp]
	if !ok {
		return notFound(tp)
	}
	st := m.mps[up.mp]
	if st.halt != nil {
		return st.halt
	}
	if err := m.damageErrLocked(); err != nil {
		return err
	}
	if st.applied < up.target {
		return fmt.Errorf("%w: %s: %s-%d applied up to offset %d of %d", ErrNotReady, tp, proto.TopicName, up.mp, st.applied, up.target)
	}
	return nil
}

// WaitReady blocks until every tp is ready, ctx ends, or one of them cannot become ready: not
// assigned (ErrNotFound) or halted (*HaltError), which it returns at once.
func (m *Manager) WaitReady(ctx context.Context, tps ...proto.TopicIDPartition) error {
	for {
		m.mu.Lock()
		var pending error
		for _, tp := range tps {
			err := m.readyLocked(tp)
			if err == nil {
				continue
			}
			if _, halted := err.(*HaltError); halted || err == ErrClosed || !isNotReady(err) {
				m.mu.Unlock()
				return err
			}
			pending = err
		}
		ch := m.changed
		m.mu.Unlock()
		if pending == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("rlmm: waiting for readiness: %w (%v)", ctx.Err(), pending)
		case <-ch:
		}
	}
}

// listOffsets returns the log start and end offsets of the metadata partitions mps. A partition
// the cluster does not report yet (a topic just created, a leader moving) is asked for again
// until ctx ends; an error no retry can fix (see permanent) is returned at once.
func (m *Manager) listOffsets(ctx context.Context, mps []int32) (starts, ends map[int32]int64, err error) {
	for attempt := 0; ; attempt++ {
		starts, ends, err = m.listOffsetsOnce(ctx, mps)
		if err == nil {
			return starts, ends, nil
		}
		if permanent(err) {
			return nil, nil, err
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("%w (%w)", err, ctx.Err())
		case <-time.After(min(time.Duration(attempt+1)*50*time.Millisecond, time.Second)):
		}
	}
}

// permanent reports whether err is a Kafka error that asking again cannot fix: one Kafka marks
// not retriable (authorization failures above all), or an unknown topic, which for the metadata
// topic New has created or found means it was deleted since.
func permanent(err error) bool {
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return false
	}
	return !ke.Retriable || ke == kerr.UnknownTopicOrPartition || ke == kerr.UnknownTopicID
}

// listOffsetsOnce lists the start and end offsets of mps, the two requests at once: an
// assignment, a restart's included, waits one round trip to the cluster rather than two.
func (m *Manager) listOffsetsOnce(ctx context.Context, mps []int32) (map[int32]int64, map[int32]int64, error) {
	var starts kadm.ListedOffsets
	var startErr error
	listed := make(chan struct{})
	go func() {
		defer close(listed)
		starts, startErr = m.adm.ListStartOffsets(ctx, proto.TopicName)
	}()
	ends, err := m.adm.ListEndOffsets(ctx, proto.TopicName)
	<-listed
	if startErr != nil {
		return nil, nil, fmt.Errorf("rlmm: listing start offsets of %s: %w", proto.TopicName, startErr)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("rlmm: listing end offsets of %s: %w", proto.TopicName, err)
	}
	startOf, endOf := map[int32]int64{}, map[int32]int64{}
	for _, mp := range mps {
		s, ok := starts.Lookup(proto.TopicName, mp)
		e, ok2 := ends.Lookup(proto.TopicName, mp)
		if !ok || !ok2 {
			return nil, nil, fmt.Errorf("rlmm: offsets of %s-%d not reported by the cluster", proto.TopicName, mp)
		}
		if s.Err != nil || e.Err != nil {
			return nil, nil, fmt.Errorf("rlmm: offsets of %s-%d: %w", proto.TopicName, mp, errors.Join(s.Err, e.Err))
		}
		startOf[mp], endOf[mp] = s.Offset, e.Offset
	}
	return startOf, endOf, nil
}
