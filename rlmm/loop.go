package rlmm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
)

// DefaultMaxPollRecords bounds one Apply batch: the records the loop takes from the client
// at a time and writes to the store in one batch (the consumer's max.poll.records). While the
// batch is applied, its decoded records, the rows it changes and its Pebble batch are in the
// heap: a few MiB at 2,500 records, of a cold load's peak resident set of about 80 MiB
// (docs/MEMORY.md). At 10,000 the peak was 6 MiB higher than at 5,000, and 5,000 (with 512 KiB
// fetches) 6.5 MiB higher than 2,500 (with 256 KiB fetches), and the cold load was no faster
// either time: each batch rewrites the rows of the partitions it touches, but at these sizes
// the rewrites are not what the time goes to. Small enough too that publishers waiting on a busy
// partition are woken often. The property remote.log.metadata.consumer.max.poll.records sets
// another (Kafka's consumer default is 500).
const DefaultMaxPollRecords = 2500

// PartitionStats describes the progress of one metadata partition this manager consumes.
type PartitionStats struct {
	Partition int32
	ResumedAt int64      // offset fetching resumed from at assignment
	Applied   int64      // next offset to apply
	Target    int64      // for a watched partition, the end offset it is ready at
	Fetched   int64      // records fetched since assignment, duplicates included
	Dropped   int64      // records applied as no-ops: invalid transitions, unknown segments, ...
	Skipped   int64      // records skipped because they could not be decoded
	Rebuilds  int64      // times the partition was rebuilt from the log start
	Halt      *HaltError // non-nil while halted
}

// Stats returns the progress of every metadata partition consumed, by partition.
func (m *Manager) Stats() []PartitionStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]PartitionStats, 0, len(m.mps))
	for _, st := range m.mps {
		s := st.stats
		s.Applied, s.Halt, s.Target = st.applied, st.halt, st.target
		out = append(out, s)
	}
	sortStats(out)
	return out
}

func sortStats(s []PartitionStats) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].Partition < s[j-1].Partition; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// loop is the one goroutine that consumes. It is owned by the Manager and ends when ctx is
// cancelled by Close.
func (m *Manager) loop(ctx context.Context) {
	defer close(m.done)
	for {
		fetches := m.poll(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return
		}
		m.replaceIfDamaged(ctx)
		fetches.EachError(func(topic string, p int32, err error) {
			// A poll ended early on purpose (wakeLoop, or the wake-up while a partition is halted).
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return
			}
			// franz-go retries retriable errors itself; what reaches here is worth a line.
			m.log.Warn("fetching metadata partition", zap.String("topic", topic), zap.Int32("partition", p), zap.Error(err))
		})
		m.process(ctx, fetches)
		m.checkSkips(ctx)
	}
}

// batch collects the entries of one poll and the offset each metadata partition reaches.
type batch struct {
	entries []cache.Entry
	reached map[int32]int64
}

func (m *Manager) process(ctx context.Context, fetches kgo.Fetches) {
	m.writeMu.Lock()
	defer m.writeMu.Unlock()
	b := batch{reached: map[int32]int64{}}
	fetches.EachPartition(func(ftp kgo.FetchTopicPartition) {
		if ftp.Topic != proto.TopicName {
			return
		}
		m.met.fetch(ftp.Partition, len(ftp.Records), ftp.HighWatermark)
		if len(ftp.Records) == 0 {
			return
		}
		m.processPartition(ctx, &b, ftp.Partition, ftp.Records)
	})
	m.flush(&b)
	if m.load != nil && m.loadComplete() {
		m.endLoad()
	}
}

