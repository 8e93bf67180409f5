package proto

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestUUIDForms(t *testing.T) {
	u := mustUUID("Bp9TDduJRGa9Q5rlvCJOxg")
	if got := u.String(); got != "Bp9TDduJRGa9Q5rlvCJOxg" {
		t.Fatalf("String = %s", got)
	}
	if v, err := ParseUUID("069f530d-db89-4466-bd43-9ae5bc224ec6"); err != nil || v != u {
		t.Fatalf("ParseUUID(hex) = %v, %v", v, err)
	}
	if v, err := ParseUUID("069f530ddb894466bd439ae5bc224ec6"); err != nil || v != u {
		t.Fatalf("ParseUUID(bare hex) = %v, %v", v, err)
	}
	for _, bad := range []string{"", "short", "Bp9TDduJRGa9Q5rlvCJOx=", "Bp9TDduJRGa9Q5rlvCJOx/", "zz9f530d-db89-4466-bd43-9ae5bc224ec6"} {
		if _, err := ParseUUID(bad); err == nil {
			t.Errorf("ParseUUID(%q) succeeded", bad)
		}
	}
	var back UUID
	if err := back.UnmarshalText([]byte(u.String())); err != nil || back != u {
		t.Fatalf("UnmarshalText = %v, %v", back, err)
	}
}

func TestNewUUIDAvoidsReservedAndDash(t *testing.T) {
	seen := map[UUID]bool{}
	for i := 0; i < 2000; i++ {
		u := NewUUID()
		if u == ZeroUUID || u == metadataTopicID || strings.HasPrefix(u.String(), "-") || seen[u] {
			t.Fatalf("NewUUID gave %s", u)
		}
		seen[u] = true
	}
}

func TestTopicIDPartitionText(t *testing.T) {
	tp := TopicIDPartition{TopicID: topicFoo, Topic: "a-b:c", Partition: 12}
	s := tp.String()
	if s != "Bp9TDduJRGa9Q5rlvCJOxg:a-b:c-12" {
		t.Fatalf("String = %s", s)
	}
	back, err := ParseTopicIDPartition(s)
	if err != nil || back != tp {
		t.Fatalf("Parse = %+v, %v", back, err)
	}
	for _, bad := range []string{"foo-0", "Bp9TDduJRGa9Q5rlvCJOxg:foo", "Bp9TDduJRGa9Q5rlvCJOxg:foo-x", "nope:foo-0"} {
		if _, err := ParseTopicIDPartition(bad); err == nil {
			t.Errorf("ParseTopicIDPartition(%q) succeeded", bad)
		}
	}
	id := SegmentID{tp, segA}
	if got := id.String(); got != "RemoteLogSegmentId{topicIdPartition=Bp9TDduJRGa9Q5rlvCJOxg:a-b:c-12, id=AAECAwQFBgcICQoLDA0ODw}" {
		t.Fatalf("SegmentID.String = %s", got)
	}
}

func TestPartitionerKafkaVectors(t *testing.T) {
	f, err := os.Open("testdata/partitioner.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fs := strings.Fields(line)
		p, _ := strconv.Atoi(fs[1])
		num, _ := strconv.Atoi(fs[2])
		want, _ := strconv.Atoi(fs[3])
		tp := TopicIDPartition{TopicID: mustUUID(fs[0]), Topic: "ignored by the partitioner", Partition: int32(p)}
		if got := MetadataPartition(tp, int32(num)); got != int32(want) {
			t.Errorf("%s: got %d", line, got)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no vectors read")
	}
}

func TestPartitionerIgnoresTopicNameAndStaysInRange(t *testing.T) {
	for i := 0; i < 1000; i++ {
		id := NewUUID()
		a := MetadataPartition(TopicIDPartition{id, "x", int32(i)}, 50)
		b := MetadataPartition(TopicIDPartition{id, "y", int32(i)}, 50)
		if a != b || a < 0 || a >= 50 {
			t.Fatalf("partition %d: %d vs %d", i, a, b)
		}
	}
}

func TestSegmentTransitions(t *testing.T) {
	S, F, DS, DF := CopySegmentStarted, CopySegmentFinished, DeleteSegmentStarted, DeleteSegmentFinished
	valid := map[[2]SegmentState]bool{{S, S}: true, {S, F}: true, {S, DS}: true, {F, F}: true, {F, DS}: true, {DS, DS}: true, {DS, DF}: true, {DF, DF}: true}
	all := []SegmentState{S, F, DS, DF}
	for _, from := range all {
		for _, to := range all {
			if got := ValidSegmentTransition(from, true, to); got != valid[[2]SegmentState{from, to}] {
				t.Errorf("%s -> %s: %v", from, to, got)
			}
		}
		if got := ValidSegmentTransition(0, false, from); got != (from == S) {
			t.Errorf("none -> %s: %v", from, got)
		}
	}
	if ValidSegmentTransition(S, true, 4) || ValidSegmentTransition(9, true, S) {
		t.Error("invalid state ids accepted")
	}
	M, St, Fi := DeletePartitionMarked, DeletePartitionStarted, DeletePartitionFinished
	pvalid := map[[2]PartitionDeleteState]bool{{M, M}: true, {M, St}: true, {St, St}: true, {St, Fi}: true, {Fi, Fi}: true}
	for _, from := range []PartitionDeleteState{M, St, Fi} {
		for _, to := range []PartitionDeleteState{M, St, Fi} {
			if got := ValidPartitionDeleteTransition(from, true, to); got != pvalid[[2]PartitionDeleteState{from, to}] {
				t.Errorf("%s -> %s: %v", from, to, got)
			}
		}
		if got := ValidPartitionDeleteTransition(0, false, from); got != (from == M) {
			t.Errorf("none -> %s: %v", from, got)
		}
	}
}

func TestStateNames(t *testing.T) {
	for _, s := range []SegmentState{0, 1, 2, 3} {
		if back, err := ParseSegmentState(s.String()); err != nil || back != s {
			t.Errorf("%d: %v %v", s, back, err)
		}
	}
	for _, s := range []PartitionDeleteState{0, 1, 2} {
		if back, err := ParsePartitionDeleteState(s.String()); err != nil || back != s {
			t.Errorf("%d: %v %v", s, back, err)
		}
	}
	if CopySegmentFinished.String() != "COPY_SEGMENT_FINISHED" || DeletePartitionStarted.String() != "DELETE_PARTITION_STARTED" {
		t.Error("names differ from Kafka's")
	}
	if _, err := ParseSegmentState("COPY"); err == nil {
		t.Error("parsed a bad name")
	}
	if SegmentState(7).String() != "SegmentState(7)" {
		t.Error(SegmentState(7).String())
	}
}
