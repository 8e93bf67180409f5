package rsm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strconv"
	"strings"
	"time"

	"github.com/stratalog/strata/proto"
)

// Sentinel errors. Every error a Manager returns is an *Error whose chain holds at most one of
// them; test with errors.Is.
var (
	// ErrNotFound: the segment, or the requested index of it, is not in remote storage. Kafka's
	// RemoteResourceNotFoundException.
	ErrNotFound = errors.New("not found")
	// ErrPermanent: retrying the same call cannot succeed: access denied, bad credentials, a
	// missing bucket or directory that cannot be created, a wrong region, an invalid argument.
	ErrPermanent = errors.New("permanent error")
	// ErrCorrupt: bytes read back do not match the checksum recorded when they were written.
	ErrCorrupt = errors.New("corrupt data")
)

// EndOfLog as the end position of FetchLog reads to the end of the segment's log.
const EndOfLog int64 = -1

// Manager is Kafka's RemoteStorageManager in Go terms: it stores the data of closed log segments
// and gives it back.
//
// All methods are safe for concurrent use, except that a segment must not be copied, fetched or
// deleted by two calls at once while one of them is Copy or Delete; Kafka never does this
// either, since every copy attempt carries a fresh segment id.
//
// Every error is an *Error naming the operation, the segment and the object or file; its chain
// holds ErrNotFound, ErrPermanent or ErrCorrupt where they apply, and the context's error when
// the context ended the call.
type Manager interface {
	// Copy stores the segment described by seg, reading its files from data, and returns custom
	// metadata for the caller to record with COPY_SEGMENT_FINISHED, or nil for none. Both
	// implementations in this module return nil.
	//
	// Copy is idempotent: copying a segment that is already stored replaces it, files the new
	// copy does not have (a transaction index) included. On error Copy removes what it wrote
	// before returning, as far as it can within ctx; what it could not remove is found by List,
	// and Delete of the segment removes it.
	Copy(ctx context.Context, seg *proto.SegmentMetadata, data SegmentData) (customMetadata []byte, err error)

	// FetchLog returns the bytes [start, end) of the segment's log file; end EndOfLog (or any
	// negative value) reads to the end. An end past the log is clipped to it, and a start at or
	// past the end yields an empty stream, as Kafka's fetchLogSegment does. A negative start or
	// an end before start is an ErrPermanent error. An empty range returns an empty stream
	// without touching storage.
	//
	// Note that Kafka's endPosition is inclusive; end here is exclusive, as Go slices are.
	//
	// The stream's bytes are valid only if reading it ends with io.EOF; an error part way means
	// the bytes already returned must be discarded. The caller must close the stream.
	FetchLog(ctx context.Context, seg *proto.SegmentMetadata, start, end int64) (io.ReadCloser, error)

	// FetchIndex returns one index of the segment. A segment copied without a transaction index
	// yields ErrNotFound for IndexTransaction, as Kafka's does; the caller is expected to
	// rebuild it from the log if it needs it. The caller must close the stream.
	FetchIndex(ctx context.Context, seg *proto.SegmentMetadata, t IndexType) (io.ReadCloser, error)

	// Delete removes everything stored for the segment. Deleting a segment that is not stored,
	// or is only partly stored, succeeds: a retry after a partial failure finishes the job.
	Delete(ctx context.Context, seg *proto.SegmentMetadata) error

	// List yields every object stored under the partition, including those that belong to no
	// complete segment (see Object.Problem). Stored objects come in ascending Name order, which
	// for Kafka's 20-digit file names is ascending start offset; what is not a stored object
	// (rsm/s3's incomplete multipart uploads) follows them. An error ends the sequence.
	List(ctx context.Context, tp proto.TopicIDPartition) iter.Seq2[Object, error]

	// ListAll yields what List yields for every partition, and every object the store holds
	// that belongs to no partition. The order across partitions is unspecified; within a
	// partition it is List's.
	ListAll(ctx context.Context) iter.Seq2[Object, error]

	// Close releases what the manager holds. The manager must not be used afterwards. A second
	// Close returns nil.
	Close() error
}

// BatchDeleter is implemented by managers that delete many segments in fewer requests than one
// per segment (rsm/s3: 500 segments a request). Call DeleteBatch, which falls back to Delete.
type BatchDeleter interface {
	// DeleteBatch deletes each segment of segs as Delete would and returns one error per
	// segment, nil for each deleted, so that the failure of some does not hide the others.
	DeleteBatch(ctx context.Context, segs []*proto.SegmentMetadata) []error
}

// DeleteBatch deletes segs through m's BatchDeleter if it has one, else with one Delete per
// segment. It returns one error per segment, nil for each deleted.
func DeleteBatch(ctx context.Context, m Manager, segs []*proto.SegmentMetadata) []error {
	if bd, ok := m.(BatchDeleter); ok {
		return bd.DeleteBatch(ctx, segs)
	}
	errs := make([]error, len(segs))
	for i, seg := range segs {
		errs[i] = m.Delete(ctx, seg)
	}
	return errs
}

