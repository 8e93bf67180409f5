package cache

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"
)

// DefaultBlockCacheSize is the block cache of a store opened without WithBlockCacheSize.
const DefaultBlockCacheSize = 8 << 20

// DefaultMemTableSize is the size of each of Pebble's memtables in a store opened without
// WithMemTableSize: 16 MiB. Writing steadily, a store holds two (one filling, the last flushed
// one kept by Pebble for reuse), so the memtables are over a third of a cold load's peak
// resident set (docs/MEMORY.md). Smaller memtables cost CPU: each fetch rewrites the rows of
// the partitions it touches, and a smaller memtable flushes more of those versions to disk
// for compactions to drop. Measured: with 12 MiB a cold load of 1M events took about 8% more
// CPU for 5-9 MiB less peak memory, and one of 4M events about a quarter more; with 8 MiB
// the 1M load took about 25% more.
const DefaultMemTableSize = 16 << 20

// Option configures Open.
type Option interface{ apply(*options) }

type options struct {
	blockCacheSize  int64
	memTableSize    int64
	lookupCacheSize int64
	fs              vfs.FS
	log             *zap.Logger
	onDamage        func(error)
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// WithBlockCacheSize sets the size in bytes of Pebble's block cache, which holds recently read
// data and index blocks. Default DefaultBlockCacheSize (8 MiB). With Pebble's memtables (up to
// up to four, see WithMemTableSize, accounted separately) it bounds the store's memory, whatever the number of
// segments. A query whose blocks are not cached reads them from the filesystem (usually the
// OS page cache) and decompresses them; raising the cache helps a broker that reads many
// partitions' metadata at random. Must be positive.
func WithBlockCacheSize(bytes int64) Option {
	return optionFunc(func(o *options) { o.blockCacheSize = bytes })
}

// WithMemTableSize sets the size in bytes of each of Pebble's memtables, which hold the latest
// writes in memory until they are flushed to a table on disk. Default DefaultMemTableSize
// (16 MiB, where the trade-off against CPU is measured). Pebble allocates them outside the Go
// heap; a memtable is resident as far as it has been filled, and Pebble keeps the last flushed
// one for reuse, so a store holds two while writing and at most four (three, then writes wait,
// and the one kept). Must be at least 1 MiB and below 4 GiB.
func WithMemTableSize(bytes int64) Option {
	return optionFunc(func(o *options) { o.memTableSize = bytes })
}

// WithLookupCacheSize sets the memory budget in bytes of SegmentFor's cache, which keeps runs of
// the referenced rows that lookups read (see lookupCache), so that a lookup a run covers costs
// a map lookup and a decode instead of a Pebble seek. Only lookups fill it, never Apply.
// Default DefaultLookupCacheSize (256 MiB: the rows of about 7 million segments; it grows
// only as lookups read history, up to the budget); zero turns it off. Whatever the history, it holds at most the budget: the rows in memory mapped outside
// Go's heap (where the OS has mmap), so the garbage collector does not double it, and their
// index on the heap. What it holds of a partition is forgotten by every write to that
// partition, so it changes no answer. Must not be negative.
func WithLookupCacheSize(bytes int64) Option {
	return optionFunc(func(o *options) { o.lookupCacheSize = bytes })
}

// WithFS sets the filesystem the store lives on. Default vfs.Default, the operating system's.
// Tests pass vfs.NewMem or vfs.NewCrashableMem.
func WithFS(fs vfs.FS) Option { return optionFunc(func(o *options) { o.fs = fs }) }

// WithLogger sets the logger of the store and of the Pebble instance under it. Default
// zap.NewNop(); nil means zap.NewNop() too, as in every package of Strata. Dropped records are logged at debug level (Apply returns them; the caller
// decides what is worth a warning); opening, skips and resets at info level.
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(o *options) {
		if l == nil {
			l = zap.NewNop()
		}
		o.log = l
	})
}

// WithDamageHandler sets a function called once, from whatever goroutine found it, when the
// store meets damage while running (see DamageError): a read that meets a bad block, a
// compaction that does, an invariant Pebble finds broken. It must not block or call the store:
// the owner schedules a Replace. Default none; the damage is also returned by the calls.
func WithDamageHandler(fn func(err error)) Option {
	return optionFunc(func(o *options) { o.onDamage = fn })
}

func buildOptions(opts []Option) (options, error) {
	o := options{blockCacheSize: DefaultBlockCacheSize, memTableSize: DefaultMemTableSize, lookupCacheSize: DefaultLookupCacheSize, fs: vfs.Default, log: zap.NewNop()}
	for _, opt := range opts {
		if opt != nil {
			opt.apply(&o)
		}
	}
	if o.blockCacheSize <= 0 {
		return o, fmt.Errorf("cache: block cache size %d: must be positive", o.blockCacheSize)
	}
	if o.memTableSize < 1<<20 || o.memTableSize >= 4<<30 {
		return o, fmt.Errorf("cache: memtable size %d: must be at least 1 MiB and below 4 GiB", o.memTableSize)
	}
	if o.lookupCacheSize < 0 {
		return o, fmt.Errorf("cache: lookup cache size %d: must not be negative", o.lookupCacheSize)
	}
	if o.fs == nil {
		return o, fmt.Errorf("cache: nil filesystem")
	}
	return o, nil
}

// pebbleLogger sends Pebble's own messages to zap. Pebble calls Fatalf when it finds an
// invariant broken and cannot go on. A library must not exit the process, and a panic there
// takes a broker down for a cache it can rebuild (and Pebble, unwinding, panics again on its
// open references), so Fatalf records the store as damaged and returns: from then on every call
// of the store fails with the DamageError, and its owner replaces it.
type pebbleLogger struct {
	l *zap.SugaredLogger
	d *damage
}

func (p pebbleLogger) Infof(format string, args ...any)  { p.l.Debugf(format, args...) }
func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Errorf(format, args...) }
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.d.report("", fmt.Errorf("pebble: "+format, args...))
}
