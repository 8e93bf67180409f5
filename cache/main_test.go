package cache

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/goleak"

	"github.com/stratalog/strata/proto"
)

// Every store a test opens is closed by the test, and Close returns only when Pebble's
// goroutines are gone; goleak holds both to it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// openMem opens a store on a fresh in-memory filesystem and closes it when the test ends.
func openMem(t testing.TB) (*Store, vfs.FS) {
	t.Helper()
	fs := vfs.NewMem()
	return openOn(t, fs), fs
}

func openOn(t testing.TB, fs vfs.FS, opts ...Option) *Store {
	t.Helper()
	s, err := Open("db", append([]Option{WithFS(fs)}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func dump(t testing.TB, s *Store) string {
	t.Helper()
	var b bytes.Buffer
	if err := s.Dump(&b); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	return b.String()
}

func mustCheck(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Check(); err != nil {
		t.Fatalf("Check: %v\n%s", err, dump(t, s))
	}
}

// feed applies records to one metadata partition at consecutive offsets.
type feed struct {
	t    testing.TB
	s    *Store
	mp   int32
	next int64
}

func newFeed(t testing.TB, s *Store, mp int32) *feed { return &feed{t: t, s: s, mp: mp} }

func (f *feed) apply(records ...proto.Record) Result {
	f.t.Helper()
	entries := make([]Entry, len(records))
	for i, r := range records {
		entries[i] = Entry{Partition: f.mp, Offset: f.next, Record: r}
		f.next++
	}
	res, err := f.s.Apply(entries)
	if err != nil {
		f.t.Fatalf("Apply: %v", err)
	}
	return res
}

// applyOK applies records and fails the test unless every one of them was applied.
func (f *feed) applyOK(records ...proto.Record) {
	f.t.Helper()
	res := f.apply(records...)
	if res.Applied != len(records) {
		f.t.Fatalf("applied %d of %d records; dropped %+v", res.Applied, len(records), res.Dropped)
	}
}

// applyDropped applies one record and returns why it was dropped, failing the test if it was
// applied.
func (f *feed) applyDropped(r proto.Record) Drop {
	f.t.Helper()
	res := f.apply(r)
	if len(res.Dropped) != 1 {
		f.t.Fatalf("%s applied, want it dropped", r)
	}
	return res.Dropped[0]
}

var testTopicID = proto.UUID{0x06, 0x9f, 0x53, 0x0d, 0xdb, 0x89, 0x44, 0x66, 0xbd, 0x43, 0x9a, 0xe5, 0xbc, 0x22, 0x4e, 0xc6}

func testTP(partition int32) proto.TopicIDPartition {
	return proto.TopicIDPartition{TopicID: testTopicID, Topic: "foo", Partition: partition}
}

// segID returns a segment id whose UUID is n, so that tests can name segments by number.
func segID(tp proto.TopicIDPartition, n byte) proto.SegmentID {
	return proto.SegmentID{TopicIDPartition: tp, ID: proto.UUID{15: n}}
}

// add builds an add record; epochs are pairs epoch, start offset.
func add(id proto.SegmentID, start, end int64, epochs ...int64) *proto.SegmentMetadata {
	m := &proto.SegmentMetadata{
		SegmentID:          id,
		StartOffset:        start,
		EndOffset:          end,
		BrokerID:           0,
		MaxTimestampMs:     -1,
		EventTimestampMs:   100,
		SegmentSizeInBytes: 1024,
		State:              proto.CopySegmentStarted,
		TxnIndexEmpty:      true,
	}
	for i := 0; i+1 < len(epochs); i += 2 {
		m.LeaderEpochs = append(m.LeaderEpochs, proto.EpochEntry{Epoch: int32(epochs[i]), StartOffset: epochs[i+1]})
	}
	return m
}

func update(id proto.SegmentID, state proto.SegmentState) *proto.SegmentMetadataUpdate {
	return &proto.SegmentMetadataUpdate{SegmentID: id, BrokerID: 1, EventTimestampMs: 200, State: state}
}

func partDelete(tp proto.TopicIDPartition, state proto.PartitionDeleteState) *proto.PartitionDeleteMetadata {
	return &proto.PartitionDeleteMetadata{TopicIDPartition: tp, BrokerID: 1, EventTimestampMs: 300, State: state}
}

// copied adds a segment and finishes its copy.
func copied(id proto.SegmentID, start, end int64, epochs ...int64) []proto.Record {
	return []proto.Record{add(id, start, end, epochs...), update(id, proto.CopySegmentFinished)}
}

// epochSets reads the referenced map and the unreferenced set of one epoch straight from the
// rows, so that tests can assert Kafka's RemoteLogLeaderEpochState exactly.
func epochSets(t testing.TB, s *Store, tp proto.TopicIDPartition, epoch int32) (map[int64]byte, map[byte]bool) {
	t.Helper()
	p := prefixOf(tp)
	refs, unrefs := map[int64]byte{}, map[byte]bool{}
	scan := func(lo []byte, fn func(k, v []byte)) {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: successor(lo)})
		if err != nil {
			t.Fatal(err)
		}
		for it.First(); it.Valid(); it.Next() {
			fn(it.Key(), it.Value())
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
	}
	scan(p.refEpoch(epoch), func(k, v []byte) {
		pk, _ := parseKey(k)
		id, err := refID(v)
		if err != nil {
			t.Fatal(err)
		}
		refs[pk.offset] = id[15]
	})
	scan(p.unrefEpoch(epoch), func(k, _ []byte) {
		pk, _ := parseKey(k)
		unrefs[pk.id[15]] = true
	})
	return refs, unrefs
}
