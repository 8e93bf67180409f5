package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"
)

// ErrLocked is wrapped by the error Open returns when another process (or another open Store
// in this one) holds the directory. The error names the directory.
var ErrLocked = errors.New("cache: store is held by another process")

// DamageError says that the store's files are damaged: a block whose checksum does not match, a
// table shorter or longer than its manifest says, a missing MANIFEST or table, or an invariant
// Pebble found broken. It matches ErrCorrupt. Open returns one for damage found while opening;
// a query or write returns one for damage met while running, and from then on every call of
// that Store returns the same one (see Store.Damaged) until Replace.
//
// The store is derived from the metadata topic, so the remedy is to move it aside and rebuild it
// from the topic: MoveAside and Replace do that; rlmm does it by itself, with a warning.
type DamageError struct {
	Dir  string // the store's directory
	File string // the damaged file, when known (e.g. "000008.sst", "MANIFEST-000001")
	Err  error  // what Pebble reported
}

func (e *DamageError) Error() string {
	where := e.Dir
	if e.File != "" {
		where += "/" + e.File
	}
	return fmt.Sprintf("cache: store damaged at %s: %v; %s", where, e.Err, rebuildHint)
}

func (e *DamageError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *DamageError) Is(target error) bool { return target == ErrCorrupt }

// damage is the damage a store has met since Open, shared by the Store, Pebble's logger and its
// event listener. The first report wins: later ones are usually its consequences.
type damage struct {
	dir      string
	log      *zap.Logger
	onDamage func(error)
	err      atomic.Pointer[DamageError]
}

// report records damage in file (a path or name, or "") and tells the owner, once.
func (d *damage) report(file string, cause error) *DamageError {
	de := &DamageError{Dir: d.dir, File: fileName(d.dir, file, cause), Err: cause}
	if d.err.CompareAndSwap(nil, de) {
		d.log.Error("cache: store damaged; it must be rebuilt from the metadata topic", zap.String("dir", d.dir),
			zap.String("file", de.File), zap.Error(cause))
		if d.onDamage != nil {
			d.onDamage(de)
		}
		return de
	}
	return d.err.Load()
}

// check turns an error met by a store call into the store's damage when it is one.
func (d *damage) check(err error) error {
	if err == nil {
		return nil
	}
	var de *DamageError
	if errors.As(err, &de) {
		return err
	}
	if pebble.IsCorruptionError(err) {
		return d.report("", err)
	}
	return err
}

var (
	pebbleFileRe    = regexp.MustCompile(`(MANIFEST-\d+|OPTIONS-\d+|\d{6}\.(sst|log|blob))`)
	pebbleFileNumRe = regexp.MustCompile(`\b\d{6}\b`)
)

// fileName names the damaged file: the base of path when it is under dir, or the first name of
// one of Pebble's files in the cause's message.
func fileName(dir, path string, cause error) string {
	if path != "" {
		return strings.TrimPrefix(strings.TrimPrefix(path, dir), "/")
	}
	var pe *fs.PathError
	if errors.As(cause, &pe) {
		return strings.TrimPrefix(strings.TrimPrefix(pe.Path, dir), "/")
	}
	if cause == nil {
		return ""
	}
	msg := cause.Error()
	if name := pebbleFileRe.FindString(msg); name != "" {
		return name
	}
	// "L0: 000008: file 000008 (type sstable) unknown to the objstorage provider"
	if num := pebbleFileNumRe.FindString(msg); num != "" && strings.Contains(msg, "sstable") {
		return num + ".sst"
	}
	return ""
}

// eventListener reports corruption Pebble detects instead of letting it call Fatalf, which it
// does by default (and which a library must not turn into an exit or a panic).
func (d *damage) eventListener() *pebble.EventListener {
	return &pebble.EventListener{
		DataCorruption: func(info pebble.DataCorruptionInfo) { d.report(info.Path, info.Details) },
	}
}

