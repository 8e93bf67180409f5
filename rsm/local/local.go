package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"syscall"

	"go.uber.org/zap"

	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rsm"
)

// tmpDirName is the directory, beside kafka-tiered-storage, that holds files being written.
const tmpDirName = ".strata-tmp"

// Option configures a Store.
type Option interface{ apply(*options) }

type options struct {
	logger *zap.Logger
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// WithLogger sets the logger for the few events worth logging: files a failed Copy could not
// remove. The default discards everything.
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(o *options) {
		if l != nil {
			o.logger = l
		}
	})
}

// Store is an rsm.Manager over a directory. It holds no open files between calls; Close does
// nothing and exists for the interface.
type Store struct {
	dir  string // as given to New, cleaned
	root string // dir/kafka-tiered-storage
	tmp  string // dir/.strata-tmp
	log  *zap.Logger
}

var _ rsm.Manager = (*Store)(nil)

// New opens the store kept under dir, creating dir/kafka-tiered-storage if needed, as Kafka's
// LocalTieredStorage does with its configured directory.
func New(dir string, opts ...Option) (*Store, error) {
	o := options{logger: zap.NewNop()}
	for _, opt := range opts {
		opt.apply(&o)
	}
	if dir == "" {
		return nil, fmt.Errorf("rsm/local: %w: directory is empty", rsm.ErrPermanent)
	}
	dir = filepath.Clean(dir)
	s := &Store{dir: dir, root: filepath.Join(dir, rsm.RootDirName), tmp: filepath.Join(dir, tmpDirName), log: o.logger}
	for _, d := range []string{s.root, s.tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("rsm/local: creating %s: %w", d, classify(err))
		}
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("rsm/local: syncing %s: %w", dir, classify(err))
	}
	return s, nil
}

// Root returns the directory Kafka's layout starts at: <dir>/kafka-tiered-storage.
func (s *Store) Root() string { return s.root }

// Close implements rsm.Manager; it has nothing to release and always returns nil.
func (s *Store) Close() error { return nil }

func (s *Store) partitionDir(tp proto.TopicIDPartition) string {
	return filepath.Join(s.root, rsm.PartitionDirName(tp))
}

func (s *Store) path(seg *proto.SegmentMetadata, t rsm.FileType) string {
	return filepath.Join(s.partitionDir(seg.SegmentID.TopicIDPartition), rsm.SegmentFileName(seg.StartOffset, seg.SegmentID.ID, t))
}

func (s *Store) legacyPath(seg *proto.SegmentMetadata, t rsm.FileType) string {
	return filepath.Join(s.partitionDir(seg.SegmentID.TopicIDPartition), rsm.LegacySegmentFileName(seg.StartOffset, seg.SegmentID.ID, t))
}

// kafkaFileTypes are the files a segment may have in Kafka's layout.
var kafkaFileTypes = []rsm.FileType{
	rsm.FileLog, rsm.FileOffsetIndex, rsm.FileTimeIndex, rsm.FileTransactionIndex,
	rsm.FileProducerSnapshot, rsm.FileLeaderEpochCheckpoint,
}

// Copy implements rsm.Manager. It writes the log first and the leader-epoch checkpoint and
// producer snapshot last, in the order Kafka's LocalTieredStorage does. The context is checked
// between files: a file already being copied is finished.
func (s *Store) Copy(ctx context.Context, seg *proto.SegmentMetadata, data rsm.SegmentData) ([]byte, error) {
	const op = "copy"
	if err := rsm.CheckCall(ctx, op, seg); err != nil {
		return nil, err
	}
	pdir := s.partitionDir(seg.SegmentID.TopicIDPartition)
	if err := s.ensurePartitionDir(pdir); err != nil {
		return nil, rsm.NewError(op, seg, pdir, err)
	}

	type file struct {
		t     rsm.FileType
		src   string
		bytes []byte
	}
	files := []file{
		{rsm.FileLog, data.LogPath, nil},
		{rsm.FileOffsetIndex, data.OffsetIndexPath, nil},
		{rsm.FileTimeIndex, data.TimeIndexPath, nil},
		{rsm.FileTransactionIndex, data.TransactionIndexPath, nil},
		{rsm.FileLeaderEpochCheckpoint, "", data.LeaderEpochCheckpoint},
		{rsm.FileProducerSnapshot, data.ProducerSnapshotPath, nil},
	}
	var written []string
	fail := func(object string, err error) ([]byte, error) {
		for _, p := range written {
			if rerr := os.Remove(p); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				s.log.Warn("rsm/local: could not remove a file of a failed copy", zap.String("path", p), zap.Error(rerr))
			}
		}
		return nil, rsm.NewError(op, seg, object, err)
	}
	for _, f := range files {
		dst := s.path(seg, f.t)
		if f.t == rsm.FileTransactionIndex && f.src == "" {
			// A previous copy of this segment may have had one; leaving it would pair it with
			// a log it does not describe.
			if err := removeIfExists(dst); err != nil {
				return fail(dst, err)
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return fail(dst, err)
		}
		if f.t != rsm.FileLeaderEpochCheckpoint && f.src == "" {
			return fail(dst, fmt.Errorf("%w: invalid argument: no path for the %v file", rsm.ErrPermanent, f.t))
		}
		if err := s.writeAtomic(dst, f.src, f.bytes); err != nil {
			return fail(dst, err)
		}
		written = append(written, dst)
	}
	// Files of the same segment under the names of brokers that did not pad the offset would
	// now be a second, stale copy.
	for _, t := range kafkaFileTypes {
		if legacy := s.legacyPath(seg, t); legacy != s.path(seg, t) {
			if err := removeIfExists(legacy); err != nil {
				return fail(legacy, err)
			}
		}
	}
	if err := syncDir(pdir); err != nil {
		return fail(pdir, classify(err))
	}
	return nil, nil
}