// processPartition decodes one metadata partition's records into b, stopping at a record it
// cannot decode (halting the partition) unless bad records are skipped.
func (m *Manager) processPartition(ctx context.Context, b *batch, mp int32, recs []*kgo.Record) {
	m.mu.Lock()
	st, ok := m.mps[mp]
	if !ok || st.halt != nil {
		m.mu.Unlock()
		return
	}
	st.stats.Fetched += int64(len(recs))
	next := st.applied
	m.mu.Unlock()
	if m.load != nil {
		next = max(next, m.load.reached[mp])
	}
	if r, ok := b.reached[mp]; ok {
		next = r
	}
	for _, rec := range recs {
		if rec.Offset < next {
			continue
		}
		if rec.Offset > next {
			m.rebuildIfExpired(ctx, b, mp, next)
		}
		r, err := m.dec.Decode(rec.Value)
		if err != nil {
			cause := fmt.Errorf("record at %s-%d offset %d does not decode: %w", proto.TopicName, mp, rec.Offset, err)
			if m.cfg.skipBadRecords {
				m.flush(b)
				m.endLoad() // the skip is a write of its own
				m.mu.Lock()
				failed := st.applied < next
				m.mu.Unlock()
				if failed {
					return // a load that failed: the partition is read again from what is applied, this record included
				}
				if serr := m.store.Skip(mp, rec.Offset, err.Error()); serr != nil {
					m.haltPartition(mp, rec.Offset, fmt.Errorf("%v; recording its skip failed: %w", cause, serr))
					return
				}
				m.log.Warn("skipped a record that does not decode", zap.Int32("partition", mp), zap.Int64("offset", rec.Offset), zap.Error(err))
				m.mu.Lock()
				st.applied = rec.Offset + 1
				st.stats.Skipped++
				st.releaseWaiters(nil)
				m.mu.Unlock()
				m.met.skip(mp, skipUndecodable)
				next = rec.Offset + 1
				continue
			}
			m.flush(b)
			m.haltPartition(mp, rec.Offset, cause)
			return
		}
		b.entries = append(b.entries, cache.Entry{Partition: mp, Offset: rec.Offset, Record: r, Raw: rec.Value})
		next = rec.Offset + 1
		b.reached[mp] = next
	}
}

// rebuildIfExpired handles a gap in a metadata partition's offsets. A gap below the log start
// means the records between were deleted by retention before this manager read them (franz-go
// restarted the fetch at the log start): the partition is rebuilt from there, as a restart
// would. A gap above it is harmless (offsets a producer's aborted or control batches took).
//
// REQUIRES: writeMu held. It is released during the request for the log start: no lock is held
// across a network call. What the batch holds is applied first, and the partition is rebuilt
// only if no other writer moved it meanwhile.
func (m *Manager) rebuildIfExpired(ctx context.Context, b *batch, mp int32, expected int64) {
	m.flush(b)
	m.endLoad() // a rebuild is a write of its own
	m.writeMu.Unlock()
	reqCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	starts, err := m.adm.ListStartOffsets(reqCtx, proto.TopicName)
	cancel()
	m.writeMu.Lock()
	if err != nil {
		m.log.Warn("gap in metadata partition offsets; could not read the log start", zap.Int32("partition", mp), zap.Error(err))
		return
	}
	s, ok := starts.Lookup(proto.TopicName, mp)
	if !ok || s.Err != nil || s.Offset <= expected {
		return
	}
	m.mu.Lock()
	st, assigned := m.mps[mp]
	moved := !assigned || st.applied != expected || st.halt != nil
	m.mu.Unlock()
	if moved {
		return
	}
	m.log.Warn("records expired before they were applied; rebuilding the metadata partition from the log start",
		zap.Int32("partition", mp), zap.Int64("expected.offset", expected), zap.Int64("log.start", s.Offset))
	if err := m.store.ResetPartition(mp, s.Offset); err != nil {
		m.haltPartition(mp, expected, fmt.Errorf("rebuilding from log start %d: %w", s.Offset, err))
		return
	}
	m.mu.Lock()
	if st, ok := m.mps[mp]; ok {
		st.applied = s.Offset
		st.stats.Rebuilds++
	}
	m.mu.Unlock()
	m.met.rebuilt(mp)
}

func (m *Manager) haltPartition(mp int32, offset int64, cause error) {
	h := &HaltError{Partition: mp, Offset: offset, Cause: cause}
	m.log.Error("metadata partition halted; its user partitions are not ready until the record is skipped or fixed",
		zap.Int32("partition", mp), zap.Int64("offset", offset), zap.Error(cause))
	m.client.PauseFetchPartitions(map[string][]int32{proto.TopicName: {mp}})
	m.mu.Lock()
	defer m.mu.Unlock()
	if st, ok := m.mps[mp]; ok {
		st.halt = h
		st.releaseWaiters(nil)
	}
	m.broadcastLocked()
}

