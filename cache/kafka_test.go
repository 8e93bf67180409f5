package cache

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/stratalog/strata/proto"
)

// TestKafka runs the scripts in testdata/kafka, one file per area. They replay the cases of
// Kafka's RemoteLogMetadataCacheTest, RemoteLogLeaderEpochStateTest and
// RemoteLogSegmentLifecycleTest, and the cache's own rules (docs/KAFKA_SEMANTICS.md sections 1
// and 6), against the store. Rewrite the expected output with -rewrite.
//
// Each file starts from an empty store. Commands:
//
//	reset                           start again from an empty store
//	apply [batch]                   apply the records of the input, one a line, at the next
//	                                offsets of metadata partition 0; print the outcome of each,
//	                                and check the store's invariants; with batch, all in one
//	                                Apply, printing the count applied and each drop
//	segment-for tp=N                for each input line "epoch offset": the segment SegmentFor returns
//	next-txn tp=N                   for each input line "epoch offset": NextSegmentWithTxnIndex's
//	highest tp=N                    for each input line "epoch": HighestOffsetForEpoch
//	segments tp=N                   Segments, by segment number
//	segments-for-epoch tp=N epoch=E SegmentsForEpoch
//	epoch-sets tp=N epoch=E         the epoch's referenced map and unreferenced set, from the rows
//	size tp=N [epoch=E]             RemoteLogSize or RemoteLogSizeForEpoch
//	segment tp=N seg=S              Segment, in Kafka's text form
//	delete-state tp=N               PartitionDeleteState
//	partitions                      Partitions: partition, segment count, bytes
//	dropped                         Dropped: every record kept as dropped
//	reset-partition mp=M to=O       ResetPartition
//	reopen                          close the store and open it again on the same files
//	dump prefix=P                   the rows of Dump whose line starts with P
//
// Record lines (tp defaults to 0; segments are named by number):
//
//	add seg=S [tp=N] offsets=A-B epochs=E:O,E:O [state=X] [size=N] [txn] [custom=T]
//	update seg=S [tp=N] state=X [custom=T|custom=] [broker=N] [ts=N]
//	copied seg=S [tp=N] offsets=A-B epochs=...      an add, then its COPY_SEGMENT_FINISHED
//	partition-delete [tp=N] state=X
//
// States are written as Kafka names them, or as a number for one Kafka does not define.
func TestKafka(t *testing.T) {
	datadriven.Walk(t, "testdata/kafka", func(t *testing.T, path string) {
		var s *Store
		var fs vfs.FS
		var f *feed
		reset := func() {
			if s != nil {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
			s, fs = openMem(t)
			f = newFeed(t, s, 0)
		}
		reset()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			tp := testTP(0)
			if d.HasArg("tp") {
				var n int
				d.ScanArgs(t, "tp", &n)
				tp = testTP(int32(n))
			}
			epoch := func() int32 {
				var e int
				d.ScanArgs(t, "epoch", &e)
				return int32(e)
			}
			switch d.Cmd {
			case "reset":
				reset()
				return ""
			case "reopen":
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = openOn(t, fs)
				f.s = s
				return ""
			case "reset-partition":
				var mp, to int
				d.ScanArgs(t, "mp", &mp)
				d.ScanArgs(t, "to", &to)
				if err := s.ResetPartition(int32(mp), int64(to)); err != nil {
					return errText(err)
				}
				return ""
			case "dropped":
				ds, err := s.Dropped()
				if err != nil {
					return errText(err)
				}
				var b strings.Builder
				for _, dr := range ds {
					fmt.Fprintf(&b, "%d@%d %s seg=%d %s\n", dr.Partition, dr.Offset, dr.UserPartition, dr.Segment[15], dr.Reason)
				}
				return b.String()
			case "dump":
				var prefix string
				d.ScanArgs(t, "prefix", &prefix)
				var b strings.Builder
				for _, l := range strings.Split(dump(t, s), "\n") {
					if strings.HasPrefix(l, prefix+" ") {
						b.WriteString(l + "\n")
					}
				}
				return b.String()
			case "apply":
				if d.HasArg("batch") {
					return applyBatch(t, s, f, d.Input)
				}
				return applyScript(t, s, f, d.Input)
			case "segment-for", "next-txn":
				return eachLine(t, d.Input, func(args []int64) string {
					q := s.SegmentFor
					if d.Cmd == "next-txn" {
						q = s.NextSegmentWithTxnIndex
					}
					m, ok, err := q(tp, int32(args[0]), args[1])
					switch {
					case err != nil:
						return errText(err)
					case !ok:
						return "none"
					case m.State != proto.CopySegmentFinished && d.Cmd == "segment-for":
						return fmt.Sprintf("%d in %s", m.SegmentID.ID[15], m.State)
					}
					return strconv.Itoa(int(m.SegmentID.ID[15]))
				})
			case "highest":
				return eachLine(t, d.Input, func(args []int64) string {
					h, ok, err := s.HighestOffsetForEpoch(tp, int32(args[0]))
					switch {
					case err != nil:
						return errText(err)
					case !ok:
						return "none"
					}
					return strconv.FormatInt(h, 10)
				})
			case "segments":
				return segList(s.Segments(tp))
			case "segments-for-epoch":
				return segList(s.SegmentsForEpoch(tp, epoch()))
			case "epoch-sets":
				refs, unrefs := epochSets(t, s, tp, epoch())
				var b strings.Builder
				b.WriteString("referenced:")
				for _, start := range slices.Sorted(maps.Keys(refs)) {
					fmt.Fprintf(&b, " %d->%d", start, refs[start])
				}
				b.WriteString("\nunreferenced:")
				for _, n := range slices.Sorted(maps.Keys(unrefs)) {
					fmt.Fprintf(&b, " %d", n)
				}
				return b.String()
			case "size":
				var n int64
				var err error
				if d.HasArg("epoch") {
					n, err = s.RemoteLogSizeForEpoch(tp, epoch())
				} else {
					n, err = s.RemoteLogSize(tp)
				}
				if err != nil {
					return errText(err)
				}
				return strconv.FormatInt(n, 10)
			case "segment":
				var n int
				d.ScanArgs(t, "seg", &n)
				m, ok, err := s.Segment(segID(tp, byte(n)))
				switch {
				case err != nil:
					return errText(err)
				case !ok:
					return "absent"
				}
				return m.String()
			case "delete-state":
				st, ok, err := s.PartitionDeleteState(tp)
				switch {
				case err != nil:
					return errText(err)
				case !ok:
					return "none"
				}
				return st.String()
			case "partitions":
				infos, err := s.Partitions()
				if err != nil {
					return errText(err)
				}
				var b strings.Builder
				for _, in := range infos {
					fmt.Fprintf(&b, "%s: %d segments, %d bytes\n", in.Partition, in.Segments.Total(), in.Bytes)
				}
				return b.String()
			}
			t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
			return ""
		})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// applyScript applies the records of a script's input, one call per line so that each outcome
// is its own, and prints for each "applied" or "dropped <reason>". A dropped record must change
// nothing but its metadata partition's offset, and the store must pass Check after each.
func applyScript(t *testing.T, s *Store, f *feed, input string) string {
	var out strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(input), "\n") {
		recs, err := parseRecords(line)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		for _, r := range recs {
			before := dump(t, s)
			res := f.apply(r)
			switch {
			case res.Applied == 1:
				out.WriteString("applied\n")
			case len(res.Dropped) == 1:
				d := res.Dropped[0]
				if !errors.Is(d.Err, d.Reason.Err()) {
					t.Errorf("%q: the drop's error %v does not wrap %v", line, d.Err, d.Reason.Err())
				}
				if after := dump(t, s); stripOffsets(before) != stripOffsets(after) {
					t.Errorf("%q: the dropped record changed the store:\n%s\n---\n%s", line, before, after)
				}
				// The store keeps the drop, with its reason and what it was about.
				kept, ok, err := s.DroppedAt(d.Partition, d.Offset)
				if err != nil || !ok || kept.Reason != d.Reason || kept.UserPartition != d.UserPartition ||
					kept.Segment != segmentOf(r) || !errors.Is(kept.Err(), d.Reason.Err()) {
					t.Errorf("%q: DroppedAt = %+v, %t, %v; want the drop as %s", line, kept, ok, err, d.Reason)
				}
				fmt.Fprintf(&out, "dropped %s\n", d.Reason)
			default:
				t.Fatalf("%q: result %+v", line, res)
			}
			if err := s.Check(); err != nil {
				t.Fatalf("%q: Check: %v\n%s", line, err, dump(t, s))
			}
		}
	}
	return out.String()
}

// segmentOf is the segment a record is about; zero for a partition-delete record.
func segmentOf(r proto.Record) proto.UUID {
	switch r := r.(type) {
	case *proto.SegmentMetadata:
		return r.SegmentID.ID
	case *proto.SegmentMetadataUpdate:
		return r.SegmentID.ID
	}
	return proto.ZeroUUID
}

// applyBatch applies every record of the input in one Apply, as one fetch is, and prints how
// many were applied and each drop.
func applyBatch(t *testing.T, s *Store, f *feed, input string) string {
	var recs []proto.Record
	for _, line := range strings.Split(strings.TrimSpace(input), "\n") {
		rs, err := parseRecords(line)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		recs = append(recs, rs...)
	}
	res := f.apply(recs...)
	var out strings.Builder
	fmt.Fprintf(&out, "applied %d of %d\n", res.Applied, len(recs))
	for _, d := range res.Dropped {
		fmt.Fprintf(&out, "dropped offset %d: %s\n", d.Offset, d.Reason)
	}
	if err := s.Check(); err != nil {
		t.Fatalf("Check: %v\n%s", err, dump(t, s))
	}
	return out.String()
}

// parseRecords reads one record line of a script (see TestKafka).
func parseRecords(line string) ([]proto.Record, error) {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return nil, errors.New("empty line")
	}
	kv := map[string]string{}
	for _, f := range fields[1:] {
		k, v, _ := strings.Cut(f, "=")
		kv[k] = v
	}
	num := func(k string) (int64, error) { return strconv.ParseInt(kv[k], 10, 64) }
	tp := testTP(0)
	if v, ok := kv["tp"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, err
		}
		tp = testTP(int32(n))
	}
	var id proto.SegmentID
	if _, ok := kv["seg"]; ok {
		n, err := num("seg")
		if err != nil {
			return nil, err
		}
		id = segID(tp, byte(n))
	}
	segState := func() (proto.SegmentState, error) {
		if n, err := strconv.Atoi(kv["state"]); err == nil {
			return proto.SegmentState(n), nil
		}
		return proto.ParseSegmentState(kv["state"])
	}
	switch fields[0] {
	case "add", "copied":
		// The last '-' splits, so that "offsets=-1-9" is a negative start.
		i := strings.LastIndex(kv["offsets"], "-")
		if i <= 0 {
			return nil, fmt.Errorf("offsets %q: want START-END", kv["offsets"])
		}
		a, b := kv["offsets"][:i], kv["offsets"][i+1:]
		start, err := strconv.ParseInt(a, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("offsets: %w", err)
		}
		end, err := strconv.ParseInt(b, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("offsets: %w", err)
		}
		var epochs []int64
		if kv["epochs"] != "" {
			for _, e := range strings.Split(kv["epochs"], ",") {
				ep, off, _ := strings.Cut(e, ":")
				en, err1 := strconv.ParseInt(ep, 10, 64)
				on, err2 := strconv.ParseInt(off, 10, 64)
				if err := errors.Join(err1, err2); err != nil {
					return nil, fmt.Errorf("epochs: %w", err)
				}
				epochs = append(epochs, en, on)
			}
		}
		m := add(id, start, end, epochs...)
		if _, ok := kv["state"]; ok {
			st, err := segState()
			if err != nil {
				return nil, err
			}
			m.State = st
		}
		if _, ok := kv["size"]; ok {
			n, err := num("size")
			if err != nil {
				return nil, err
			}
			m.SegmentSizeInBytes = int32(n)
		}
		if _, ok := kv["txn"]; ok {
			m.TxnIndexEmpty = false
		}
		if v, ok := kv["custom"]; ok {
			m.CustomMetadata = []byte(v)
		}
		if fields[0] == "copied" {
			return []proto.Record{m, update(id, proto.CopySegmentFinished)}, nil
		}
		return []proto.Record{m}, nil
	case "update":
		st, err := segState()
		if err != nil {
			return nil, err
		}
		u := update(id, st)
		if v, ok := kv["custom"]; ok {
			u.CustomMetadata = []byte(v)
		}
		if _, ok := kv["broker"]; ok {
			n, err := num("broker")
			if err != nil {
				return nil, err
			}
			u.BrokerID = int32(n)
		}
		if _, ok := kv["ts"]; ok {
			if u.EventTimestampMs, err = num("ts"); err != nil {
				return nil, err
			}
		}
		return []proto.Record{u}, nil
	case "partition-delete":
		var st proto.PartitionDeleteState
		if n, err := strconv.Atoi(kv["state"]); err == nil {
			st = proto.PartitionDeleteState(n)
		} else if st, err = proto.ParsePartitionDeleteState("DELETE_PARTITION_" + kv["state"]); err != nil {
			return nil, err
		}
		return []proto.Record{partDelete(tp, st)}, nil
	}
	return nil, fmt.Errorf("unknown record %q", fields[0])
}

