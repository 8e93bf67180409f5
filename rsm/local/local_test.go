package local_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rsm"
	"github.com/stratalog/strata/rsm/internal/rsmtest"
	"github.com/stratalog/strata/rsm/local"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newStore(t *testing.T) (*local.Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

func TestConformance(t *testing.T) {
	rsmtest.Run(t, rsmtest.Harness{Open: func(t *testing.T) rsm.Manager {
		s, _ := newStore(t)
		return s
	}})
}

func mustUUID(t *testing.T, s string) proto.UUID {
	t.Helper()
	u, err := proto.ParseUUID(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// tree returns every file under dir, relative to it, with '/' separators.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// The names are those of the example in the Javadoc of Kafka's LocalTieredStorage
// ("topic-0-LWgrMmVrT0a__7a4SasuPA / 00000000000000000011-bCqX9U--S-6U8XUM9II25Q.log"), with the
// file types of RemoteLogSegmentFileset.RemoteLogSegmentFileType.
func TestLayoutMatchesKafka(t *testing.T) {
	s, dir := newStore(t)
	seg := rsmtest.Write(t, t.TempDir(), rsmtest.Spec{StartOffset: 11, LogSize: 1000, Txn: true, Seed: 1})
	seg.Meta.SegmentID = proto.SegmentID{
		TopicIDPartition: proto.TopicIDPartition{TopicID: mustUUID(t, "LWgrMmVrT0a__7a4SasuPA"), Topic: "topic", Partition: 0},
		ID:               mustUUID(t, "bCqX9U--S-6U8XUM9II25Q"),
	}
	rsmtest.Copy(t, s, seg)
	const p = "kafka-tiered-storage/topic-0-LWgrMmVrT0a__7a4SasuPA/00000000000000000011-bCqX9U--S-6U8XUM9II25Q"
	want := []string{
		p + ".index", p + ".leader_epoch_checkpoint", p + ".log", p + ".snapshot", p + ".timeindex", p + ".txnindex",
	}
	if got := tree(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files after Copy:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if s.Root() != filepath.Join(dir, "kafka-tiered-storage") {
		t.Fatalf("Root() = %q", s.Root())
	}
	// The bytes are the source files' bytes, unframed, so Kafka reads them as its own.
	for ft, src := range map[string]string{
		".log": seg.Data.LogPath, ".index": seg.Data.OffsetIndexPath, ".timeindex": seg.Data.TimeIndexPath,
		".txnindex": seg.Data.TransactionIndexPath, ".snapshot": seg.Data.ProducerSnapshotPath,
	} {
		got, err := os.ReadFile(filepath.Join(dir, p+ft))
		if err != nil {
			t.Fatal(err)
		}
		wantBytes, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, wantBytes) {
			t.Errorf("%s differs from its source %s", p+ft, src)
		}
	}
	got, err := os.ReadFile(filepath.Join(dir, p+".leader_epoch_checkpoint"))
	if err != nil || !bytes.Equal(got, seg.Data.LeaderEpochCheckpoint) {
		t.Errorf("leader_epoch_checkpoint = %q, %v; want %q", got, err, seg.Data.LeaderEpochCheckpoint)
	}

	if err := s.Delete(context.Background(), seg.Meta); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, dir); len(got) != 0 {
		t.Fatalf("files after Delete: %q", got)
	}
	// Kafka deletes segment files but keeps the partition directory.
	if _, err := os.Stat(filepath.Join(dir, "kafka-tiered-storage/topic-0-LWgrMmVrT0a__7a4SasuPA")); err != nil {
		t.Fatalf("partition directory after Delete: %v", err)
	}
}

// A tree as a broker writes it, including a segment named by a broker that did not yet pad the
// start offset, reads back through the store and lists as attributed segments.
func TestReadsKafkaWrittenTree(t *testing.T) {
	s, dir := newStore(t)
	tp := proto.TopicIDPartition{TopicID: mustUUID(t, "DRagLm_PS9Wl8fz1X43zVg"), Topic: "my-topic.v2", Partition: 3}
	pdir := filepath.Join(dir, "kafka-tiered-storage", "my-topic.v2-3-DRagLm_PS9Wl8fz1X43zVg")
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		t.Fatal(err)
	}
	padded := &proto.SegmentMetadata{SegmentID: proto.SegmentID{TopicIDPartition: tp, ID: mustUUID(t, "jvj3vhliTGeU90sIosmp_g")}, StartOffset: 11}
	legacy := &proto.SegmentMetadata{SegmentID: proto.SegmentID{TopicIDPartition: tp, ID: mustUUID(t, "o8CQPT86QQmbFmi3xRmiHA")}, StartOffset: 42}
	files := map[string]string{
		"00000000000000000011-jvj3vhliTGeU90sIosmp_g.log":                     "padded log",
		"00000000000000000011-jvj3vhliTGeU90sIosmp_g.index":                   "padded index",
		"00000000000000000011-jvj3vhliTGeU90sIosmp_g.timeindex":               "padded timeindex",
		"00000000000000000011-jvj3vhliTGeU90sIosmp_g.snapshot":                "padded snapshot",
		"00000000000000000011-jvj3vhliTGeU90sIosmp_g.leader_epoch_checkpoint": "0\n1\n0 11\n",
		"42-o8CQPT86QQmbFmi3xRmiHA.log":                                       "legacy log bytes",
		"42-o8CQPT86QQmbFmi3xRmiHA.index":                                     "legacy index",
		"42-o8CQPT86QQmbFmi3xRmiHA.txnindex":                                  "legacy txn",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(pdir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	rc, err := s.FetchLog(ctx, padded, 7, rsm.EndOfLog)
	if got := string(rsmtest.ReadAll(t, rc, err)); got != "log" {
		t.Errorf("padded log [7:] = %q", got)
	}
	rc, err = s.FetchLog(ctx, legacy, 0, 6)
	if got := string(rsmtest.ReadAll(t, rc, err)); got != "legacy" {
		t.Errorf("legacy log [0:6] = %q", got)
	}
	rc, err = s.FetchIndex(ctx, legacy, rsm.IndexTransaction)
	if got := string(rsmtest.ReadAll(t, rc, err)); got != "legacy txn" {
		t.Errorf("legacy txn index = %q", got)
	}
	if _, err := s.FetchIndex(ctx, padded, rsm.IndexTransaction); !errors.Is(err, rsm.ErrNotFound) {
		t.Errorf("missing txn index: error %v, want ErrNotFound", err)
	}

	objs := rsmtest.Collect(t, s.List(ctx, tp))
	if len(objs) != len(files) {
		t.Fatalf("List yields %d objects, want %d: %+v", len(objs), len(files), objs)
	}
	for _, o := range objs {
		if o.Problem != "" || o.Segment.TopicIDPartition != tp {
			t.Errorf("List: %+v", o)
		}
		base := o.Name[strings.LastIndexByte(o.Name, '/')+1:]
		switch o.Segment.ID {
		case padded.SegmentID.ID:
			if o.StartOffset != 11 {
				t.Errorf("%s: start offset %d", o.Name, o.StartOffset)
			}
		case legacy.SegmentID.ID:
			if o.StartOffset != 42 {
				t.Errorf("%s: start offset %d", o.Name, o.StartOffset)
			}
		default:
			t.Errorf("%s attributed to %v", o.Name, o.Segment.ID)
		}
		if o.Size != int64(len(files[base])) {
			t.Errorf("%s: size %d, want %d", o.Name, o.Size, len(files[base]))
		}
	}

	// Deleting removes the legacy names too.
	if err := s.Delete(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	for _, o := range rsmtest.Collect(t, s.List(ctx, tp)) {
		if o.Segment.ID == legacy.SegmentID.ID {
			t.Errorf("after Delete, %s remains", o.Name)
		}
	}
}

// A reader of the old copy keeps reading the old bytes while a new copy replaces the files:
// files are renamed into place, never rewritten where they are.
func TestRecopyIsAtomicForReaders(t *testing.T) {
	s, _ := newStore(t)
	dir := t.TempDir()
	tp := rsmtest.Partition("atomic", 0)
	old := rsmtest.Write(t, dir, rsmtest.Spec{Partition: tp, StartOffset: 0, LogSize: 256 << 10, Seed: 1})
	repl := rsmtest.Write(t, dir, rsmtest.Spec{Partition: tp, StartOffset: 0, LogSize: 256 << 10, Seed: 2})
	repl.Meta = old.Meta
	rsmtest.Copy(t, s, old)

	ctx := context.Background()
	rc, err := s.FetchLog(ctx, old.Meta, 0, rsm.EndOfLog)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 1000)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatal(err)
	}
	rsmtest.Copy(t, s, repl)
	rest, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := append(head, rest...); !bytes.Equal(got, old.Log(t)) {
		t.Fatal("a stream opened before a re-copy returned bytes of the new copy")
	}
	rsmtest.CheckStored(t, s, repl)
}

// What an interrupted copy leaves (a temporary file) is invisible in Kafka's tree and reported
// by ListAll; a copy that fails cleanly leaves nothing.
func TestInterruptedCopy(t *testing.T) {
	s, dir := newStore(t)
	seg := rsmtest.Write(t, t.TempDir(), rsmtest.Spec{Partition: rsmtest.Partition("crash", 0), StartOffset: 0, LogSize: 4096, Seed: 3})

	bad := seg.Data
	bad.ProducerSnapshotPath = filepath.Join(t.TempDir(), "missing.snapshot")
	if _, err := s.Copy(context.Background(), seg.Meta, bad); !errors.Is(err, rsm.ErrPermanent) || !strings.Contains(err.Error(), "missing.snapshot") {
		t.Fatalf("Copy with a missing snapshot: %v", err)
	}
	if got := tree(t, dir); len(got) != 0 {
		t.Fatalf("a failed Copy left %q", got)
	}

	// A process killed between creating its temporary file and renaming it leaves this.
	leftover := filepath.Join(dir, ".strata-tmp", rsm.SegmentFileName(0, seg.Meta.SegmentID.ID, rsm.FileLog)+".123456")
	if err := os.WriteFile(leftover, []byte("half a log"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.FetchLog(ctx, seg.Meta, 0, rsm.EndOfLog); !errors.Is(err, rsm.ErrNotFound) {
		t.Fatalf("FetchLog with only a leftover temporary file: %v, want ErrNotFound", err)
	}
	objs := rsmtest.Collect(t, s.ListAll(ctx))
	if len(objs) != 1 || objs[0].Name != ".strata-tmp/"+filepath.Base(leftover) || objs[0].Problem == "" || objs[0].Size != 10 {
		t.Fatalf("ListAll = %+v, want the leftover temporary file with a problem", objs)
	}
	rsmtest.Copy(t, s, seg)
	rsmtest.CheckStored(t, s, seg)
}

// Everything in the tree is listed; what is not a segment's file says why.
func TestListReportsStrays(t *testing.T) {
	s, dir := newStore(t)
	ctx := context.Background()
	tp := rsmtest.Partition("strays", 1)
	seg := rsmtest.Write(t, t.TempDir(), rsmtest.Spec{Partition: tp, StartOffset: 5, LogSize: 100, Seed: 4})
	rsmtest.Copy(t, s, seg)
	root := filepath.Join(dir, "kafka-tiered-storage")
	pdir := filepath.Join(root, rsm.PartitionDirName(tp))
	strays := map[string]bool{
		"kafka-tiered-storage/" + rsm.PartitionDirName(tp) + "/notes.txt":                                                         true,
		"kafka-tiered-storage/" + rsm.PartitionDirName(tp) + "/" + rsm.SegmentFileName(5, seg.Meta.SegmentID.ID, rsm.FileIndexes): true,
		"kafka-tiered-storage/" + rsm.PartitionDirName(tp) + "/subdir":                                                            true,
		"kafka-tiered-storage/not-a-partition":                                                                                    true,
		"kafka-tiered-storage/stray.log":                                                                                          true,
	}
	for _, p := range []string{filepath.Join(pdir, "notes.txt"), filepath.Join(pdir, rsm.SegmentFileName(5, seg.Meta.SegmentID.ID, rsm.FileIndexes)), filepath.Join(root, "stray.log")} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{filepath.Join(pdir, "subdir"), filepath.Join(root, "not-a-partition")} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	attributed := 0
	for _, o := range rsmtest.Collect(t, s.ListAll(ctx)) {
		if strays[o.Name] {
			if o.Problem == "" {
				t.Errorf("%s listed without a problem", o.Name)
			}
			delete(strays, o.Name)
			continue
		}
		if o.Problem != "" || o.Segment.ID != seg.Meta.SegmentID.ID {
			t.Errorf("unexpected %+v", o)
		}
		attributed++
	}
	if len(strays) != 0 {
		t.Errorf("not listed: %v", strays)
	}
	if attributed != 5 {
		t.Errorf("%d attributed objects, want the 5 files of the segment", attributed)
	}
	rsmtest.CheckStored(t, s, seg)
}

func TestNewErrors(t *testing.T) {
	if _, err := local.New(""); !errors.Is(err, rsm.ErrPermanent) {
		t.Errorf("New(\"\"): %v, want ErrPermanent", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := local.New(file); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("New on a regular file: %v, want an error naming it", err)
	}
}