// ensurePartitionDir creates pdir if needed and makes its entry in the root durable.
func (s *Store) ensurePartitionDir(pdir string) error {
	err := os.Mkdir(pdir, 0o755)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		// The root was removed after New; recreate it as New would.
		if err = os.MkdirAll(s.root, 0o755); err == nil {
			err = os.Mkdir(pdir, 0o755)
		}
	}
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return classify(err)
	}
	return classify(syncDir(s.root))
}

// writeAtomic writes dst from the file src, or from b when src is "", through a synced
// temporary file renamed into place.
func (s *Store) writeAtomic(dst, src string, b []byte) (err error) {
	var in *os.File
	if src != "" {
		if in, err = os.Open(src); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%w: reading the segment: %w", rsm.ErrPermanent, err)
			}
			return fmt.Errorf("reading the segment: %w", classify(err))
		}
		defer in.Close()
	}
	tmp, err := os.CreateTemp(s.tmp, filepath.Base(dst)+".*")
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(s.tmp, 0o755); err == nil {
			tmp, err = os.CreateTemp(s.tmp, filepath.Base(dst)+".*")
		}
	}
	if err != nil {
		return classify(err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if in != nil {
		// *os.File to *os.File: copy_file_range on Linux, no user-space buffer.
		_, err = io.Copy(tmp, in)
	} else {
		_, err = tmp.Write(b)
	}
	if err != nil {
		return classify(err)
	}
	if err = tmp.Sync(); err != nil {
		return classify(err)
	}
	if err = tmp.Close(); err != nil {
		return classify(err)
	}
	if err = os.Rename(tmp.Name(), dst); err != nil {
		if errors.Is(err, syscall.EXDEV) {
			return fmt.Errorf("%w: %s and %s are on different file systems, so files cannot be renamed into place: %w", rsm.ErrPermanent, s.tmp, s.root, err)
		}
		return classify(err)
	}
	return nil
}

// open opens the file of type t of seg, under the padded name or else the legacy one.
func (s *Store) open(seg *proto.SegmentMetadata, t rsm.FileType) (*os.File, string, error) {
	p := s.path(seg, t)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		if legacy := s.legacyPath(seg, t); legacy != p {
			if lf, lerr := os.Open(legacy); lerr == nil {
				return lf, legacy, nil
			}
		}
	}
	if err != nil {
		return nil, p, classify(err)
	}
	return f, p, nil
}