// flush applies the batch's entries in one store write and advances each metadata partition.
// A store failure halts every metadata partition of the batch at its first entry: nothing of
// the batch was written, and nothing will be until the cause is fixed.
func (m *Manager) flush(b *batch) {
	if len(b.entries) == 0 {
		return
	}
	if m.addToLoad(b) {
		return
	}
	start := time.Now()
	res, err := m.store.Apply(b.entries)
	m.met.applied(len(b.entries), time.Since(start))
	if err != nil && m.damaged() {
		// The store will be replaced and every partition re-read: the batch is not lost.
		b.entries, b.reached = b.entries[:0], map[int32]int64{}
		return
	}
	if err != nil {
		first := map[int32]int64{}
		for _, e := range b.entries {
			if _, ok := first[e.Partition]; !ok {
				first[e.Partition] = e.Offset
			}
		}
		for mp, off := range first {
			m.haltPartition(mp, off, fmt.Errorf("store: %w", err))
		}
		b.entries, b.reached = b.entries[:0], map[int32]int64{}
		return
	}
	m.mu.Lock()
	var dropped map[int32]map[int64]error
	for _, d := range res.Dropped {
		m.reportDropLocked(d)
		if dropped == nil {
			dropped = map[int32]map[int64]error{}
		}
		if dropped[d.Partition] == nil {
			dropped[d.Partition] = map[int64]error{}
		}
		dropped[d.Partition][d.Offset] = notApplied(d)
	}
	for mp, next := range b.reached {
		if st, ok := m.mps[mp]; ok && next > st.applied {
			st.applied = next
			st.releaseWaiters(dropped[mp])
		}
	}
	m.broadcastLocked()
	m.mu.Unlock()
	b.entries = b.entries[:0]
	clear(b.reached)
}

// reportDropLocked logs a record the store did not apply. An update of an unknown segment is
// expected while its partition loads (the segment's add may have expired) and is only worth a
// debug line then; once the partition is ready it is an error, as in Kafka.
func (m *Manager) reportDropLocked(d cache.Drop) {
	if st, ok := m.mps[d.Partition]; ok {
		st.stats.Dropped++
	}
	m.met.drop(d.Partition, d.Reason)
	fields := []zap.Field{zap.Int32("partition", d.Partition), zap.Int64("offset", d.Offset), zap.Stringer("reason", d.Reason), zap.Error(d.Err)}
	if d.Reason == cache.UnknownSegment {
		if up, ok := m.parts[d.UserPartition]; ok && m.mps[up.mp].applied >= up.target {
			m.log.Error("update of an unknown segment in a ready partition", fields...)
			return
		}
		m.log.Debug("update of an unknown segment while loading", fields...)
		return
	}
	m.log.Warn("record not applied", fields...)
}

// Skip skips the record a halted metadata partition stopped at, records the skip in the store
// with reason, and resumes fetching after it. It fails unless mp is halted at exactly offset, so
// that an operator skips only the record they looked at.
func (m *Manager) Skip(mp int32, offset int64, reason string) error {
	m.writeMu.Lock()
	defer m.writeMu.Unlock()
	m.endLoad()
	m.mu.Lock()
	st, ok := m.mps[mp]
	if !ok {
		m.mu.Unlock()
		return fmt.Errorf("%w: %s-%d", ErrNotAssigned, proto.TopicName, mp)
	}
	if st.halt == nil || st.halt.Offset != offset {
		m.mu.Unlock()
		return fmt.Errorf("%w: %s-%d is not halted at offset %d", ErrInvalidArgument, proto.TopicName, mp, offset)
	}
	m.mu.Unlock()
	if err := m.store.Skip(mp, offset, reason); err != nil {
		return fmt.Errorf("rlmm: recording the skip of %s-%d offset %d: %w", proto.TopicName, mp, offset, err)
	}
	m.mu.Lock()
	st.halt = nil
	st.applied = offset + 1
	st.stats.Skipped++
	m.broadcastLocked()
	m.mu.Unlock()
	m.met.skip(mp, skipOperator)
	m.log.Warn("operator skipped a record", zap.Int32("partition", mp), zap.Int64("offset", offset), zap.String("reason", reason))
	m.client.SetOffsets(map[string]map[int32]kgo.EpochOffset{proto.TopicName: {mp: {Epoch: -1, Offset: offset + 1}}})
	m.client.ResumeFetchPartitions(map[string][]int32{proto.TopicName: {mp}})
	return nil
}
