package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/remover"
	"github.com/stratalog/strata/rsm"
	"github.com/stratalog/strata/tier"
)

// Action is what a repair step does.
type Action string

// The repair actions.
const (
	// DeleteSegment deletes a stuck segment through the normal events: DELETE_SEGMENT_STARTED
	// (unless it is already there), its objects deleted, DELETE_SEGMENT_FINISHED.
	DeleteSegment Action = "delete-segment"
	// DeleteOrphan removes from storage the objects of a segment the metadata does not know.
	DeleteOrphan Action = "delete-orphan"
	// FinishPartition finishes a partition deletion as the remover does.
	FinishPartition Action = "finish-partition"
	// Manual: nothing is safe to do automatically; an operator decides.
	Manual Action = "manual"
	// Wait: an orphan too young, or of unknown age, that may belong to a copy still running.
	Wait Action = "wait"
)

// Automatic reports whether Execute carries the action out.
func (a Action) Automatic() bool {
	return a == DeleteSegment || a == DeleteOrphan || a == FinishPartition
}

// Outcome is what Execute did with a step.
type Outcome string

// The outcomes of a step.
const (
	NotRun  Outcome = ""        // not automatic, or not executed
	Done    Outcome = "done"    // carried out
	Refused Outcome = "refused" // the re-check before acting found it no longer safe or needed
	Failed  Outcome = "failed"  // tried and failed; Step.Err says why
)

// Step is one step of a repair plan.
type Step struct {
	Action  Action
	Anomaly Anomaly
	// Target names what the step acts on: a segment id, an object, a partition.
	Target string
	Detail string
	Result Outcome
	// Why says why a step was refused; Err why it failed.
	Why string
	Err error
}

// PlanOptions tunes Plan.
type PlanOptions struct {
	// Storage says whether the storage is known; without it nothing that deletes data is
	// planned.
	Storage bool
	// OrphanAge is how old an orphan must be before it is deleted, so that an upload in flight,
	// whose COPY_SEGMENT_STARTED is not applied yet, never loses its data. Must not be negative.
	OrphanAge time.Duration
	// Now is the time ages are measured against. Default time.Now().
	Now time.Time
}