// SegmentData is where Copy reads a segment from, as Kafka's LogSegmentData: paths of the
// files of a closed segment in the broker's log directory, and the leader-epoch checkpoint of
// the segment, which Kafka builds in memory rather than keeping as a file.
//
// The files must not change while Copy runs.
type SegmentData struct {
	LogPath              string // <base offset>.log
	OffsetIndexPath      string // <base offset>.index
	TimeIndexPath        string // <base offset>.timeindex
	TransactionIndexPath string // <base offset>.txnindex; "" when the segment has none
	ProducerSnapshotPath string // <base offset>.snapshot
	// LeaderEpochCheckpoint is the content of the leader-epoch checkpoint restricted to the
	// segment, in Kafka's text format. Copy does not keep a reference to it.
	LeaderEpochCheckpoint []byte
}

// IndexType names an index of a segment, as Kafka's RemoteStorageManager.IndexType does.
type IndexType int8

// The index types, in the order of Kafka's enum.
const (
	IndexOffset           IndexType = iota // OFFSET: the .index file
	IndexTimestamp                         // TIMESTAMP: the .timeindex file
	IndexProducerSnapshot                  // PRODUCER_SNAPSHOT: the .snapshot file
	IndexTransaction                       // TRANSACTION: the .txnindex file, which may be absent
	IndexLeaderEpoch                       // LEADER_EPOCH: the leader-epoch checkpoint
)

// IndexTypes lists every index type in the order of Kafka's enum.
var IndexTypes = []IndexType{IndexOffset, IndexTimestamp, IndexProducerSnapshot, IndexTransaction, IndexLeaderEpoch}

var indexTypeNames = [...]string{"OFFSET", "TIMESTAMP", "PRODUCER_SNAPSHOT", "TRANSACTION", "LEADER_EPOCH"}

// Valid reports whether t is one of the five index types.
func (t IndexType) Valid() bool { return t >= 0 && int(t) < len(indexTypeNames) }

// String is Kafka's name of the index type.
func (t IndexType) String() string {
	if !t.Valid() {
		return "IndexType(" + strconv.Itoa(int(t)) + ")"
	}
	return indexTypeNames[t]
}

// FileType is the type of file Kafka's LocalTieredStorage keeps the index in.
func (t IndexType) FileType() FileType {
	switch t {
	case IndexOffset:
		return FileOffsetIndex
	case IndexTimestamp:
		return FileTimeIndex
	case IndexProducerSnapshot:
		return FileProducerSnapshot
	case IndexTransaction:
		return FileTransactionIndex
	case IndexLeaderEpoch:
		return FileLeaderEpochCheckpoint
	}
	return FileUnknown
}

// FileType is the type of a stored file or object, told by its name's suffix. The first six are
// Kafka's RemoteLogSegmentFileType; FileIndexes is rsm/s3's single object holding all of a
// segment's indexes.
type FileType int8

// The file types.
const (
	FileUnknown               FileType = iota // not a segment file
	FileLog                                   // ".log"
	FileOffsetIndex                           // ".index"
	FileTimeIndex                             // ".timeindex"
	FileTransactionIndex                      // ".txnindex"
	FileProducerSnapshot                      // ".snapshot"
	FileLeaderEpochCheckpoint                 // ".leader_epoch_checkpoint"
	FileIndexes                               // ".indexes" (rsm/s3 only)
)

var fileTypeSuffixes = [...]string{"", ".log", ".index", ".timeindex", ".txnindex", ".snapshot", ".leader_epoch_checkpoint", ".indexes"}

var fileTypeNames = [...]string{"UNKNOWN", "SEGMENT", "OFFSET_INDEX", "TIME_INDEX", "TRANSACTION_INDEX", "PRODUCER_SNAPSHOT", "LEADER_EPOCH_CHECKPOINT", "INDEXES"}

// Suffix is the file name suffix of the type, dot included; "" for FileUnknown.
func (t FileType) Suffix() string {
	if t < 0 || int(t) >= len(fileTypeSuffixes) {
		return ""
	}
	return fileTypeSuffixes[t]
}

// String is Kafka's name of the file type (RemoteLogSegmentFileType), or INDEXES.
func (t FileType) String() string {
	if t < 0 || int(t) >= len(fileTypeNames) {
		return "FileType(" + strconv.Itoa(int(t)) + ")"
	}
	return fileTypeNames[t]
}

