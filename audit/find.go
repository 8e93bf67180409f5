package audit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rlmm"
	"github.com/stratalog/strata/rsm"
)

// Metadata is the read-only view of the metadata audit works on. *cache.Store implements it.
// Every method answers from one consistent state of the store; the partition-scoped ones wrap
// cache.ErrNotFound for a partition the store does not know.
type Metadata interface {
	Partitions() ([]cache.PartitionInfo, error)
	Segments(tp proto.TopicIDPartition) ([]proto.SegmentMetadata, error)
	Segment(id proto.SegmentID) (proto.SegmentMetadata, bool, error)
	PartitionDeleteState(tp proto.TopicIDPartition) (proto.PartitionDeleteState, bool, error)
	Skipped() ([]cache.SkippedRecord, error)
	Dropped() ([]cache.DroppedRecord, error)
}

// Kind is a kind of anomaly.
type Kind string

// The kinds of anomaly Find reports, in the order Kinds lists them.
const (
	StuckCopy       Kind = "stuck-copy"           // COPY_SEGMENT_STARTED for longer than Options.StuckAfter
	StuckDelete     Kind = "stuck-delete"         // DELETE_SEGMENT_STARTED for longer than Options.StuckAfter
	Gap             Kind = "gap"                  // offsets in no finished segment between two finished segments
	Overlap         Kind = "overlap"              // two finished segments share offsets
	MissingObjects  Kind = "missing-objects"      // a finished segment whose log is not in storage
	Orphan          Kind = "orphan"               // an object of a segment no live metadata knows
	Stray           Kind = "stray-object"         // an object no segment can own: a temporary or unknown file
	PartitionDelete Kind = "unfinished-partition" // a partition MARKED or STARTED for deletion, not finished
	Halted          Kind = "halted-partition"     // a metadata partition stopped at a record it cannot read
	Skipped         Kind = "skipped-record"       // a record an operator skipped
	Dropped         Kind = "dropped-record"       // a record the metadata could not apply, and why
)

// Kinds lists every kind, so that a report can count the kinds found zero times too.
var Kinds = []Kind{StuckCopy, StuckDelete, Gap, Overlap, MissingObjects, Orphan, Stray, PartitionDelete, Halted, Skipped, Dropped}

// Anomaly is one finding.
type Anomaly struct {
	Kind Kind
	// Partition is the user partition concerned; zero for an anomaly of the metadata topic
	// itself (a halted metadata partition, a skipped record) or of an object outside any
	// partition's directory.
	Partition proto.TopicIDPartition
	// Segment is the segment's metadata, for an anomaly about a segment the metadata knows
	// (stuck, gap and overlap: the later of the two segments, missing objects).
	Segment *proto.SegmentMetadata
	// Drop is the record the metadata did not apply, for a dropped record.
	Drop *cache.DroppedRecord
	// Object is the stored object, for an orphan or a stray object.
	Object *rsm.Object
	// MetadataPartition and Offset locate the record of a halted metadata partition, a skipped
	// record or a dropped one; Offset is -1 otherwise.
	MetadataPartition int32
	Offset            int64
	// Age is how long a stuck segment has been in its state; zero for other kinds.
	Age    time.Duration
	Detail string
}

// SegmentID is the id of the segment the anomaly is about: the segment's, or the one an
// orphan's name gives; the zero UUID when there is none.
func (a *Anomaly) SegmentID() proto.UUID {
	switch {
	case a.Segment != nil:
		return a.Segment.SegmentID.ID
	case a.Object != nil:
		return a.Object.Segment.ID
	case a.Drop != nil:
		return a.Drop.Segment
	}
	return proto.ZeroUUID
}

// Options tunes Find.
type Options struct {
	// StuckAfter is how long a segment may stay COPY_ or DELETE_SEGMENT_STARTED before it is
	// stuck. It must not be negative; zero reports every such segment.
	StuckAfter time.Duration
	// Now is the time ages are measured against. Default time.Now().
	Now time.Time
	// Halts are the metadata partitions that stopped at a record, as rlmm.Manager.Stats reports
	// them. What a halted partition holds is incomplete: its rows are still checked, and the
	// halt is reported.
	Halts []*rlmm.HaltError
}

