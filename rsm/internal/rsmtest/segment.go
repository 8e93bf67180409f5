// Package rsmtest holds what the tests of rsm's implementations share: segments written to disk
// with known contents, the conformance suite every rsm.Manager must pass, and the segment size
// the benchmarks use. It is for tests only.
package rsmtest

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rsm"
)

// keepLogLimit is the largest log a Segment keeps in memory; larger ones are only checksummed,
// so that a 1 GiB benchmark segment does not cost 1 GiB of test memory.
const keepLogLimit = 32 << 20

// Spec describes a segment to generate.
type Spec struct {
	Partition   proto.TopicIDPartition
	StartOffset int64
	LogSize     int64
	Txn         bool   // write a transaction index
	Seed        uint64 // contents are a function of Seed; segments with different seeds differ
}

// Segment is a generated segment: its metadata, its files on disk and their contents.
type Segment struct {
	Meta    *proto.SegmentMetadata
	Data    rsm.SegmentData
	LogSize int64
	LogCRC  uint32 // CRC-32C of the log
	log     []byte // nil when LogSize > keepLogLimit
	indexes map[rsm.IndexType][]byte
}

// Log returns the log's bytes. REQUIRES: LogSize <= 32 MiB.
func (s *Segment) Log(tb testing.TB) []byte {
	tb.Helper()
	if s.log == nil && s.LogSize > 0 {
		tb.Fatalf("segment log of %d bytes is not kept in memory", s.LogSize)
	}
	return s.log
}

// Index returns the contents of an index and whether the segment has it.
func (s *Segment) Index(t rsm.IndexType) ([]byte, bool) {
	b, ok := s.indexes[t]
	return b, ok
}

// Partition returns a partition with a fixed topic id, so that test failures name the same
// directories run after run.
func Partition(topic string, partition int32) proto.TopicIDPartition {
	var id proto.UUID
	copy(id[:], fmt.Sprintf("%-16.16s", "id:"+topic))
	return proto.TopicIDPartition{TopicID: id, Topic: topic, Partition: partition}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Write generates the segment described by spec in a new directory under dir, with a fresh
// segment id, and returns it.
func Write(tb testing.TB, dir string, spec Spec) *Segment {
	tb.Helper()
	rng := rand.New(rand.NewPCG(spec.Seed, uint64(spec.StartOffset)))
	segDir, err := os.MkdirTemp(dir, "segment-")
	if err != nil {
		tb.Fatal(err)
	}
	base := filepath.Join(segDir, fmt.Sprintf("%020d", spec.StartOffset))
	s := &Segment{
		Meta: &proto.SegmentMetadata{
			SegmentID:          proto.SegmentID{TopicIDPartition: spec.Partition, ID: proto.NewUUID()},
			StartOffset:        spec.StartOffset,
			EndOffset:          spec.StartOffset + 99,
			LeaderEpochs:       []proto.EpochEntry{{Epoch: 0, StartOffset: spec.StartOffset}},
			SegmentSizeInBytes: int32(min(spec.LogSize, 1<<31-1)),
			State:              proto.CopySegmentStarted,
			TxnIndexEmpty:      !spec.Txn,
		},
		LogSize: spec.LogSize,
		indexes: map[rsm.IndexType][]byte{},
	}

	// The log is streamed to disk so that its size is not bounded by memory.
	s.Data.LogPath = base + ".log"
	f, err := os.Create(s.Data.LogPath)
	if err != nil {
		tb.Fatal(err)
	}
	var kept bytes.Buffer
	h := crc32.New(castagnoli)
	w := io.MultiWriter(f, h)
	if spec.LogSize <= keepLogLimit {
		w = io.MultiWriter(f, h, &kept)
	}
	chunk := make([]byte, 1<<20)
	for left := spec.LogSize; left > 0; {
		n := min(left, int64(len(chunk)))
		fillRandom(rng, chunk[:n])
		if _, err := w.Write(chunk[:n]); err != nil {
			tb.Fatal(err)
		}
		left -= n
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	s.LogCRC = h.Sum32()
	if spec.LogSize <= keepLogLimit {
		s.log = kept.Bytes()
	}

	// Index sizes are multiples of Kafka's entry sizes (8, 12, 34 bytes) with a varying count, so
	// that no two indexes of a segment have the same length and a mix-up shows.
	writeFile := func(path string, b []byte) string {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			tb.Fatal(err)
		}
		return path
	}
	s.indexes[rsm.IndexOffset] = randomBytes(rng, 8*(10+rng.IntN(100)))
	s.Data.OffsetIndexPath = writeFile(base+".index", s.indexes[rsm.IndexOffset])
	s.indexes[rsm.IndexTimestamp] = randomBytes(rng, 12*(120+rng.IntN(100)))
	s.Data.TimeIndexPath = writeFile(base+".timeindex", s.indexes[rsm.IndexTimestamp])
	if spec.Txn {
		s.indexes[rsm.IndexTransaction] = randomBytes(rng, 34*(1+rng.IntN(20)))
		s.Data.TransactionIndexPath = writeFile(base+".txnindex", s.indexes[rsm.IndexTransaction])
	}
	s.indexes[rsm.IndexProducerSnapshot] = randomBytes(rng, 500+rng.IntN(100))
	s.Data.ProducerSnapshotPath = writeFile(base+".snapshot", s.indexes[rsm.IndexProducerSnapshot])
	epochs := fmt.Sprintf("0\n1\n%d %d\n", rng.IntN(50), spec.StartOffset)
	s.indexes[rsm.IndexLeaderEpoch] = []byte(epochs)
	s.Data.LeaderEpochCheckpoint = []byte(epochs)
	return s
}

func fillRandom(rng *rand.Rand, b []byte) {
	for i := 0; i+8 <= len(b); i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := len(b) &^ 7; i < len(b); i++ {
		b[i] = byte(rng.Uint32())
	}
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	fillRandom(rng, b)
	return b
}

// SegmentSize returns the log size benchmarks use: the environment variable
// STRATA_BENCH_SEGMENT_SIZE (bytes, or with a KiB, MiB or GiB suffix) or def.
func SegmentSize(tb testing.TB, def int64) int64 {
	tb.Helper()
	v := os.Getenv("STRATA_BENCH_SEGMENT_SIZE")
	if v == "" {
		return def
	}
	n, err := ParseSize(v)
	if err != nil {
		tb.Fatalf("STRATA_BENCH_SEGMENT_SIZE: %v", err)
	}
	return n
}

// ParseSize parses "1048576", "64MiB", "1GiB", "512KiB".
func ParseSize(s string) (int64, error) {
	mult := int64(1)
	num := strings.TrimSpace(s)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q is not a non-negative number of bytes with an optional KiB, MiB or GiB suffix", s)
	}
	return n * mult, nil
}
