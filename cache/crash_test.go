package cache

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/stratalog/strata/proto"
)

// TestCrashRecovery crashes a store (Pebble's crashable in-memory filesystem, cloned as a crash
// at that moment would leave it) while it applies random records, and checks that every crash
// leaves exactly the state after some prefix of the Apply calls, that a crash right after an
// Apply loses nothing of it, and that resuming each metadata partition from its stored next
// offset converges on the dump of a store that never crashed.
func TestCrashRecovery(t *testing.T) {
	n := 150
	if testing.Short() || raceEnabled {
		n = 60
	}
	g := newGen(42)
	batches := make([][]Entry, n)
	for i := range batches {
		batches[i] = g.batch()
	}

	// The reference: the dump after each prefix of the calls, and the answers of SegmentFor
	// without its cache.
	ref := openOn(t, vfs.NewMem(), WithLookupCacheSize(0))
	prefixes := []string{dump(t, ref)}
	byDump := map[string]int{prefixes[0]: 0}
	for _, b := range batches {
		if _, err := ref.Apply(b); err != nil {
			t.Fatal(err)
		}
		d := dump(t, ref)
		prefixes = append(prefixes, d)
		byDump[d] = len(prefixes) - 1
	}
	final := prefixes[n]

	fs := vfs.NewCrashableMem()
	s := openOn(t, fs)

	// Crashes at arbitrary moments, taken by a second goroutine while the first applies, of
	// which a uniform sample of 24 is kept (reservoir sampling). The pauses only spread the
	// crash points; nothing depends on their length.
	const keep = 24
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var crashes []*vfs.MemFS
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(7, 7))
		for taken := 0; ; taken++ {
			c := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rng})
			if len(crashes) < keep {
				crashes = append(crashes, c)
			} else if j := rng.IntN(taken + 1); j < keep {
				crashes[j] = c
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(rng.IntN(500)) * time.Microsecond):
			}
		}
	}()
	// Apply returned, so its batch is synced: a crash right after it keeps all of it even if
	// nothing unsynced survives.
	synced := map[int]*vfs.MemFS{}
	for i, b := range batches {
		if _, err := s.Apply(b); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			synced[i+1] = fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
		}
	}
	close(stop)
	wg.Wait()
	for calls, c := range synced {
		if got := recoverFrom(t, c, batches, byDump, final, ref); got != calls {
			t.Fatalf("crash right after Apply %d recovered the state after %d calls", calls, got)
		}
	}
	for _, c := range crashes {
		recoverFrom(t, c, batches, byDump, final, ref)
	}
	if d := dump(t, s); d != final {
		t.Fatalf("the store that never crashed differs from the reference:\n%s\n---\n%s", d, final)
	}
}

// recoverFrom opens the store on a crashed filesystem, checks that it holds the state after
// some prefix of the calls (which it returns) and its invariants, then resumes every metadata
// partition from its stored next offset and checks that it ends where the reference did. Its
// lookups fill SegmentFor's cache before it resumes, and answer as the reference's after.
func recoverFrom(t *testing.T, fs vfs.FS, batches [][]Entry, byDump map[string]int, final string, ref *Store) int {
	t.Helper()
	s, err := Open("db", WithFS(fs))
	if err != nil {
		t.Fatalf("Open after crash: %v", err)
	}
	defer s.Close()
	d := dump(t, s)
	prefix, ok := byDump[d]
	if !ok {
		t.Fatalf("after a crash the store holds a state no prefix of the calls produced:\n%s", d)
	}
	mustCheck(t, s)
	probes := lookupProbes(batches)
	for _, pr := range probes {
		if _, _, err := s.SegmentFor(pr.tp, pr.epoch, pr.offset); err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
	}
	offsets, err := s.Offsets()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		var tail []Entry
		for _, e := range b {
			if e.Offset >= offsets[e.Partition] {
				tail = append(tail, e)
			}
		}
		if _, err := s.Apply(tail); err != nil {
			t.Fatal(err)
		}
	}
	if d := dump(t, s); d != final {
		t.Fatalf("resumed after a crash at prefix %d, the store differs from the reference:\n%s\n---\n%s", prefix, d, final)
	}
	for _, pr := range probes {
		got, gotOK, err := s.SegmentFor(pr.tp, pr.epoch, pr.offset)
		want, wantOK, werr := ref.SegmentFor(pr.tp, pr.epoch, pr.offset)
		if errors.Is(err, ErrNotFound) && errors.Is(werr, ErrNotFound) {
			continue
		}
		if err != nil || werr != nil || gotOK != wantOK || !reflect.DeepEqual(got, want) {
			t.Fatalf("resumed after a crash at prefix %d: SegmentFor(%s, %d, %d) = %v, %t, %v; the reference's %v, %t, %v",
				prefix, pr.tp, pr.epoch, pr.offset, got, gotOK, err, want, wantOK, werr)
		}
	}
	return prefix
}

type lookupProbe struct {
	tp     proto.TopicIDPartition
	epoch  int32
	offset int64
}

// lookupProbes returns, for every segment the batches add, every epoch start and end of it
// and their neighbours.
func lookupProbes(batches [][]Entry) []lookupProbe {
	var out []lookupProbe
	for _, b := range batches {
		for _, e := range b {
			m, ok := e.Record.(*proto.SegmentMetadata)
			if !ok {
				continue
			}
			for i, ep := range m.LeaderEpochs {
				end := proto.EndOffsetForEpoch(m.LeaderEpochs, i, m.EndOffset)
				for _, o := range []int64{ep.StartOffset - 1, ep.StartOffset, end, end + 1} {
					out = append(out, lookupProbe{m.SegmentID.TopicIDPartition, ep.Epoch, o})
				}
			}
		}
	}
	return out
}
