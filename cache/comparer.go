package cache

import (
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// comparer orders keys bytewise, as Pebble's default does, and splits each referenced row's key
// into a prefix, everything up to the epoch, and a suffix, the inverted start offset (see the
// key layout in keys.go). Pebble builds its bloom filters on prefixes and SeekPrefixGE stops at
// the end of one, which is what lets SegmentFor skip every table that holds nothing of an
// epoch. Every other key is a prefix of its whole self.
//
// Pebble requires that comparing keys bytewise agree with comparing their prefixes first and
// their suffixes after. It does here because no prefix is a proper prefix of another key's
// prefix when that key has a suffix: every key that starts with a referenced row's 26-byte
// prefix is a referenced row of the same epoch. Separator and Successor keep that true of the
// shortened keys Pebble puts in its index blocks (see splitSafe).
//
// Pebble records the comparer's name in the store and refuses to open a store written under
// another one; Open turns that into ErrFormat first (checkComparer).
var comparer = func() *pebble.Comparer {
	c := *pebble.DefaultComparer
	c.Name = comparerName
	c.Split = splitKey
	c.Separator = func(dst, a, b []byte) []byte {
		n := len(dst)
		if dst = pebble.DefaultComparer.Separator(dst, a, b); splitSafe(dst[n:]) {
			return dst
		}
		return append(dst[:n], a...)
	}
	c.Successor = func(dst, a []byte) []byte {
		n := len(dst)
		if dst = pebble.DefaultComparer.Successor(dst, a); splitSafe(dst[n:]) {
			return dst
		}
		return append(dst[:n], a...)
	}
	// Pebble asks for the smallest prefix above a prefix only for range keys and NextPrefix,
	// which the store does not use; it is still made right. Above an epoch's prefix come its
	// rows, up to the one whose inverted start offset is all ones, so the next prefix is that
	// key with a zero byte after it. Every other prefix is a whole key, followed by itself and
	// a zero byte, as under Pebble's default comparer.
	c.ImmediateSuccessor = func(dst, a []byte) []byte {
		dst = append(dst, a...)
		if len(a) == refPrefixLen && a[0] == tagPartition && a[tpPrefixLen] == kindRef {
			dst = append(dst, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
		}
		return append(dst, 0)
	}
	return &c
}()

const comparerName = "strata.cache.v2"

// rebuildHint ends the error of a store this version cannot read.
const rebuildHint = "the store is derived from the metadata topic: remove the directory and start again to rebuild it"

// splitKey is the comparer's Split.
func splitKey(k []byte) int {
	if len(k) == refKeyLen && k[0] == tagPartition && k[tpPrefixLen] == kindRef {
		return refPrefixLen
	}
	return len(k)
}

// splitSafe reports whether k, a key Pebble made up to separate two keys in an index block,
// keeps prefixes ordered like keys. Only a referenced row's own key may start with an epoch's
// prefix and go on: anything else that does is, by Split, a whole-key prefix that sorts after
// the epoch's prefix, while as a key it sorts among (or after) the epoch's rows.
func splitSafe(k []byte) bool {
	if len(k) <= refPrefixLen || len(k) == refKeyLen {
		return true
	}
	return k[0] != tagPartition || k[tpPrefixLen] != kindRef
}

// checkComparer returns an error wrapping ErrFormat if the Pebble store in dir was written
// under other options than po can read (another comparer, as a store of an earlier key layout
// was). Pebble would refuse to open it with a message about comparers; this one says what to
// do. A directory without a store passes.
func checkComparer(fs vfs.FS, dir string, po *pebble.Options) error {
	desc, err := pebble.Peek(dir, fs)
	if err != nil || !desc.Exists || desc.OptionsFilename == "" {
		return nil // no store yet, or nothing readable: Open reports what is wrong
	}
	f, err := fs.Open(desc.OptionsFilename)
	if err != nil {
		return nil
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil
	}
	want := &pebble.Options{Comparer: po.Comparer, Merger: pebble.DefaultMerger, FS: fs}
	if err := want.CheckCompatibility(dir, string(data)); err != nil {
		return fmt.Errorf("cache: %s: written under other Pebble options than this version reads (%w); %s: %w",
			dir, err, rebuildHint, ErrFormat)
	}
	return nil
}
