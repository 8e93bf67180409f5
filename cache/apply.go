package cache

import (
	"fmt"
	"math"

	"go.uber.org/zap"

	"github.com/stratalog/strata/proto"
)

// Entry is one record of the metadata topic with where it was read.
type Entry struct {
	Partition int32 // metadata partition
	Offset    int64 // offset in it
	Record    proto.Record
	// Raw, when not nil, is what Record was decoded from (proto.Decode). Apply ignores it;
	// a Loader keeps it instead of encoding Record again.
	Raw []byte
}

// Result says what Apply did with each entry: Applied + Duplicates + len(Dropped) is the number
// of entries passed.
type Result struct {
	Applied    int    // records applied (a record moving a state to itself counts: Kafka applies it too)
	Duplicates int    // entries below their metadata partition's next offset: already applied or skipped
	Dropped    []Drop // records not applied, in entry order
}

// Drop is a record Apply did not apply, and why. It still advanced its metadata partition's
// next offset, and the store keeps it (Dropped, DroppedAt).
type Drop struct {
	Partition     int32                  // metadata partition
	Offset        int64                  // offset in it
	UserPartition proto.TopicIDPartition // zero for a snapshot record, which names none
	Segment       proto.UUID             // the segment of a segment record; zero otherwise
	Reason        DropReason
	Detail        string // the segment or partition and the states involved
	Err           error  // wraps Reason.Err(); names the offset and says what Detail says
}

// DroppedRecord is a dropped record as the store keeps it.
type DroppedRecord struct {
	Partition     int32                  // metadata partition
	Offset        int64                  // offset in it
	UserPartition proto.TopicIDPartition // zero for a snapshot record, which names none
	Segment       proto.UUID             // the segment of a segment record; zero otherwise
	Reason        DropReason
	Detail        string
}

// Err returns the error the drop's Apply reported: it wraps Reason.Err().
func (d DroppedRecord) Err() error {
	return fmt.Errorf("cache: metadata partition %d offset %d: %s: %w", d.Partition, d.Offset, d.Detail, d.Reason.Err())
}

// Apply applies entries, read from any mix of metadata partitions, and moves the next offset of
// every metadata partition touched past its last entry, in one Pebble batch committed with
// sync: after a crash the store holds all of a call or none of it.
//
// An entry below its metadata partition's next offset is a duplicate and changes nothing, so a
// consumer that resumes from NextOffset, or re-delivers a fetch, does no harm. A record that
// cannot be applied (see DropReason) is dropped, listed in the result and logged at debug level;
// it changes no segment but does advance the offset.
//
// REQUIRES: each metadata partition's entries in offset order (an entry at or below an earlier
// one of the same call is a duplicate); the records are not modified during the call. Gaps
// between offsets are allowed (the topic may have compacted or aborted batches).
// Apply keeps nothing of entries after it returns. An error means nothing of the call was
// written: an invalid entry (wrapping ErrInvalidEntry), a corrupt row (wrapping ErrCorrupt),
// ErrClosed, or Pebble's own error.
func (s *Store) Apply(entries []Entry) (Result, error) {
	var res Result
	if len(entries) == 0 {
		return res, nil
	}
	for i := range entries {
		if err := validEntry(&entries[i]); err != nil {
			return Result{}, fmt.Errorf("cache: apply: entry %d of %d: %w", i, len(entries), err)
		}
	}
	err := s.writeTx(func() error {
		tx := s.newTxn()
		defer tx.release()
		if err := tx.prefetch(entries); err != nil {
			return err
		}
		for i := range entries {
			e := &entries[i]
			next, err := tx.nextOffset(e.Partition)
			if err != nil {
				return err
			}
			if e.Offset < next {
				res.Duplicates++
				continue
			}
			tx.offsets[e.Partition] = e.Offset + 1
			d, err := tx.apply(e)
			if err != nil {
				return fmt.Errorf("cache: apply metadata partition %d offset %d: %w", e.Partition, e.Offset, err)
			}
			if d == nil {
				res.Applied++
				continue
			}
			res.Dropped = append(res.Dropped, *d)
			tx.drops = append(tx.drops, d)
			if ce := s.log.Check(zap.DebugLevel, "record dropped"); ce != nil {
				ce.Write(zap.Int32("metadata_partition", d.Partition), zap.Int64("offset", d.Offset),
					zap.Stringer("reason", d.Reason), zap.Error(d.Err))
			}
		}
		return tx.commit()
	})
	if err != nil {
		return Result{}, err
	}
	return res, nil
}