// eachLine runs q on each input line of integers and prints "line -> answer".
func eachLine(t *testing.T, input string, q func(args []int64) string) string {
	var out strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(input), "\n") {
		var args []int64
		for _, f := range strings.Fields(line) {
			n, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			args = append(args, n)
		}
		fmt.Fprintf(&out, "%s -> %s\n", line, q(args))
	}
	return out.String()
}

func segList(ms []proto.SegmentMetadata, err error) string {
	if err != nil {
		return errText(err)
	}
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = strconv.Itoa(int(m.SegmentID.ID[15]))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// errText prints an error a query returned: ErrNotFound by name, so that the scripts check the
// sentinel and not only the words; anything else as it is.
func errText(err error) string {
	if errors.Is(err, ErrNotFound) {
		return "ErrNotFound"
	}
	return "error: " + err.Error()
}

// stripOffsets removes from a dump what every record changes, applied or not: the offsets and
// the rows of dropped records.
func stripOffsets(d string) string {
	lines := strings.Split(d, "\n")
	return strings.Join(slices.DeleteFunc(lines, func(l string) bool {
		return strings.HasPrefix(l, "offset ") || strings.HasPrefix(l, "dropped ")
	}), "\n")
}

func wantSegmentFor(t *testing.T, s *Store, tp proto.TopicIDPartition, epoch int32, offset int64, want byte) {
	t.Helper()
	m, ok, err := s.SegmentFor(tp, epoch, offset)
	if err != nil {
		t.Fatalf("SegmentFor(%d, %d): %v", epoch, offset, err)
	}
	switch {
	case want == 0 && ok:
		t.Errorf("SegmentFor(%d, %d) = segment %d, want none", epoch, offset, m.SegmentID.ID[15])
	case want != 0 && !ok:
		t.Errorf("SegmentFor(%d, %d) = none, want segment %d", epoch, offset, want)
	case want != 0 && m.SegmentID.ID[15] != want:
		t.Errorf("SegmentFor(%d, %d) = segment %d, want segment %d", epoch, offset, m.SegmentID.ID[15], want)
	}
}

// wantDropped applies r, which must be dropped for reason and kept by the store as dropped.
func wantDropped(t *testing.T, f *feed, reason DropReason, r proto.Record) {
	t.Helper()
	res := f.apply(r)
	if len(res.Dropped) != 1 || res.Dropped[0].Reason != reason || !errors.Is(res.Dropped[0].Err, reason.Err()) {
		t.Fatalf("%s: result %+v, want dropped as %s", r.Key(), res, reason)
	}
	d, ok, err := f.s.DroppedAt(f.mp, f.next-1)
	if err != nil || !ok || d.Reason != reason || d.Detail != res.Dropped[0].Detail {
		t.Fatalf("%s: DroppedAt = %+v, %t, %v; want the drop", r.Key(), d, ok, err)
	}
}

// A segment whose leader-epoch map names an epoch starting past its end offset (start 100, end
// 150, epochs {3: 100, 4: 200}) is one Kafka accepts and then loops on: queried at epoch 3,
// offset 100, its nextSegmentWithTxnIndex asks for offset 151, which the segment "holds" in
// epoch 3 (up to 199), and asks again forever. The store refuses such a record, and its walk
// advances whatever the store holds.
func TestEpochPastEndOffset(t *testing.T) {
	tp := testTP(0)
	bad := add(segID(tp, 1), 100, 150, 3, 100, 4, 200)

	if err := CheckRecord(bad); !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("CheckRecord = %v, want ErrInvalidRecord", err)
	}
	s, _ := openMem(t)
	f := newFeed(t, s, 0)
	wantDropped(t, f, InvalidRecord, bad)

	// The walk on such a segment, written into the store row by row as an earlier version of
	// the store could have kept it (the same rows addSegment and copyFinished write).
	err := s.write(func() error {
		tx := s.newTxn()
		defer tx.release()
		pt, err := tx.part(prefixOf(tp))
		if err != nil {
			return err
		}
		pt.setRow(partRow{name: tp.Topic, mp: 0})
		ss, err := pt.segment(bad.SegmentID.ID)
		if err != nil {
			return err
		}
		m := tx.meta(bad)
		m.State = proto.CopySegmentFinished
		ss.m, ss.dirty, pt.dirty = m, true, true
		pt.row.counts[proto.CopySegmentFinished]++
		pt.row.bytes += int64(m.SegmentSizeInBytes)
		if err := pt.copyFinished(m); err != nil {
			return err
		}
		return tx.commit()
	})
	if err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		m, ok, err := s.NextSegmentWithTxnIndex(tp, 3, 100)
		if err != nil || ok {
			t.Errorf("NextSegmentWithTxnIndex(3, 100) = %s, %t, %v; want none (its one segment has an empty txn index)", m.SegmentID, ok, err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		// The looping query holds the store open, so Close in the cleanup would wait for it
		// forever: end the test binary instead.
		panic("NextSegmentWithTxnIndex(3, 100) did not return within 10s: the walk does not advance")
	}
}
