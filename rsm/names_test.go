package rsm_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rsm"
)

func uuid(t testing.TB, s string) proto.UUID {
	t.Helper()
	u, err := proto.ParseUUID(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Names from the Javadoc of Kafka's LocalTieredStorage and RemoteLogSegmentFileset.
func TestNamesMatchKafka(t *testing.T) {
	tp := proto.TopicIDPartition{TopicID: uuid(t, "LWgrMmVrT0a__7a4SasuPA"), Topic: "topic", Partition: 0}
	if got := rsm.PartitionDirName(tp); got != "topic-0-LWgrMmVrT0a__7a4SasuPA" {
		t.Errorf("PartitionDirName = %q", got)
	}
	id := uuid(t, "bCqX9U--S-6U8XUM9II25Q")
	for ft, want := range map[rsm.FileType]string{
		rsm.FileLog:                   "00000000000000000011-bCqX9U--S-6U8XUM9II25Q.log",
		rsm.FileOffsetIndex:           "00000000000000000011-bCqX9U--S-6U8XUM9II25Q.index",
		rsm.FileTimeIndex:             "00000000000000000011-bCqX9U--S-6U8XUM9II25Q.timeindex",
		rsm.FileTransactionIndex:      "00000000000000000011-bCqX9U--S-6U8XUM9II25Q.txnindex",
		rsm.FileProducerSnapshot:      "00000000000000000011-bCqX9U--S-6U8XUM9II25Q.snapshot",
		rsm.FileLeaderEpochCheckpoint: "00000000000000000011-bCqX9U--S-6U8XUM9II25Q.leader_epoch_checkpoint",
	} {
		if got := rsm.SegmentFileName(11, id, ft); got != want {
			t.Errorf("SegmentFileName(%v) = %q, want %q", ft, got, want)
		}
		start, gotID, gotType, err := rsm.ParseSegmentFileName(want)
		if err != nil || start != 11 || gotID != id || gotType != ft {
			t.Errorf("ParseSegmentFileName(%q) = %d, %v, %v, %v", want, start, gotID, gotType, err)
		}
	}
	if got := rsm.LegacySegmentFileName(11, id, rsm.FileLog); got != "11-bCqX9U--S-6U8XUM9II25Q.log" {
		t.Errorf("LegacySegmentFileName = %q", got)
	}
	if got := rsm.SegmentFileName(1<<63-1, id, rsm.FileLog); got != "09223372036854775807-bCqX9U--S-6U8XUM9II25Q.log" {
		t.Errorf("SegmentFileName(max int64) = %q", got)
	}
}

func TestParsePartitionDirName(t *testing.T) {
	id := "5fEBmixCR5-dMntYSLIr1g"
	for _, tc := range []struct {
		name      string
		topic     string
		partition int32
		ok        bool
	}{
		{"topic-3-" + id, "topic", 3, true},
		{"my-topic-with-dashes-12-" + id, "my-topic-with-dashes", 12, true},
		{"a.b_c-0-" + id, "a.b_c", 0, true},
		{"t-2147483647-" + id, "t", 2147483647, true},
		{"t-2147483648-" + id, "", 0, false}, // beyond int32
		{"t--1-" + id, "t-", 1, true},        // topic "t-", as Kafka's greedy pattern reads it
		{"t-+1-" + id, "", 0, false},
		{"t-03-" + id, "", 0, false},
		{"-3-" + id, "", 0, false},
		{"..-3-" + id, "", 0, false},
		{"t/x-3-" + id, "", 0, false},
		{"t-x-" + id, "", 0, false},
		{"t-3-" + id[:21], "", 0, false},
		{"t-3_" + id, "", 0, false},
		{"t-3-5fEBmixCR5-dMntYSLIr1h", "", 0, false}, // non-canonical base64 (stray low bits)
		{"", "", 0, false},
	} {
		tp, err := rsm.ParsePartitionDirName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ParsePartitionDirName(%q): error %v, want ok=%v", tc.name, err, tc.ok)
			continue
		}
		if !tc.ok {
			continue
		}
		if tp.Topic != tc.topic || tp.Partition != tc.partition || tp.TopicID.String() != id {
			t.Errorf("ParsePartitionDirName(%q) = %+v", tc.name, tp)
		}
		if back := rsm.PartitionDirName(tp); back != tc.name {
			t.Errorf("round trip of %q gives %q", tc.name, back)
		}
	}
}

func TestParseSegmentFileNameRejects(t *testing.T) {
	id := "bCqX9U--S-6U8XUM9II25Q"
	for _, name := range []string{
		"",
		"-" + id + ".log",
		"11" + id + ".log",
		"11-" + id,
		"11-" + id + ".",
		"11-" + id + ".LOG",
		"11-" + id + ".log.tmp",
		"11-" + id + ".deleted",
		"11-" + id[:21] + ".log",
		"99999999999999999999-" + id + ".log", // beyond int64
		"1a-" + id + ".log",
		"11-bCqX9U--S-6U8XUM9II25R.log", // non-canonical
	} {
		if _, _, _, err := rsm.ParseSegmentFileName(name); err == nil {
			t.Errorf("ParseSegmentFileName(%q) accepted", name)
		}
	}
}

func TestCheckSegment(t *testing.T) {
	good := proto.SegmentMetadata{
		SegmentID: proto.SegmentID{
			TopicIDPartition: proto.TopicIDPartition{TopicID: proto.NewUUID(), Topic: "ok", Partition: 1},
			ID:               proto.NewUUID(),
		},
	}
	if err := rsm.CheckSegment(&good); err != nil {
		t.Fatalf("CheckSegment(valid) = %v", err)
	}
	long := strings.Repeat("x", 250)
	for name, mut := range map[string]func(*proto.SegmentMetadata){
		"long topic":  func(m *proto.SegmentMetadata) { m.SegmentID.Topic = long },
		"space topic": func(m *proto.SegmentMetadata) { m.SegmentID.Topic = "a b" },
		"dot topic":   func(m *proto.SegmentMetadata) { m.SegmentID.Topic = "." },
		"nul topic":   func(m *proto.SegmentMetadata) { m.SegmentID.Topic = "a\x00" },
	} {
		md := good
		mut(&md)
		if err := rsm.CheckSegment(&md); !errors.Is(err, rsm.ErrPermanent) {
			t.Errorf("CheckSegment(%s) = %v, want ErrPermanent", name, err)
		}
	}
	md := good
	md.SegmentID.Topic = strings.Repeat("x", 249)
	if err := rsm.CheckSegment(&md); err != nil {
		t.Errorf("a 249-character topic is legal in Kafka: %v", err)
	}
}

func TestErrorMessage(t *testing.T) {
	seg := &proto.SegmentMetadata{
		SegmentID: proto.SegmentID{
			TopicIDPartition: proto.TopicIDPartition{TopicID: uuid(t, "LWgrMmVrT0a__7a4SasuPA"), Topic: "topic", Partition: 2},
			ID:               uuid(t, "bCqX9U--S-6U8XUM9II25Q"),
		},
		StartOffset: 11,
	}
	err := rsm.NewError("fetch log", seg, "s3://b/k", rsm.ErrNotFound)
	want := "rsm: fetch log segment bCqX9U--S-6U8XUM9II25Q of LWgrMmVrT0a__7a4SasuPA:topic-2 at offset 11: s3://b/k: not found"
	if err.Error() != want {
		t.Errorf("Error() = %q\nwant      %q", err.Error(), want)
	}
	if !errors.Is(err, rsm.ErrNotFound) || errors.Is(err, rsm.ErrPermanent) {
		t.Errorf("errors.Is does not see through *Error")
	}
}

func FuzzParseNames(f *testing.F) {
	f.Add("00000000000000000011-bCqX9U--S-6U8XUM9II25Q.log")
	f.Add("topic-0-LWgrMmVrT0a__7a4SasuPA")
	f.Add("11-bCqX9U--S-6U8XUM9II25Q.leader_epoch_checkpoint")
	f.Fuzz(func(t *testing.T, name string) {
		if start, id, ft, err := rsm.ParseSegmentFileName(name); err == nil {
			// Kafka's pattern accepts any number of digits, so names are not unique per
			// segment file, but the canonical name of what parses must parse to the same.
			s2, id2, ft2, err := rsm.ParseSegmentFileName(rsm.SegmentFileName(start, id, ft))
			if err != nil || s2 != start || id2 != id || ft2 != ft || !strings.HasSuffix(name, id.String()+ft.Suffix()) {
				t.Fatalf("%q parses to %d %v %v, whose canonical name parses to %d %v %v %v", name, start, id, ft, s2, id2, ft2, err)
			}
		}
		if tp, err := rsm.ParsePartitionDirName(name); err == nil {
			if back := rsm.PartitionDirName(tp); back != name {
				t.Fatalf("%q parses to %+v, which prints as %q", name, tp, back)
			}
		}
	})
}