// Preview says what Apply would do with r, read from metadata partition mp, if it were the next
// record applied: nil when it would apply, or the Drop it would be, with Offset -1. Nothing is
// written. It waits for an Apply in flight, and the answer holds only until the next one: a
// publisher uses it to refuse a record the store already proves useless.
func (s *Store) Preview(mp int32, r proto.Record) (*Drop, error) {
	e := Entry{Partition: mp, Offset: -1, Record: r}
	if mp < 0 {
		return nil, fmt.Errorf("cache: preview: metadata partition %d: negative: %w", mp, ErrInvalidEntry)
	}
	if err := validEntry(&Entry{Partition: mp, Record: r}); err != nil {
		return nil, fmt.Errorf("cache: preview: %w", err)
	}
	var d *Drop
	err := s.write(func() (err error) {
		tx := s.newTxn()
		defer tx.release()
		d, err = tx.apply(&e)
		return err
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

func validEntry(e *Entry) error {
	if e.Partition < 0 || e.Offset < 0 {
		return fmt.Errorf("metadata partition %d offset %d: negative: %w", e.Partition, e.Offset, ErrInvalidEntry)
	}
	isNil := e.Record == nil
	switch r := e.Record.(type) {
	case *proto.SegmentMetadata:
		isNil = r == nil
	case *proto.SegmentMetadataUpdate:
		isNil = r == nil
	case *proto.PartitionDeleteMetadata:
		isNil = r == nil
	case *proto.SegmentMetadataSnapshot:
		isNil = r == nil
	}
	if isNil {
		return fmt.Errorf("metadata partition %d offset %d: nil record: %w", e.Partition, e.Offset, ErrInvalidEntry)
	}
	return nil
}

func (tx *txn) drop(e *Entry, tp proto.TopicIDPartition, reason DropReason, format string, args ...any) *Drop {
	d := &Drop{
		Partition:     e.Partition,
		Offset:        e.Offset,
		UserPartition: tp,
		Segment:       recordSegment(e.Record),
		Reason:        reason,
		Detail:        fmt.Sprintf(format, args...),
	}
	d.Err = fmt.Errorf("cache: metadata partition %d offset %d: %s: %w", e.Partition, e.Offset, d.Detail, reason.Err())
	return d
}

// recordSegment is the id of the segment a segment record is about; zero for other records.
func recordSegment(r proto.Record) proto.UUID {
	switch r := r.(type) {
	case *proto.SegmentMetadata:
		return r.SegmentID.ID
	case *proto.SegmentMetadataUpdate:
		return r.SegmentID.ID
	}
	return proto.UUID{}
}

// deleted drops a record about a user partition whose DELETE_PARTITION_FINISHED was applied,
// and returns nil for any other.
func (tx *txn) deleted(e *Entry, tp proto.TopicIDPartition, pt *ptx) (*Drop, error) {
	if pt.row != nil {
		return nil, nil
	}
	gone, err := pt.isDeleted()
	if err != nil || !gone {
		return nil, err
	}
	return tx.drop(e, tp, PartitionDeleted, "user partition %s: %s was applied; %s is stale",
		tp, proto.DeletePartitionFinished, e.Record.Key()), nil
}

// mismatch drops a record about a known user partition that comes from another metadata
// partition or names the topic differently.
func (tx *txn) mismatch(e *Entry, tp proto.TopicIDPartition, pt *ptx) *Drop {
	if pt.row == nil || (pt.row.mp == e.Partition && pt.row.name == tp.Topic) {
		return nil
	}
	return tx.drop(e, tp, PartitionMismatch, "user partition %s is known from metadata partition %d as topic %q",
		tp, pt.row.mp, pt.row.name)
}

func (tx *txn) apply(e *Entry) (*Drop, error) {
	switch r := e.Record.(type) {
	case *proto.SegmentMetadata:
		return tx.addSegment(e, r)
	case *proto.SegmentMetadataUpdate:
		return tx.updateSegment(e, r)
	case *proto.PartitionDeleteMetadata:
		return tx.partitionDelete(e, r)
	}
	return tx.drop(e, proto.TopicIDPartition{}, UnsupportedRecord, "%s is never published to the topic", e.Record.Key()), nil
}

// CheckRecord returns an error wrapping ErrInvalidRecord (or ErrUnsupportedRecord) for a record
// every store drops whatever it holds: the checks Kafka's constructors make, and the ones the
// store adds (see InvalidRecord). A publisher calls it before producing, so that nothing
// useless enters the topic; nil does not mean the record applies, only that it may.
func CheckRecord(r proto.Record) error {
	var msg string
	reason := InvalidRecord
	switch r := r.(type) {
	case *proto.SegmentMetadata:
		if r == nil {
			return fmt.Errorf("cache: nil record: %w", ErrInvalidRecord)
		}
		if msg = invalidAdd(r); msg != "" {
			msg = "segment " + r.SegmentID.String() + ": " + msg
		}
	case *proto.SegmentMetadataUpdate:
		if r == nil {
			return fmt.Errorf("cache: nil record: %w", ErrInvalidRecord)
		}
		if !r.State.Valid() {
			msg = fmt.Sprintf("segment %s: state %s is not one Kafka defines", r.SegmentID, r.State)
		} else if r.State == proto.CopySegmentStarted {
			msg = fmt.Sprintf("segment %s: an update cannot set %s, only the add record can", r.SegmentID, r.State)
		}
	case *proto.PartitionDeleteMetadata:
		if r == nil {
			return fmt.Errorf("cache: nil record: %w", ErrInvalidRecord)
		}
		if !r.State.Valid() {
			msg = fmt.Sprintf("user partition %s: state %s is not one Kafka defines", r.TopicIDPartition, r.State)
		}
	case nil:
		return fmt.Errorf("cache: nil record: %w", ErrInvalidRecord)
	default:
		msg, reason = fmt.Sprintf("%s is never published to the topic", r.Key()), UnsupportedRecord
	}
	if msg == "" {
		return nil
	}
	return fmt.Errorf("cache: %s: %w", msg, reason.Err())
}

// invalidAdd says why Kafka would refuse an add record, or why the store does, or returns "".
func invalidAdd(r *proto.SegmentMetadata) string {
	switch {
	case r.State != proto.CopySegmentStarted:
		return fmt.Sprintf("an add record must be COPY_SEGMENT_STARTED, this one is %s", r.State)
	case r.StartOffset < 0:
		return fmt.Sprintf("start offset %d is negative", r.StartOffset)
	case r.EndOffset < r.StartOffset:
		return fmt.Sprintf("end offset %d is below start offset %d", r.EndOffset, r.StartOffset)
	case len(r.LeaderEpochs) == 0:
		return "no leader epochs"
	}
	for i := 1; i < len(r.LeaderEpochs); i++ {
		if r.LeaderEpochs[i].Epoch <= r.LeaderEpochs[i-1].Epoch {
			return fmt.Sprintf("leader epochs not strictly ascending: %d after %d", r.LeaderEpochs[i].Epoch, r.LeaderEpochs[i-1].Epoch)
		}
	}
	// Kafka's RemoteLogManager builds the map from the leader epoch cache truncated to the
	// segment, so every epoch starts within it. Kafka accepts an epoch starting after the end
	// offset, and then answers that the segment holds offsets it does not, and its
	// nextSegmentWithTxnIndex loops forever on such a segment; the store refuses it.
	for _, e := range r.LeaderEpochs {
		if e.StartOffset > r.EndOffset {
			return fmt.Sprintf("leader epoch %d starts at %d, after the segment's end offset %d", e.Epoch, e.StartOffset, r.EndOffset)
		}
	}
	return ""
}

func hasEpoch(es []proto.EpochEntry, epoch int32) bool {
	for _, e := range es {
		if e.Epoch == epoch {
			return true
		}
	}
	return false
}

// addSegment is Kafka's addCopyInProgressSegment: the segment enters the unreferenced set of
// each of its epochs. Adding a segment that already exists is allowed only while it is still
// COPY_SEGMENT_STARTED (a state to itself); as in Kafka the new record replaces the metadata.
// Kafka leaves the id in the unreferenced sets of epochs the new record no longer names, where
// listing such an epoch fails once the segment is gone; the store removes it from them.
func (tx *txn) addSegment(e *Entry, r *proto.SegmentMetadata) (*Drop, error) {
	tp := r.SegmentID.TopicIDPartition
	if msg := invalidAdd(r); msg != "" {
		return tx.drop(e, tp, InvalidRecord, "segment %s: %s", r.SegmentID, msg), nil
	}
	pt, err := tx.part(prefixOf(tp))
	if err != nil {
		return nil, err
	}
	if d := tx.mismatch(e, tp, pt); d != nil {
		return d, nil
	}
	if d, err := tx.deleted(e, tp, pt); d != nil || err != nil {
		return d, err
	}
	id := r.SegmentID.ID
	ss, err := pt.segment(id)
	if err != nil {
		return nil, err
	}
	old := ss.m
	if old != nil && !proto.ValidSegmentTransition(old.State, true, proto.CopySegmentStarted) {
		return tx.drop(e, tp, InvalidTransition, "segment %s: %s -> %s", r.SegmentID, old.State, proto.CopySegmentStarted), nil
	}
	if pt.row == nil {
		pt.setRow(partRow{name: tp.Topic, mp: e.Partition})
	}
	row := pt.row
	m := tx.meta(r)
	m.Unknown = nil
	if old != nil {
		for _, oe := range old.LeaderEpochs {
			if !hasEpoch(m.LeaderEpochs, oe.Epoch) {
				pt.setUnref(oe.Epoch, id, false)
			}
		}
		row.bytes -= int64(old.SegmentSizeInBytes)
	} else {
		row.counts[proto.CopySegmentStarted]++
	}
	row.bytes += int64(m.SegmentSizeInBytes)
	for _, ee := range m.LeaderEpochs {
		pt.setUnref(ee.Epoch, id, true)
	}
	ss.m, ss.dirty, pt.dirty = m, true, true
	return nil, nil
}

// updateSegment is Kafka's updateRemoteLogSegmentMetadata, checks in Kafka's order: the segment
// must exist, the transition must be valid, and the target may not be COPY_SEGMENT_STARTED.
// The new view takes the update's broker id, event time, custom metadata and state, as Kafka's
// createWithUpdates does: an update without custom metadata clears it.
func (tx *txn) updateSegment(e *Entry, r *proto.SegmentMetadataUpdate) (*Drop, error) {
	tp := r.SegmentID.TopicIDPartition
	if !r.State.Valid() {
		return tx.drop(e, tp, InvalidRecord, "segment %s: state %s is not one Kafka defines", r.SegmentID, r.State), nil
	}
	pt, err := tx.part(prefixOf(tp))
	if err != nil {
		return nil, err
	}
	if d := tx.mismatch(e, tp, pt); d != nil {
		return d, nil
	}
	if d, err := tx.deleted(e, tp, pt); d != nil || err != nil {
		return d, err
	}
	if pt.row == nil {
		return tx.drop(e, tp, UnknownSegment, "segment %s: user partition %s is unknown", r.SegmentID, tp), nil
	}
	ss, err := pt.segment(r.SegmentID.ID)
	if err != nil {
		return nil, err
	}
	if ss.m == nil {
		return tx.drop(e, tp, UnknownSegment, "segment %s to %s: no such segment", r.SegmentID, r.State), nil
	}
	from := ss.m.State
	if !proto.ValidSegmentTransition(from, true, r.State) {
		return tx.drop(e, tp, InvalidTransition, "segment %s: %s -> %s", r.SegmentID, from, r.State), nil
	}
	if r.State == proto.CopySegmentStarted {
		return tx.drop(e, tp, InvalidRecord, "segment %s: an update cannot set %s, only the add record can", r.SegmentID, r.State), nil
	}
	m := tx.meta(ss.m)
	m.BrokerID, m.EventTimestampMs, m.CustomMetadata, m.State = r.BrokerID, r.EventTimestampMs, r.CustomMetadata, r.State
	switch r.State {
	case proto.CopySegmentFinished:
		err = pt.copyFinished(m)
	case proto.DeleteSegmentStarted:
		err = pt.deleteStarted(m)
	case proto.DeleteSegmentFinished:
		// Kafka's handleSegmentWithDeleteSegmentFinishedState: the segment leaves the
		// unreferenced set of each epoch, and the store. The epochs' highest offsets stay.
		for _, ee := range m.LeaderEpochs {
			pt.setUnref(ee.Epoch, m.SegmentID.ID, false)
		}
	}
	if err != nil {
		return nil, err
	}
	row := pt.row
	row.counts[from]--
	if r.State == proto.DeleteSegmentFinished {
		row.bytes -= int64(m.SegmentSizeInBytes)
		ss.m = nil
	} else {
		row.counts[r.State]++
		ss.m = m
	}
	ss.dirty, pt.dirty = true, true
	return nil, nil
}

// copyFinished is Kafka's handleSegmentWithCopySegmentFinishedState, for each epoch of the
// segment: while the epoch's last referenced entry starts at or after this epoch's start and
// the epoch's highest offset is within this segment's part of the epoch, the last entry moves
// to unreferenced (a new leader uploaded a segment overlapping or duplicating it); then the
// segment is referenced at its epoch start offset, leaves the unreferenced set, and raises the
// epoch's highest offset. Neither condition of the loop changes inside it, so it moves either
// every entry from the start offset up, or none.
func (pt *ptx) copyFinished(m *proto.SegmentMetadata) error {
	id := m.SegmentID.ID
	for i, ee := range m.LeaderEpochs {
		end := proto.EndOffsetForEpoch(m.LeaderEpochs, i, m.EndOffset)
		es, err := pt.epoch(ee.Epoch)
		if err != nil {
			return err
		}
		r := &es.row
		moved := r.hasLast && r.last >= ee.StartOffset && r.hasHighest && r.highest <= end
		if moved {
			starts, err := pt.refStarts(ee.Epoch, ee.StartOffset, false)
			if err != nil {
				return err
			}
			for _, start := range starts {
				sl, err := pt.ref(ee.Epoch, start)
				if err != nil {
					return err
				}
				sl.present, sl.dirty = false, true
				pt.setUnref(ee.Epoch, sl.m.SegmentID.ID, true)
			}
		}
		pt.setRef(ee.Epoch, ee.StartOffset, m)
		pt.setUnref(ee.Epoch, id, false)
		if moved || !r.hasLast || ee.StartOffset > r.last {
			r.hasLast, r.last = true, ee.StartOffset
		}
		if !r.hasHighest || end > r.highest {
			r.hasHighest, r.highest = true, end
		}
		es.present, es.dirty = true, true
	}
	return nil
}

// deleteStarted is Kafka's handleSegmentWithDeleteSegmentStartedState: for each epoch the
// segment leaves the referenced map (only if the entry at its start offset is this segment: a
// later upload may have taken the slot) and joins the unreferenced set.
func (pt *ptx) deleteStarted(m *proto.SegmentMetadata) error {
	id := m.SegmentID.ID
	for _, ee := range m.LeaderEpochs {
		sl, err := pt.ref(ee.Epoch, ee.StartOffset)
		if err != nil {
			return err
		}
		if sl.present && sl.m.SegmentID.ID == id {
			sl.present, sl.dirty = false, true
			es, err := pt.epoch(ee.Epoch)
			if err != nil {
				return err
			}
			if es.row.hasLast && es.row.last == ee.StartOffset {
				starts, err := pt.refStarts(ee.Epoch, math.MinInt64, true)
				if err != nil {
					return err
				}
				es.row.hasLast, es.row.last = len(starts) > 0, 0
				if es.row.hasLast {
					es.row.last = starts[0]
				}
				es.dirty = true
			}
		}
		pt.setUnref(ee.Epoch, id, true)
	}
	return nil
}

// partitionDelete applies a partition-delete record. Kafka stores these states unchecked;
// Strata checks the transition (proto.ValidPartitionDeleteTransition). DELETE_PARTITION_FINISHED
// removes everything of the partition, as Kafka drops its cache of it, and leaves a tombstone:
// every later record of the partition is dropped as PartitionDeleted.
func (tx *txn) partitionDelete(e *Entry, r *proto.PartitionDeleteMetadata) (*Drop, error) {
	tp := r.TopicIDPartition
	if !r.State.Valid() {
		return tx.drop(e, tp, InvalidRecord, "user partition %s: state %s is not one Kafka defines", tp, r.State), nil
	}
	pt, err := tx.part(prefixOf(tp))
	if err != nil {
		return nil, err
	}
	if d := tx.mismatch(e, tp, pt); d != nil {
		return d, nil
	}
	if d, err := tx.deleted(e, tp, pt); d != nil || err != nil {
		return d, err
	}
	has := pt.row != nil && pt.row.hasDelete
	var from proto.PartitionDeleteState
	if has {
		from = pt.row.delState
	}
	if !proto.ValidPartitionDeleteTransition(from, has, r.State) {
		fromName := "no delete state"
		if has {
			fromName = from.String()
		}
		return tx.drop(e, tp, InvalidTransition, "user partition %s: %s -> %s", tp, fromName, r.State), nil
	}
	if r.State == proto.DeletePartitionFinished {
		mp, name := pt.row.mp, pt.row.name
		pt.drop()
		pt.markDeleted(mp, name)
		return nil, nil
	}
	if pt.row == nil {
		pt.setRow(partRow{name: tp.Topic, mp: e.Partition})
	}
	pt.row.hasDelete, pt.row.delState, pt.dirty = true, r.State, true
	return nil, nil
}
