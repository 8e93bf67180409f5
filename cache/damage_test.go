package cache

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/stratalog/strata/proto"
)

// fillDir writes 20,000 segments of 200 partitions into a store in dir and closes it, leaving
// one table of a few hundred KiB.
func fillDir(t *testing.T, dir string) {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	off := int64(0)
	for p := int32(0); p < 200; p++ {
		tp := testTP(p)
		es := make([]Entry, 0, 100)
		for n := 1; n <= 100; n++ {
			id := proto.SegmentID{TopicIDPartition: tp, ID: proto.UUID{14: byte(n >> 8), 15: byte(n)}}
			es = append(es, Entry{Partition: p % 7, Offset: off, Record: add(id, int64(n)*100, int64(n)*100+99, 0, 0)})
			off++
		}
		if _, err := s.Apply(es); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func storeFiles(t *testing.T, dir, suffix string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), suffix) || strings.HasPrefix(e.Name(), suffix) {
			out = append(out, e.Name())
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %s file in %s", suffix, dir)
	}
	return out
}

func largestTable(t *testing.T, dir string) (string, int64) {
	t.Helper()
	best, size := "", int64(-1)
	for _, name := range storeFiles(t, dir, ".sst") {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > size {
			best, size = name, fi.Size()
		}
	}
	return best, size
}

// readAll runs every query that reads the whole store and returns the first error.
func readAll(s *Store) error {
	ps, err := s.Partitions()
	if err != nil {
		return err
	}
	for _, p := range ps {
		if _, err := s.Segments(p.Partition); err != nil {
			return err
		}
	}
	return s.Check()
}

// TestDamagedStoreIsReportedNeverPanics damages a closed store in each way an operator met and
// checks that opening and reading it fails with a *DamageError naming the file, without a panic
// (before, a flipped block panicked from Pebble's logger, and again on its open references).
func TestDamagedStoreIsReportedNeverPanics(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string) string // returns the file damaged
		kept   bool                                  // the damaged file is still there to keep
	}{
		{"4KiB flipped in the largest table", func(t *testing.T, dir string) string {
			name, size := largestTable(t, dir)
			path := filepath.Join(dir, name)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for i := size / 2; i < size/2+4096 && i < size; i++ {
				b[i] ^= 0x5a
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return name
		}, true},
		{"largest table truncated", func(t *testing.T, dir string) string {
			name, size := largestTable(t, dir)
			if err := os.Truncate(filepath.Join(dir, name), size/2); err != nil {
				t.Fatal(err)
			}
			return name
		}, true},
		{"MANIFEST missing", func(t *testing.T, dir string) string {
			name := storeFiles(t, dir, "MANIFEST-")[0]
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
			return name
		}, false},
		{"table missing", func(t *testing.T, dir string) string {
			name, _ := largestTable(t, dir)
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
			return name
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "store")
			fillDir(t, dir)
			file := tc.damage(t, dir)
			s, err := Open(dir)
			if err == nil {
				err = readAll(s)
				if s.Damaged() == nil {
					t.Errorf("Damaged() = nil after a read met %v", err)
				}
				if again := readAll(s); !errors.Is(again, ErrCorrupt) {
					t.Errorf("a read after the damage = %v, want the damage again", again)
				}
				if cerr := s.Close(); cerr != nil {
					t.Errorf("Close of a damaged store: %v", cerr)
				}
			}
			var de *DamageError
			if !errors.As(err, &de) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("reading the damaged store = %v, want a *DamageError matching ErrCorrupt", err)
			}
			if de.Dir != dir || !strings.Contains(de.File, file) || !strings.Contains(err.Error(), file) {
				t.Errorf("damage names dir %q file %q (%v), want %q and %q", de.Dir, de.File, err, dir, file)
			}
			// The remedy: move it aside, and a new store opens empty in its place.
			aside, err := MoveAside(dir)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(aside, file)); err != nil && tc.kept {
				t.Errorf("the damaged file is not kept in %s: %v", aside, err)
			}
			s, err = Open(dir)
			if err != nil {
				t.Fatalf("Open after MoveAside: %v", err)
			}
			defer s.Close()
			if ps, err := s.Partitions(); err != nil || len(ps) != 0 {
				t.Fatalf("new store: %d partitions, %v; want empty", len(ps), err)
			}
		})
	}
}