// Find checks the metadata, and the storage when st is not nil, and returns every anomaly in
// a stable order: user partition by user partition (ordered by topic name and partition), then
// the objects storage holds that no partition accounts for, then the metadata topic itself
// (halted metadata partitions, skipped records, then every record the metadata kept as
// dropped: an update of a segment it does not know, an invalid transition, a duplicate add, a
// record of a partition already deleted, ...). It changes nothing.
func Find(ctx context.Context, md Metadata, st rsm.Manager, o Options) ([]Anomaly, error) {
	if o.StuckAfter < 0 {
		return nil, fmt.Errorf("audit: stuck-after %s is negative", o.StuckAfter)
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	infos, err := SortedPartitions(md)
	if err != nil {
		return nil, err
	}
	var out []Anomaly
	live := map[proto.UUID]bool{}
	for _, in := range infos {
		found, err := checkPartition(ctx, md, st, in, o, live)
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	if st != nil {
		found, err := checkStorage(ctx, st, live)
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	for _, h := range o.Halts {
		out = append(out, Anomaly{Kind: Halted, MetadataPartition: h.Partition, Offset: h.Offset,
			Detail: fmt.Sprintf("%s-%d stopped at offset %d: %v; what follows it is not read", proto.TopicName, h.Partition, h.Offset, h.Cause)})
	}
	skipped, err := md.Skipped()
	if err != nil {
		return nil, fmt.Errorf("audit: listing skipped records: %w", err)
	}
	for _, sk := range skipped {
		out = append(out, Anomaly{Kind: Skipped, MetadataPartition: sk.Partition, Offset: sk.Offset,
			Detail: fmt.Sprintf("%s-%d offset %d skipped at %s: %s", proto.TopicName, sk.Partition, sk.Offset, sk.At.UTC().Format(time.RFC3339), sk.Reason)})
	}
	dropped, err := md.Dropped()
	if err != nil {
		return nil, fmt.Errorf("audit: listing dropped records: %w", err)
	}
	for i := range dropped {
		d := &dropped[i]
		if repeatedDeletion(d) {
			continue
		}
		what := "a partition-delete record"
		if d.Segment != proto.ZeroUUID {
			what = "a record of segment " + d.Segment.String()
		}
		if d.UserPartition != (proto.TopicIDPartition{}) {
			what += " of " + d.UserPartition.String()
		}
		out = append(out, Anomaly{Kind: Dropped, Partition: d.UserPartition, Drop: d, MetadataPartition: d.Partition, Offset: d.Offset,
			Detail: fmt.Sprintf("%s-%d offset %d, %s, not applied (%s): %s", proto.TopicName, d.Partition, d.Offset, what, d.Reason, d.Detail)})
	}
	return out, nil
}

// repeatedDeletion reports whether d is a partition-delete record dropped because the
// partition's deletion was already under way or done: a broker publishes
// DELETE_PARTITION_MARKED again for a topic whose deletion it retries, and a remover that
// resumes another's work may repeat a step. Such a record changes nothing and loses nothing, so
// it is no anomaly. A deletion that truly stalls shows as an unfinished partition deletion, and
// a late record of a segment stays reported.
func repeatedDeletion(d *cache.DroppedRecord) bool {
	return d.Segment == proto.ZeroUUID && d.UserPartition != (proto.TopicIDPartition{}) &&
		(d.Reason == cache.PartitionDeleted || d.Reason == cache.InvalidTransition)
}

// SortedPartitions returns every user partition md knows, ordered by topic name and partition.
func SortedPartitions(md Metadata) ([]cache.PartitionInfo, error) {
	infos, err := md.Partitions()
	if err != nil {
		return nil, fmt.Errorf("audit: listing partitions: %w", err)
	}
	slices.SortFunc(infos, func(a, b cache.PartitionInfo) int {
		return cmp.Or(cmp.Compare(a.Partition.Topic, b.Partition.Topic), cmp.Compare(a.Partition.Partition, b.Partition.Partition),
			cmp.Compare(a.Partition.TopicID.String(), b.Partition.TopicID.String()))
	})
	return infos, nil
}

// segmentsOf is md.Segments with a partition the store does not know read as empty.
func segmentsOf(md Metadata, tp proto.TopicIDPartition) ([]proto.SegmentMetadata, error) {
	segs, err := md.Segments(tp)
	if err != nil && !errors.Is(err, cache.ErrNotFound) {
		return nil, fmt.Errorf("audit: listing segments of %s: %w", tp, err)
	}
	return segs, nil
}

func checkPartition(ctx context.Context, md Metadata, st rsm.Manager, in cache.PartitionInfo, o Options, live map[proto.UUID]bool) ([]Anomaly, error) {
	tp := in.Partition
	segs, err := segmentsOf(md, tp)
	if err != nil {
		return nil, err
	}
	var out []Anomaly
	var finished []*proto.SegmentMetadata
	for i := range segs {
		s := &segs[i]
		live[s.SegmentID.ID] = true
		age := o.Now.Sub(time.UnixMilli(s.EventTimestampMs))
		switch {
		case s.State == proto.CopySegmentStarted && age > o.StuckAfter:
			out = append(out, Anomaly{Kind: StuckCopy, Partition: tp, Segment: s, Offset: -1, Age: age,
				Detail: fmt.Sprintf("COPY_SEGMENT_STARTED for %s: the copy never finished", age.Round(time.Second))})
		case s.State == proto.DeleteSegmentStarted && age > o.StuckAfter:
			out = append(out, Anomaly{Kind: StuckDelete, Partition: tp, Segment: s, Offset: -1, Age: age,
				Detail: fmt.Sprintf("DELETE_SEGMENT_STARTED for %s: the delete never finished", age.Round(time.Second))})
		case s.State == proto.CopySegmentFinished:
			finished = append(finished, s)
		}
	}
	slices.SortStableFunc(finished, func(a, b *proto.SegmentMetadata) int { return cmp.Compare(a.StartOffset, b.StartOffset) })
	// Compare each segment with the furthest end seen so far, so that a segment inside an
	// earlier, longer one counts as an overlap and does not hide a gap after it.
	var prev *proto.SegmentMetadata
	for _, cur := range finished {
		switch {
		case prev == nil:
		case cur.StartOffset > prev.EndOffset+1:
			out = append(out, Anomaly{Kind: Gap, Partition: tp, Segment: cur, Offset: -1,
				Detail: fmt.Sprintf("offsets %d-%d are in no finished segment (between %s and %s)", prev.EndOffset+1, cur.StartOffset-1, prev.SegmentID.ID, cur.SegmentID.ID)})
		case cur.StartOffset <= prev.EndOffset:
			out = append(out, Anomaly{Kind: Overlap, Partition: tp, Segment: cur, Offset: -1,
				Detail: fmt.Sprintf("offsets %d-%d are in both %s and %s", cur.StartOffset, min(prev.EndOffset, cur.EndOffset), prev.SegmentID.ID, cur.SegmentID.ID)})
		}
		if prev == nil || cur.EndOffset > prev.EndOffset {
			prev = cur
		}
	}
	if in.HasDeleteState && in.DeleteState != proto.DeletePartitionFinished {
		out = append(out, Anomaly{Kind: PartitionDelete, Partition: tp, Offset: -1,
			Detail: fmt.Sprintf("%s with %d segments left: no remover finished it", in.DeleteState, len(segs))})
	}
	if st != nil && len(finished) > 0 {
		hasLog := map[proto.UUID]bool{}
		for obj, err := range st.List(ctx, tp) {
			if err != nil {
				return nil, fmt.Errorf("audit: listing the storage of %s: %w", tp, err)
			}
			if obj.Type == rsm.FileLog && obj.Problem == "" {
				hasLog[obj.Segment.ID] = true
			}
		}
		for _, f := range finished {
			if !hasLog[f.SegmentID.ID] {
				out = append(out, Anomaly{Kind: MissingObjects, Partition: tp, Segment: f, Offset: -1,
					Detail: "COPY_SEGMENT_FINISHED but its log is not in storage: reads of these offsets will fail"})
			}
		}
	}
	return out, nil
}

// checkStorage reports the objects no live segment owns. Its order is the storage's: List's
// within a partition, unspecified across partitions, so it sorts by name.
func checkStorage(ctx context.Context, st rsm.Manager, live map[proto.UUID]bool) ([]Anomaly, error) {
	var out []Anomaly
	for obj, err := range st.ListAll(ctx) {
		if err != nil {
			return nil, fmt.Errorf("audit: listing the storage: %w", err)
		}
		ob := obj
		switch {
		case obj.Problem != "" || !obj.Attributed():
			out = append(out, Anomaly{Kind: Stray, Partition: obj.Segment.TopicIDPartition, Object: &ob, Offset: -1,
				Detail: cmp.Or(obj.Problem, "a name no segment has")})
		case !live[obj.Segment.ID]:
			out = append(out, Anomaly{Kind: Orphan, Partition: obj.Segment.TopicIDPartition, Object: &ob, Offset: -1,
				Detail: "no live segment owns it (deleted, or never finished being published)"})
		}
	}
	slices.SortStableFunc(out, func(a, b Anomaly) int { return cmp.Compare(a.Object.Name, b.Object.Name) })
	return out, nil
}
