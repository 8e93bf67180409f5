package rlmm

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
)

// The store is derived from the metadata topic: whatever is wrong with it, the topic can build
// it again. This file holds the three ways a store is found unfit and rebuilt, each with a
// warning: damaged or of another format at open (moved aside, one copy kept, and a new one
// opened), built from another cluster or metadata topic (emptied), and damaged while running
// (replaced, and its metadata partitions re-read before their user partitions are ready again).

// openStore opens the store in the configured directory, moving a damaged store or one of
// another format aside and starting an empty one. A store another process holds fails with an
// error wrapping cache.ErrLocked.
func openStore(cfg *config, onDamage func(error)) (*cache.Store, error) {
	opts := append([]cache.Option{cache.WithLogger(cfg.log), cache.WithDamageHandler(onDamage)}, cfg.cacheOpts...)
	store, err := cache.Open(cfg.cacheDir, opts...)
	if err == nil || !(errors.Is(err, cache.ErrCorrupt) || errors.Is(err, cache.ErrFormat)) {
		if err != nil {
			return nil, fmt.Errorf("rlmm: opening the store in %s: %w", cfg.cacheDir, err)
		}
		return store, nil
	}
	aside, merr := cache.MoveAside(cfg.cacheDir, cfg.cacheOpts...)
	if merr != nil {
		return nil, fmt.Errorf("rlmm: opening the store in %s: %w; moving it aside failed: %w", cfg.cacheDir, err, merr)
	}
	cfg.log.Warn("the store could not be used; it was moved aside and is rebuilt from the metadata topic",
		zap.String("dir", cfg.cacheDir), zap.String("moved.to", aside), zap.Error(err))
	store, err = cache.Open(cfg.cacheDir, opts...)
	if err != nil {
		return nil, fmt.Errorf("rlmm: opening a new store in %s: %w", cfg.cacheDir, err)
	}
	return store, nil
}

// checkIdentity makes sure the store was built from this cluster's metadata topic as it is
// now, and empties it when not: a cache directory reused against another cluster, a metadata
// topic deleted and created again (another topic id, offsets starting over), another partition
// count. A store that records no identity and holds rows is emptied too: nothing says where
// its rows came from.
func (m *Manager) checkIdentity(want cache.Identity) error {
	m.identity = want
	have, ok, err := m.store.Identity()
	if err != nil {
		return fmt.Errorf("rlmm: reading the store's identity: %w", err)
	}
	if ok && have == want {
		return nil
	}
	if !ok {
		empty, err := m.store.Empty()
		if err != nil {
			return fmt.Errorf("rlmm: reading the store: %w", err)
		}
		if !empty {
			m.log.Warn("the store does not say which cluster and metadata topic it was built from; emptying it to rebuild it from the topic",
				zap.String("dir", m.cfg.cacheDir), zap.Stringer("now", want))
		}
	} else {
		m.log.Warn("the store was built from another cluster or metadata topic; emptying it to rebuild it from the topic",
			zap.String("dir", m.cfg.cacheDir), zap.Stringer("built.from", have), zap.Stringer("now", want))
	}
	if err := m.store.ResetTo(want); err != nil {
		return fmt.Errorf("rlmm: emptying the store: %w", err)
	}
	return nil
}

// topicIdentity asks the cluster for its id and the metadata topic's id and partition count,
// retrying as initTopic does: a topic just created may not be in the metadata yet. known, when
// not nil, is metadata New already has, which answers the first attempt.
func (m *Manager) topicIdentity(ctx context.Context, known *kadm.Metadata) (cache.Identity, error) {
	deadline := time.Now().Add(m.cfg.initRetryMaxTimeout)
	for {
		id, err := m.topicIdentityOnce(ctx, known)
		known = nil
		if err == nil {
			return id, nil
		}
		if ctx.Err() != nil || time.Now().Add(m.cfg.initRetryInterval).After(deadline) {
			return id, err
		}
		select {
		case <-ctx.Done():
			return id, fmt.Errorf("%w (%v)", err, ctx.Err())
		case <-time.After(m.cfg.initRetryInterval):
		}
	}
}

func (m *Manager) topicIdentityOnce(ctx context.Context, meta *kadm.Metadata) (cache.Identity, error) {
	if meta == nil || meta.Cluster == "" {
		reqCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		fresh, err := m.adm.Metadata(reqCtx, proto.TopicName)
		if err != nil {
			return cache.Identity{}, fmt.Errorf("rlmm: reading the cluster's metadata: %w", err)
		}
		meta = &fresh
	}
	td, ok := meta.Topics[proto.TopicName]
	if !ok || td.Err != nil {
		return cache.Identity{}, fmt.Errorf("rlmm: describing %s: %v", proto.TopicName, td.Err)
	}
	if int32(len(td.Partitions)) != m.cfg.numPartitions {
		return cache.Identity{}, fmt.Errorf("rlmm: %s reports %d partitions of %d", proto.TopicName, len(td.Partitions), m.cfg.numPartitions)
	}
	return cache.Identity{ClusterID: meta.Cluster, TopicID: proto.UUID(td.ID), Partitions: int32(len(td.Partitions))}, nil
}