// Object is one stored file (rsm/local) or object (rsm/s3), as List reports it.
type Object struct {
	// Name locates the object: for rsm/local its path relative to the directory the store was
	// opened on, with '/' separators; for rsm/s3 its key.
	Name string
	// Size is the object's size in bytes; 0 for an incomplete multipart upload.
	Size int64
	// Modified is when the object was last written (for an incomplete multipart upload, when
	// it started); zero when the storage does not say. Repair tools use it to leave alone
	// objects young enough to belong to a copy still running.
	Modified time.Time
	// Segment and StartOffset are the segment the name attributes the object to. Segment.ID is
	// the zero UUID when the name attributes it to none; Segment.TopicIDPartition may still be
	// set when the object lies in a partition's directory.
	Segment     proto.SegmentID
	StartOffset int64
	// Type is the kind of file its name says it is; FileUnknown when it says none.
	Type FileType
	// Problem is empty for an object that is a regular part of a segment. Otherwise it says why
	// the object is not: an unrecognized name, a temporary file left by an interrupted write, an
	// incomplete multipart upload. Such objects are never read by the manager and are safe to
	// remove once no copy is running.
	Problem string
}

// Attributed reports whether the object's name ties it to a segment id.
func (o Object) Attributed() bool { return o.Segment.ID != proto.ZeroUUID }

// Error is the error every Manager operation returns. It names the operation, the segment and
// the object, so that a log line alone says what failed where.
type Error struct {
	Op          string          // "copy", "fetch log", "fetch index OFFSET", "delete", "list"
	Segment     proto.SegmentID // zero for operations on no segment (ListAll)
	StartOffset int64
	Object      string // path, or s3://bucket/key; "" when the failure is not about one object
	Err         error
}

// NewError returns an *Error for an operation on seg, which may be nil.
func NewError(op string, seg *proto.SegmentMetadata, object string, err error) *Error {
	e := &Error{Op: op, Object: object, Err: err}
	if seg != nil {
		e.Segment = seg.SegmentID
		e.StartOffset = seg.StartOffset
	}
	return e
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("rsm: ")
	b.WriteString(e.Op)
	if e.Segment.ID != proto.ZeroUUID {
		b.WriteString(" segment ")
		b.WriteString(e.Segment.ID.String())
		b.WriteString(" of ")
		b.WriteString(e.Segment.TopicIDPartition.String())
		b.WriteString(" at offset ")
		b.WriteString(strconv.FormatInt(e.StartOffset, 10))
	} else if e.Segment.Topic != "" {
		b.WriteString(" ")
		b.WriteString(e.Segment.TopicIDPartition.String())
	}
	if e.Object != "" {
		b.WriteString(": ")
		b.WriteString(e.Object)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// CheckFetch validates FetchLog's arguments as every Manager must: a valid segment and range.
// It returns end normalized (see CheckRange), and empty true when the range holds no byte, in
// which case FetchLog returns EmptyReader without touching storage. The error is an *Error of
// op on seg.
func CheckFetch(op string, seg *proto.SegmentMetadata, start, end int64) (normEnd int64, empty bool, err error) {
	if err := CheckSegment(seg); err != nil {
		return 0, false, NewError(op, seg, "", err)
	}
	end, err = CheckRange(start, end)
	if err != nil {
		return 0, false, NewError(op, seg, "", err)
	}
	return end, end == start, nil
}

// CheckCall validates what every Manager call on one segment must check before touching
// storage: a valid segment and a live context. The error is an *Error of op on seg.
func CheckCall(ctx context.Context, op string, seg *proto.SegmentMetadata) error {
	if err := CheckSegment(seg); err != nil {
		return NewError(op, seg, "", err)
	}
	if err := ctx.Err(); err != nil {
		return NewError(op, seg, "", err)
	}
	return nil
}

// CheckFetchIndex validates FetchIndex's arguments as every Manager must: a valid segment, a
// live context, a known index type. It returns the operation's name for errors, and an *Error
// of it on seg.
func CheckFetchIndex(ctx context.Context, seg *proto.SegmentMetadata, t IndexType) (op string, err error) {
	op = "fetch index " + t.String()
	if err := CheckCall(ctx, op, seg); err != nil {
		return op, err
	}
	if !t.Valid() {
		return op, NewError(op, seg, "", fmt.Errorf("%w: invalid argument: unknown index type %d", ErrPermanent, int(t)))
	}
	return op, nil
}

// CheckRange validates FetchLog's arguments and normalizes end: a negative end becomes
// EndOfLog. The error wraps ErrPermanent.
func CheckRange(start, end int64) (int64, error) {
	if start < 0 {
		return 0, invalidArgf("start position %d is negative", start)
	}
	if end < 0 {
		return EndOfLog, nil
	}
	if end < start {
		return 0, invalidArgf("end position %d is before start position %d", end, start)
	}
	return end, nil
}

// EmptyReader is an empty stream that needs no closing but may be closed.
func EmptyReader() io.ReadCloser { return io.NopCloser(strings.NewReader("")) }