// FetchLog implements rsm.Manager. The stream reads the file opened at the call: a concurrent
// re-copy, which renames a new file into place, does not change what it returns.
func (s *Store) FetchLog(ctx context.Context, seg *proto.SegmentMetadata, start, end int64) (io.ReadCloser, error) {
	const op = "fetch log"
	end, empty, err := rsm.CheckFetch(op, seg, start, end)
	if err != nil {
		return nil, err
	}
	if empty {
		return rsm.EmptyReader(), nil
	}
	if err := ctx.Err(); err != nil {
		return nil, rsm.NewError(op, seg, "", err)
	}
	f, p, err := s.open(seg, rsm.FileLog)
	if err != nil {
		return nil, rsm.NewError(op, seg, p, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, rsm.NewError(op, seg, p, classify(err))
	}
	size := st.Size()
	if end < 0 || end > size {
		end = size
	}
	if start >= end {
		f.Close()
		return rsm.EmptyReader(), nil
	}
	return &fileSection{SectionReader: io.NewSectionReader(f, start, end-start), f: f}, nil
}

type fileSection struct {
	*io.SectionReader
	f *os.File
}

func (r *fileSection) Close() error { return r.f.Close() }

// FetchIndex implements rsm.Manager. It returns the open file.
func (s *Store) FetchIndex(ctx context.Context, seg *proto.SegmentMetadata, t rsm.IndexType) (io.ReadCloser, error) {
	op, err := rsm.CheckFetchIndex(ctx, seg, t)
	if err != nil {
		return nil, err
	}
	f, p, err := s.open(seg, t.FileType())
	if err != nil {
		return nil, rsm.NewError(op, seg, p, err)
	}
	return f, nil
}

// Delete implements rsm.Manager. It removes the files under both the padded and the legacy
// names, leaves the partition directory in place as Kafka does, and syncs it.
func (s *Store) Delete(ctx context.Context, seg *proto.SegmentMetadata) error {
	const op = "delete"
	if err := rsm.CheckCall(ctx, op, seg); err != nil {
		return err
	}
	pdir := s.partitionDir(seg.SegmentID.TopicIDPartition)
	var errs []error
	for _, t := range kafkaFileTypes {
		for _, p := range []string{s.path(seg, t), s.legacyPath(seg, t)} {
			if err := removeIfExists(p); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return rsm.NewError(op, seg, pdir, err)
	}
	if err := syncDir(pdir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return rsm.NewError(op, seg, pdir, classify(err))
	}
	return nil
}

// List implements rsm.Manager: the entries of the partition's directory, by name.
func (s *Store) List(ctx context.Context, tp proto.TopicIDPartition) iter.Seq2[rsm.Object, error] {
	return func(yield func(rsm.Object, error) bool) {
		listErr := func(object string, err error) *rsm.Error {
			return &rsm.Error{Op: "list", Segment: proto.SegmentID{TopicIDPartition: tp}, Object: object, Err: err}
		}
		if err := rsm.CheckPartition(tp); err != nil {
			yield(rsm.Object{}, listErr("", err))
			return
		}
		s.listPartition(ctx, tp, rsm.PartitionDirName(tp), listErr, yield)
	}
}

// listPartition yields the entries of one partition directory; it returns false when the
// consumer stopped or an error was yielded.
func (s *Store) listPartition(ctx context.Context, tp proto.TopicIDPartition, dirName string,
	listErr func(string, error) *rsm.Error, yield func(rsm.Object, error) bool) bool {
	pdir := filepath.Join(s.root, dirName)
	entries, err := os.ReadDir(pdir)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	if err != nil {
		yield(rsm.Object{}, listErr(pdir, classify(err)))
		return false
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			yield(rsm.Object{}, listErr(pdir, err))
			return false
		}
		o := rsm.Object{Name: rsm.RootDirName + "/" + dirName + "/" + e.Name(), Segment: proto.SegmentID{TopicIDPartition: tp}}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since ReadDir
		}
		if err != nil {
			yield(rsm.Object{}, listErr(filepath.Join(pdir, e.Name()), classify(err)))
			return false
		}
		o.Size, o.Modified = info.Size(), info.ModTime()
		start, id, t, perr := rsm.ParseSegmentFileName(e.Name())
		switch {
		case !info.Mode().IsRegular():
			o.Size = 0
			o.Problem = "not a regular file, where only segment files belong"
		case perr != nil:
			o.Problem = perr.Error()
		case t == rsm.FileIndexes:
			o.Problem = "an rsm/s3 index bundle, which Kafka's layout does not have"
		default:
			o.Segment.ID, o.StartOffset, o.Type = id, start, t
		}
		if !yield(o, nil) {
			return false
		}
	}
	return true
}

// ListAll implements rsm.Manager: every partition directory in name order, then anything else
// found in kafka-tiered-storage, then the temporary files interrupted copies left.
func (s *Store) ListAll(ctx context.Context) iter.Seq2[rsm.Object, error] {
	return func(yield func(rsm.Object, error) bool) {
		listErr := func(object string, err error) *rsm.Error {
			return &rsm.Error{Op: "list", Object: object, Err: err}
		}
		entries, err := os.ReadDir(s.root)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			yield(rsm.Object{}, listErr(s.root, classify(err)))
			return
		}
		var strays []rsm.Object
		for _, e := range entries {
			name := rsm.RootDirName + "/" + e.Name()
			tp, perr := rsm.ParsePartitionDirName(e.Name())
			if !e.IsDir() || perr != nil {
				o := rsm.Object{Name: name, Problem: "not a partition directory <topic>-<partition>-<topicId>"}
				if info, err := e.Info(); err == nil {
					o.Modified = info.ModTime()
					if info.Mode().IsRegular() {
						o.Size = info.Size()
					}
				}
				strays = append(strays, o)
				continue
			}
			lerr := func(object string, err error) *rsm.Error {
				return &rsm.Error{Op: "list", Segment: proto.SegmentID{TopicIDPartition: tp}, Object: object, Err: err}
			}
			if !s.listPartition(ctx, tp, e.Name(), lerr, yield) {
				return
			}
		}
		for _, o := range strays {
			if !yield(o, nil) {
				return
			}
		}
		tmps, err := os.ReadDir(s.tmp)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			yield(rsm.Object{}, listErr(s.tmp, classify(err)))
			return
		}
		for _, e := range tmps {
			o := rsm.Object{Name: tmpDirName + "/" + e.Name(), Problem: "temporary file of a copy that is running or was interrupted"}
			if info, err := e.Info(); err == nil {
				o.Size, o.Modified = info.Size(), info.ModTime()
			}
			if !yield(o, nil) {
				return
			}
		}
	}
}

func removeIfExists(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return classify(err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// classify marks the file-system errors no retry fixes. A missing file is ErrNotFound: the
// callers that open stored files want exactly that, and the others decide before calling.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %w", rsm.ErrNotFound, err)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w: %w", rsm.ErrPermanent, err)
	}
	return err
}