// noteDamage is the store's damage handler: it may run on any goroutine, including Pebble's,
// so it only records the damage and wakes the consumer loop, which replaces the store.
func (m *Manager) noteDamage(err error) {
	m.mu.Lock()
	if m.damage == nil {
		m.damage = err
	}
	m.broadcastLocked()
	m.mu.Unlock()
	m.wakeLoop()
}

// wakeLoop ends the consumer loop's poll in progress, so that it sees the damage at once
// instead of when the next record arrives.
func (m *Manager) wakeLoop() {
	m.pollMu.Lock()
	if m.pollCancel != nil {
		m.pollCancel()
	}
	m.pollMu.Unlock()
}

// poll is PollRecords under a context wakeLoop can end.
func (m *Manager) poll(ctx context.Context) kgo.Fetches {
	pctx, cancel := context.WithCancel(ctx)
	m.pollMu.Lock()
	m.pollCancel = cancel
	m.pollMu.Unlock()
	defer cancel()
	if m.damaged() {
		cancel()
	}
	if len(m.halted()) > 0 {
		// Wake up to look for a skip recorded for a halted partition (see checkSkips).
		var tcancel context.CancelFunc
		pctx, tcancel = context.WithTimeout(pctx, skipsRecheck)
		defer tcancel()
	}
	return m.client.PollRecords(pctx, m.cfg.maxPollRecords)
}

func (m *Manager) damaged() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.damage != nil
}

// damageErrLocked is what readiness reports while the store is being replaced. REQUIRES: mu.
func (m *Manager) damageErrLocked() error {
	if m.damage == nil {
		return nil
	}
	return fmt.Errorf("%w: the store is damaged and is being rebuilt from %s: %w", ErrNotReady, proto.TopicName, m.damage)
}

// replaceIfDamaged replaces a store found damaged by an empty one and re-reads every metadata
// partition consumed from its log start. Each user partition is ready again once its metadata
// partition is applied up to the end offset read here. Run by the consumer loop only; a
// failure (the cluster unreachable for its offsets) is retried at the next turn of the loop.
func (m *Manager) replaceIfDamaged(ctx context.Context) {
	if !m.damaged() {
		return
	}
	m.mu.Lock()
	mps := slices.Sorted(maps.Keys(m.mps))
	m.mu.Unlock()
	reqCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	startOf, endOf, err := m.listOffsetsOnce(reqCtx, mps)
	cancel()
	if err != nil {
		m.log.Warn("the store is damaged; waiting for the metadata topic's offsets to rebuild it", zap.Error(err))
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
		return
	}
	m.writeMu.Lock()
	defer m.writeMu.Unlock()
	m.mu.Lock()
	cause := m.damage
	m.mu.Unlock()
	m.abandonLoad(fmt.Errorf("the store is damaged: %w", cause))
	m.log.Warn("the store is damaged; replacing it and rebuilding it from the metadata topic",
		zap.String("dir", m.cfg.cacheDir), zap.Int("metadata.partitions", len(mps)), zap.Error(cause))
	err = m.store.Replace()
	if err == nil {
		err = m.store.ResetTo(m.identity)
	}
	if err != nil {
		m.log.Error("replacing the damaged store failed; its metadata partitions stay halted", zap.Error(err))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	reset := map[int32]kgo.EpochOffset{}
	for mp, st := range m.mps {
		if _, ok := startOf[mp]; !ok {
			continue // assigned while the offsets were read; its resume offset is the store's (0)
		}
		if err != nil {
			st.halt = &HaltError{Partition: mp, Offset: st.applied, Cause: fmt.Errorf("store damaged and not replaced: %w", err)}
			st.releaseWaiters(nil)
			continue
		}
		st.applied, st.halt = startOf[mp], nil
		st.stats.Rebuilds++
		if st.watched {
			st.target = max(st.target, endOf[mp])
		}
		reset[mp] = kgo.EpochOffset{Epoch: -1, Offset: startOf[mp]}
	}
	for _, up := range m.parts {
		if e, ok := endOf[up.mp]; ok {
			up.target = max(up.target, e)
		}
	}
	m.damage = nil
	m.broadcastLocked()
	if len(reset) > 0 {
		m.client.SetOffsets(map[string]map[int32]kgo.EpochOffset{proto.TopicName: reset})
		m.client.ResumeFetchPartitions(map[string][]int32{proto.TopicName: slices.Sorted(maps.Keys(reset))})
	}
}
