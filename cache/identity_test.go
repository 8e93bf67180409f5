package cache

import (
	"strings"
	"testing"

	"github.com/stratalog/strata/proto"
)

func TestIdentityResetTo(t *testing.T) {
	s, _ := openMem(t)
	if _, ok, err := s.Identity(); ok || err != nil {
		t.Fatalf("new store: identity found %v, %v", ok, err)
	}
	if empty, err := s.Empty(); !empty || err != nil {
		t.Fatalf("new store: Empty = %v, %v", empty, err)
	}
	a := Identity{ClusterID: "cluster-a", TopicID: proto.UUID{1: 7}, Partitions: 50}
	if err := s.ResetTo(a); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.Identity(); !ok || err != nil || got != a {
		t.Fatalf("Identity = %v, %v, %v; want %v", got, ok, err, a)
	}
	if empty, err := s.Empty(); !empty || err != nil {
		t.Fatalf("after ResetTo: Empty = %v, %v", empty, err)
	}
	tp := testTP(3)
	if _, err := s.Apply([]Entry{{Partition: 4, Offset: 10, Record: add(segID(tp, 1), 0, 9, 0, 0)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Skip(1, 3, "poison"); err != nil {
		t.Fatal(err)
	}
	if empty, err := s.Empty(); empty || err != nil {
		t.Fatalf("with rows: Empty = %v, %v", empty, err)
	}
	if err := s.Check(); err != nil {
		t.Fatalf("Check with an identity row: %v", err)
	}
	if d := dump(t, s); !strings.Contains(d, `identity cluster="cluster-a"`) {
		t.Fatalf("Dump does not show the identity:\n%s", d)
	}
	b := Identity{ClusterID: "cluster-b", TopicID: proto.UUID{1: 8}, Partitions: 7}
	if err := s.ResetTo(b); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.Identity(); got != b {
		t.Fatalf("Identity after the second ResetTo = %v, want %v", got, b)
	}
	if empty, err := s.Empty(); !empty || err != nil {
		t.Fatalf("after the second ResetTo: Empty = %v, %v\n%s", empty, err, dump(t, s))
	}
	if segs, err := s.Segments(tp); len(segs) != 0 || err == nil {
		t.Fatalf("Segments after ResetTo = %v, %v; want not found", segs, err)
	}
	if next, _ := s.NextOffset(4); next != 0 {
		t.Fatalf("NextOffset after ResetTo = %d, want 0", next)
	}
	if sk, _ := s.Skipped(); len(sk) != 0 {
		t.Fatalf("Skipped after ResetTo = %v", sk)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