// TestReplaceKeepsOneDamagedCopy: Replace swaps a damaged store for an empty one in the same
// directory, under the same Store, keeping the last damaged copy only.
func TestReplaceKeepsOneDamagedCopy(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	var reported []error
	for round := 0; round < 2; round++ {
		fillDir(t, dir)
		name, size := largestTable(t, dir)
		b, _ := os.ReadFile(filepath.Join(dir, name))
		for i := size / 2; i < size/2+4096; i++ {
			b[i] ^= 0xff
		}
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
		s, err := Open(dir, WithDamageHandler(func(err error) { reported = append(reported, err) }))
		if err != nil {
			t.Fatal(err)
		}
		if err := readAll(s); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("round %d: read = %v, want ErrCorrupt", round, err)
		}
		if len(reported) != round+1 {
			t.Fatalf("round %d: the damage handler was called %d times in all, want %d", round, len(reported), round+1)
		}
		if err := s.Replace(); err != nil {
			t.Fatalf("Replace: %v", err)
		}
		if err := s.Damaged(); err != nil {
			t.Fatalf("Damaged after Replace = %v", err)
		}
		if err := readAll(s); err != nil {
			t.Fatalf("reading the replaced store: %v", err)
		}
		tp := testTP(0)
		if _, err := s.Apply([]Entry{{Partition: 0, Offset: 0, Record: add(segID(tp, 1), 0, 9, 0, 0)}}); err != nil {
			t.Fatalf("Apply to the replaced store: %v", err)
		}
		if segs, err := s.Segments(tp); err != nil || len(segs) != 1 {
			t.Fatalf("Segments after Replace and Apply = %d, %v", len(segs), err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(dir)
	}
	ents, _ := os.ReadDir(filepath.Dir(dir))
	if len(ents) != 1 || ents[0].Name() != "store.damaged" {
		t.Fatalf("left %v beside the store, want one store.damaged", ents)
	}
}

// TestFatalfMarksDamageInsteadOfPanicking: Pebble's fatal errors go through the store's logger,
// which must neither exit nor panic.
func TestFatalfMarksDamageInsteadOfPanicking(t *testing.T) {
	s, _ := openMem(t)
	d := s.dmg.Load()
	pebbleLogger{l: s.log.Sugar(), d: d}.Fatalf("L%d: %s already being compacted", 0, "000001")
	err := s.Damaged()
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "already being compacted") {
		t.Fatalf("Damaged() = %v, want the fatal error", err)
	}
	if _, err := s.Partitions(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Partitions of a store Pebble gave up on = %v, want ErrCorrupt", err)
	}
	if _, err := s.Apply([]Entry{{Partition: 0, Offset: 0, Record: add(segID(testTP(0), 1), 0, 9, 0, 0)}}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Apply to a store Pebble gave up on = %v, want ErrCorrupt", err)
	}
}

const lockHelperEnv = "STRATA_CACHE_LOCK_HELPER_DIR"

// TestLockHelper is not a test: run by TestLockedByAnotherProcess in a child process, it holds
// a store open until its stdin closes.
func TestLockHelper(t *testing.T) {
	dir := os.Getenv(lockHelperEnv)
	if dir == "" {
		t.Skip("helper process only")
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("open")
	buf := make([]byte, 1)
	os.Stdin.Read(buf)
	s.Close()
}

func TestLockedByAnotherProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelper$")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	buf := make([]byte, 4)
	done := make(chan error, 1)
	go func() { _, err := out.Read(buf); done <- err }()
	select {
	case err := <-done:
		if err != nil || string(buf) != "open" {
			t.Fatalf("helper: %q, %v", buf, err)
		}
	case <-time.After(time.Minute):
		t.Fatal("helper did not open the store within a minute")
	}
	_, err = Open(dir)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Open of a store another process holds = %v, want ErrLocked naming %s", err, dir)
	}
	if errors.Is(err, ErrCorrupt) {
		t.Fatalf("a locked store reported as damaged: %v", err)
	}
	// In the same process, the second Open says the same.
	s, err := Open(filepath.Join(t.TempDir(), "mine"), WithFS(vfs.Default))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(s.dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open in one process = %v, want ErrLocked", err)
	}
}
