package cache

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestLoaderMatchesApply feeds the reference model's random history (re-deliveries, records
// from the wrong metadata partition, gaps, invalid records, partition deletions) to one store
// through Apply and to another through a Loader whose runs are tiny, so that a partition's
// entries are spread over many runs: the stores must hold the same rows, the results must
// count the same, and the drops must be the same. Both stores then go on with Apply.
func TestLoaderMatchesApply(t *testing.T) {
	seeds, events := 6, 3000
	if testing.Short() || raceEnabled {
		seeds, events = 3, 1000
	}
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			a := openOn(t, vfs.NewMem())
			fs := vfs.NewMem()
			b := openOn(t, fs)
			l, err := b.NewLoader()
			if err != nil {
				t.Fatal(err)
			}
			l.runBytes = 512 << (seed % 4)
			l.chunk = 1 + int(seed%3)*50
			g := newGen(seed)
			var want LoadResult
			var wantDrops []Drop
			for n := 0; n < events; {
				entries := g.batch()
				n += len(entries)
				res, err := a.Apply(entries)
				if err != nil {
					t.Fatal(err)
				}
				want.Applied += res.Applied
				want.Duplicates += res.Duplicates
				want.Dropped += len(res.Dropped)
				wantDrops = append(wantDrops, res.Dropped...)
				if err := l.Add(entries); err != nil {
					t.Fatal(err)
				}
			}
			if len(l.runs) < 3 {
				t.Fatalf("the load wrote %d runs; the test wants several", len(l.runs))
			}
			var drops []Drop
			got, err := l.Finish(context.Background(), func(d Drop) { drops = append(drops, d) })
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("Finish: %+v, Apply: %+v", got, want)
			}
			byOffset := func(x, y Drop) int {
				return cmp.Or(cmp.Compare(x.Partition, y.Partition), cmp.Compare(x.Offset, y.Offset))
			}
			slices.SortFunc(drops, byOffset)
			slices.SortFunc(wantDrops, byOffset)
			if len(drops) != len(wantDrops) {
				t.Fatalf("%d drops, Apply %d", len(drops), len(wantDrops))
			}
			for i := range drops {
				d, w := drops[i], wantDrops[i]
				if d.Partition != w.Partition || d.Offset != w.Offset || d.UserPartition != w.UserPartition ||
					d.Segment != w.Segment || d.Reason != w.Reason || d.Detail != w.Detail || d.Err.Error() != w.Err.Error() {
					t.Fatalf("drop %d:\n got  %+v\n want %+v", i, d, w)
				}
			}
			if da, db := dump(t, a), dump(t, b); da != db {
				t.Fatalf("stores differ:\nApply:\n%s\nLoader:\n%s", da, db)
			}
			mustCheck(t, b)
			for range 100 {
				entries := g.batch()
				ra, errA := a.Apply(entries)
				rb, errB := b.Apply(entries)
				if errA != nil || errB != nil || !sameResult(rb, ra) {
					t.Fatalf("Apply after the load: %+v %v, want %+v %v", rb, errB, ra, errA)
				}
			}
			if da, db := dump(t, a), dump(t, b); da != db {
				t.Fatalf("stores differ after more Applies:\nApply:\n%s\nLoader:\n%s", da, db)
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			b = openOn(t, fs)
			if da, db := dump(t, a), dump(t, b); da != db {
				t.Fatalf("reopened store differs:\nApply:\n%s\nLoader:\n%s", da, db)
			}
			if _, err := fs.Stat(fs.PathJoin("db", loadDirName)); err == nil {
				t.Fatalf("the load's directory is still there")
			}
		})
	}
}

func TestLoaderRefusesAStoreWithPartitions(t *testing.T) {
	s, _ := openMem(t)
	newFeed(t, s, 0).applyOK(add(segID(testTP(0), 1), 0, 10, 0, 0))
	if _, err := s.NewLoader(); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("NewLoader on a store with a partition: %v, want ErrNotEmpty", err)
	}
}