// Plan turns anomalies into steps, one per anomaly, in their order. Only what is fixed through
// the normal events, or data that no live segment owns, gets an automatic action.
func Plan(found []Anomaly, o PlanOptions) ([]Step, error) {
	if o.OrphanAge < 0 {
		return nil, fmt.Errorf("audit: orphan age %s is negative", o.OrphanAge)
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	const noStorage = "give the storage (--s3-bucket or --local-dir) so that its objects can be deleted"
	plan := make([]Step, 0, len(found))
	for _, a := range found {
		s := Step{Anomaly: a, Action: Manual, Target: "-"}
		if id := a.SegmentID(); id != proto.ZeroUUID {
			s.Target = id.String()
		}
		switch a.Kind {
		case StuckCopy:
			s.Action, s.Detail = DeleteSegment, "publish DELETE_SEGMENT_STARTED, delete its objects, publish DELETE_SEGMENT_FINISHED"
		case StuckDelete:
			s.Action, s.Detail = DeleteSegment, "delete its objects, publish DELETE_SEGMENT_FINISHED"
		case PartitionDelete:
			s.Target = a.Partition.String()
			s.Action, s.Detail = FinishPartition, "delete its remaining segments and publish DELETE_PARTITION_FINISHED"
		case Orphan:
			s.Target = a.Object.Name
			switch {
			case a.Object.Modified.IsZero():
				s.Action, s.Detail = Wait, "its age is unknown; delete it by hand once sure no copy is in flight"
			case o.Now.Sub(a.Object.Modified) >= o.OrphanAge:
				s.Action, s.Detail = DeleteOrphan, fmt.Sprintf("no live segment owns it; %s old", o.Now.Sub(a.Object.Modified).Round(time.Second))
			default:
				s.Action, s.Detail = Wait, fmt.Sprintf("only %s old, under the orphan age %s: it may belong to a copy in flight",
					o.Now.Sub(a.Object.Modified).Round(time.Second), o.OrphanAge)
			}
		case Stray:
			s.Target, s.Detail = a.Object.Name, a.Detail+": remove it by hand once no copy is running"
		case Gap:
			s.Detail = "the offsets are lost to remote storage unless a broker still holds them locally"
		case Overlap:
			s.Detail = "both copies are kept; the older one is released when retention deletes it"
		case MissingObjects:
			s.Detail = "the data is gone from storage; check the storage and the broker's local log"
		case Halted:
			s.Target = fmt.Sprintf("%s-%d@%d", proto.TopicName, a.MetadataPartition, a.Offset)
			s.Detail = "find why the record cannot be read; skip it only once sure what it said"
		case Skipped:
			s.Target = fmt.Sprintf("%s-%d@%d", proto.TopicName, a.MetadataPartition, a.Offset)
			s.Detail = "skipped on purpose; check that what it said is not missing from the metadata"
		case Dropped:
			s.Target = fmt.Sprintf("%s-%d@%d", proto.TopicName, a.MetadataPartition, a.Offset)
			s.Detail = "the metadata never applied it: check which broker wrote it (strata tail) and that nothing it meant is missing"
		default:
			s.Detail = a.Detail
		}
		if !o.Storage && (s.Action == DeleteSegment || s.Action == FinishPartition) {
			s.Action, s.Detail = Manual, noStorage
		}
		plan = append(plan, s)
	}
	return plan, nil
}

// Writer is what Execute needs of a metadata manager to publish events; *rlmm.Manager
// implements it.
type Writer = remover.Metadata

// ExecuteOptions tunes Execute.
type ExecuteOptions struct {
	BrokerID int32       // the broker id the events carry; -1 marks them as an operator's
	Logger   *zap.Logger // default zap.NewNop()
}

// Execute carries out the automatic steps of plan, in order, setting each one's Result. Before
// each step it reads the metadata again through md (which must see what w publishes) and
// refuses a step the metadata no longer calls for: a stuck copy that finished meanwhile is
// live, and an orphan whose segment is now known may be a copy in flight; their data is never
// deleted. It returns the number of steps that failed.
//
// The re-check and the first event of a step are two moments: a copy that finishes between them
// is deleted, its COPY_SEGMENT_FINISHED followed by DELETE_SEGMENT_STARTED, which the metadata
// allows. PlanOptions and Options keep that window to copies already stuck for StuckAfter.
func Execute(ctx context.Context, w Writer, md Metadata, st rsm.Manager, plan []Step, o ExecuteOptions) (failed int) {
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	var tr *tier.Tierer
	noStorage := errors.New("no storage given")
	if st != nil {
		var err error
		if tr, err = tier.New(w, st, tier.WithBrokerID(o.BrokerID), tier.WithLogger(log)); err != nil {
			noStorage = err
		}
	}
	for i := range plan {
		s := &plan[i]
		if !s.Action.Automatic() {
			continue
		}
		if tr == nil {
			s.Result, s.Err = Failed, noStorage
			failed++
			continue
		}
		why, err := execute(ctx, w, md, st, tr, s, o.BrokerID, log)
		switch {
		case err != nil:
			s.Result, s.Err = Failed, err
			failed++
		case why != "":
			s.Result, s.Why = Refused, why
		default:
			s.Result = Done
		}
	}
	return failed
}

func execute(ctx context.Context, w Writer, md Metadata, st rsm.Manager, tr *tier.Tierer, s *Step, brokerID int32, log *zap.Logger) (refused string, err error) {
	switch s.Action {
	case DeleteSegment:
		id := s.Anomaly.Segment.SegmentID
		cur, ok, err := md.Segment(id)
		switch {
		case err != nil && !errors.Is(err, cache.ErrNotFound):
			return "", err
		case !ok:
			return "the segment is gone from the metadata: deleted meanwhile", nil
		case cur.State == proto.CopySegmentFinished:
			return "the segment is COPY_SEGMENT_FINISHED now: its data is live", nil
		case cur.State != s.Anomaly.Segment.State:
			return fmt.Sprintf("the segment moved from %s to %s meanwhile", s.Anomaly.Segment.State, cur.State), nil
		}
		return "", tr.Delete(ctx, []proto.SegmentMetadata{cur})
	case FinishPartition:
		return "", remover.FinishPartition(ctx, w, tr, brokerID, s.Anomaly.Partition, log)
	case DeleteOrphan:
		obj := s.Anomaly.Object
		cur, ok, err := md.Segment(obj.Segment)
		switch {
		case err != nil && !errors.Is(err, cache.ErrNotFound):
			return "", err
		case ok:
			return fmt.Sprintf("the metadata knows the segment now (%s): it may be a copy in flight", cur.State), nil
		}
		return "", st.Delete(ctx, &proto.SegmentMetadata{SegmentID: obj.Segment, StartOffset: obj.StartOffset})
	}
	return "", nil
}
