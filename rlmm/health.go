package rlmm

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/stratalog/strata/proto"
)

// CheckReady reports whether everything assigned to the manager is ready: every assigned user
// partition (Ready) and every watched metadata partition (MetadataPartitionReady). It returns
// nil then, or nothing assigned. Otherwise it names each halted metadata partition with the
// offset it stopped at (a *HaltError each, joined), or, when none is halted, how many are still
// loading and the first of them; the error wraps ErrNotReady either way (ErrClosed once
// closed). It is what a readiness probe asks (package health).
func (m *Manager) CheckReady() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if err := m.damageErrLocked(); err != nil {
		return err
	}
	var halts []*HaltError
	loading, total := 0, 0
	var first error
	seen := map[int32]bool{}
	for tp, up := range m.parts {
		total++
		st := m.mps[up.mp]
		switch {
		case st.halt != nil:
			if !seen[up.mp] {
				seen[up.mp] = true
				halts = append(halts, st.halt)
			}
		case st.applied < up.target:
			loading++
			if first == nil {
				first = fmt.Errorf("%s: %s-%d applied up to offset %d of %d", tp, proto.TopicName, up.mp, st.applied, up.target)
			}
		}
	}
	for mp, st := range m.mps {
		if !st.watched {
			continue
		}
		total++
		switch {
		case st.halt != nil:
			if !seen[mp] {
				seen[mp] = true
				halts = append(halts, st.halt)
			}
		case st.applied < st.target:
			loading++
			if first == nil {
				first = fmt.Errorf("%s-%d applied up to offset %d of %d", proto.TopicName, mp, st.applied, st.target)
			}
		}
	}
	if len(halts) > 0 {
		slices.SortFunc(halts, func(a, b *HaltError) int { return cmp.Compare(a.Partition, b.Partition) })
		errs := make([]error, len(halts))
		for i, h := range halts {
			errs[i] = h
		}
		return errors.Join(errs...)
	}
	if loading > 0 {
		return fmt.Errorf("%w: %d of %d assigned partitions loading; first: %v", ErrNotReady, loading, total, first)
	}
	return nil
}

// CheckLive reports whether the manager's consumer loop is running: nil until Close, ErrClosed
// after. A liveness probe asks it; a halted or loading partition is not a reason to restart.
func (m *Manager) CheckLive() error {
	select {
	case <-m.done:
		return ErrClosed
	default:
		return nil
	}
}