// A load holds the store's writers off until it ends, and a load that ends without Finish
// leaves the store as it was.
func TestLoaderAbort(t *testing.T) {
	s, fs := openMem(t)
	if err := s.Skip(3, 5, "bad"); err != nil {
		t.Fatal(err)
	}
	before := dump(t, s)
	l, err := s.NewLoader()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.NewLoader(); !errors.Is(err, ErrLoading) {
		t.Fatalf("a second NewLoader: %v, want ErrLoading", err)
	}
	add := add(segID(testTP(0), 1), 0, 10, 0, 0)
	if err := l.Add([]Entry{{Partition: 3, Offset: 2, Record: add}, {Partition: 3, Offset: 6, Record: add}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply([]Entry{{Partition: 0, Offset: 0, Record: add}}); !errors.Is(err, ErrLoading) {
		t.Fatalf("Apply during a load: %v, want ErrLoading", err)
	}
	if err := s.Skip(1, 1, "x"); !errors.Is(err, ErrLoading) {
		t.Fatalf("Skip during a load: %v, want ErrLoading", err)
	}
	if _, err := s.Preview(0, add); !errors.Is(err, ErrLoading) {
		t.Fatalf("Preview during a load: %v, want ErrLoading", err)
	}
	if err := l.Abort(); err != nil {
		t.Fatal(err)
	}
	if after := dump(t, s); after != before {
		t.Fatalf("store changed by an aborted load:\n%s\n---\n%s", before, after)
	}
	if err := l.Add(nil); !errors.Is(err, ErrLoadEnded) {
		t.Fatalf("Add after Abort: %v, want ErrLoadEnded", err)
	}
	if _, err := fs.Stat(fs.PathJoin("db", loadDirName)); err == nil {
		t.Fatalf("the load's directory is still there")
	}
	newFeed(t, s, 0).applyOK(add)
}

// Entries below the store's offsets (a skip moved metadata partition 3 to 6) are duplicates,
// as for Apply.
func TestLoaderDuplicates(t *testing.T) {
	s, _ := openMem(t)
	if err := s.Skip(3, 5, "bad"); err != nil {
		t.Fatal(err)
	}
	l, err := s.NewLoader()
	if err != nil {
		t.Fatal(err)
	}
	add := add(segID(testTP(0), 1), 0, 10, 0, 0)
	if err := l.Add([]Entry{{Partition: 3, Offset: 2, Record: add}, {Partition: 3, Offset: 6, Record: add}}); err != nil {
		t.Fatal(err)
	}
	res, err := l.Finish(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (LoadResult{Applied: 1, Duplicates: 1}); res != want {
		t.Fatalf("Finish: %+v, want %+v", res, want)
	}
	if next, err := s.NextOffset(3); err != nil || next != 7 {
		t.Fatalf("NextOffset(3) = %d, %v; want 7", next, err)
	}
	if _, err := l.Finish(context.Background(), nil); !errors.Is(err, ErrLoadEnded) {
		t.Fatalf("a second Finish: %v, want ErrLoadEnded", err)
	}
	mustCheck(t, s)
}

// A Finish whose context ends stops, with the context's error, writes nothing, and leaves no
// goroutine behind (TestMain checks).
func TestLoaderFinishCancelled(t *testing.T) {
	s, fs := openMem(t)
	before := dump(t, s)
	l, err := s.NewLoader()
	if err != nil {
		t.Fatal(err)
	}
	l.runBytes, l.chunk = 1<<10, 16
	g := newGen(7)
	for range 200 {
		if err := l.Add(g.batch()); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Finish(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Finish with a cancelled context: %v, want context.Canceled", err)
	}
	if after := dump(t, s); after != before {
		t.Fatalf("a cancelled load wrote:\n%s", after)
	}
	if _, err := fs.Stat(fs.PathJoin("db", loadDirName)); err == nil {
		t.Fatalf("the load's directory is still there")
	}
	newFeed(t, s, 0).applyOK(add(segID(testTP(0), 1), 0, 10, 0, 0))
}