// openError classifies an error of pebble.Open on dir: a lock another holder keeps is
// ErrLocked; a corruption, a missing file or a table of the wrong size is a *DamageError;
// anything else (permissions, a full disk) is returned as it is.
func openError(fsys vfs.FS, dir string, err error) error {
	if lockHeld(fsys, dir) {
		return fmt.Errorf("cache: %s: another strata process (or another store in this one) holds it; "+
			"give each process its own directory or wait for the other to finish (%v): %w", dir, err, ErrLocked)
	}
	msg := err.Error()
	if pebble.IsCorruptionError(err) || errors.Is(err, fs.ErrNotExist) || strings.Contains(msg, "size mismatch") {
		return &DamageError{Dir: dir, File: fileName(dir, "", err), Err: err}
	}
	return fmt.Errorf("cache: open %s: %w", dir, err)
}

// lockHeld reports whether dir's LOCK is held by someone else now, by trying to take it.
func lockHeld(fsys vfs.FS, dir string) bool {
	l, err := fsys.Lock(fsys.PathJoin(dir, "LOCK"))
	if err == nil {
		l.Close()
		return false
	}
	// Pebble refuses a second lock in the same process with a plain error of its own.
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) ||
		strings.Contains(err.Error(), "held by current process")
}

// Damaged returns the damage the store has met since it was opened (or last replaced), or nil.
// Once damaged, every call but Close and Replace returns it.
func (s *Store) Damaged() error {
	if de := s.dmg.Load().err.Load(); de != nil {
		return de
	}
	return nil
}

// MoveAside renames the store in dir to dir+".damaged", replacing an earlier one there, so
// that one copy of damaged files stays for a post-mortem and the next Open starts empty. It
// returns the new path. The store must not be open. Of the options, only WithFS matters.
func MoveAside(dir string, opts ...Option) (string, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return "", err
	}
	return moveAside(o.fs, dir)
}

func moveAside(fsys vfs.FS, dir string) (string, error) {
	aside := strings.TrimRight(dir, "/") + ".damaged"
	if err := fsys.RemoveAll(aside); err != nil {
		return "", fmt.Errorf("cache: removing the earlier copy %s: %w", aside, err)
	}
	if err := fsys.Rename(dir, aside); err != nil {
		return "", fmt.Errorf("cache: moving %s aside: %w", dir, err)
	}
	return aside, nil
}

// Replace closes the store's Pebble instance, moves its directory aside (MoveAside) and opens
// a new, empty store in its place, with the same options: what a store found damaged while
// running needs. Every row is gone, identity and skips included; the caller re-reads the topic.
// Calls in flight finish first; calls after it use the new store. It does not panic on a
// damaged instance.
func (s *Store) Replace() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.loader != nil {
		// A load in progress ends: its runs move aside with the store.
		s.loader.replaced.Store(true)
		s.loader = nil
	}
	if err := closeDB(s.db); err != nil {
		s.log.Warn("cache: closing the damaged store", zap.String("dir", s.dir), zap.Error(err))
	}
	s.db = nil
	aside, err := moveAside(s.opts.fs, s.dir)
	if err != nil {
		s.closed = true
		return err
	}
	db, d, err := openDB(s.dir, s.opts)
	if err != nil {
		s.closed = true
		return err
	}
	s.db = db
	s.dmg.Store(d)
	clear(s.parts)
	if s.lookups != nil {
		s.lookups.forgetAll()
	}
	s.gens.bump(nil)
	if err := s.checkFormat(); err != nil {
		s.closed = true
		return errors.Join(err, closeDB(db))
	}
	s.log.Warn("cache: store replaced by an empty one; the damaged one is kept", zap.String("dir", s.dir), zap.String("kept", aside))
	return nil
}

// closeDB closes a Pebble instance, turning a panic of one in a bad state into an error.
func closeDB(db *pebble.DB) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pebble: close: %v", r)
		}
	}()
	return db.Close()
}
