package main

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/proto"
)

// TestSkipCommand: a record that does not decode halts its metadata partition for every reader;
// `strata skip` records the skip once, and a reader with an empty cache then reads past it.
func TestSkipCommand(t *testing.T) {
	s := newScenario(t)
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	td, err := adm.ListTopics(ctx, proto.TopicName)
	if err != nil {
		t.Fatal(err)
	}
	n := int32(len(td[proto.TopicName].Partitions))
	o0 := proto.TopicIDPartition{TopicID: s.orders, Topic: "orders", Partition: 0}
	mp := proto.MetadataPartition(o0, n)
	res := cl.ProduceSync(ctx, &kgo.Record{Topic: proto.TopicName, Partition: mp, Value: []byte{0x01, 0x09, 0x00}})
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	poison := res[0].Record.Offset

	_, errOut, _ := s.run(t, "partitions")
	if !strings.Contains(errOut, "halted") {
		t.Fatalf("partitions says nothing of the halted metadata partition:\n%s", errOut)
	}
	if _, _, code := s.run(t, "skip", "--partition", strconv.Itoa(int(mp)), "--offset", strconv.FormatInt(poison, 10)); code != 2 {
		t.Fatalf("skip without a reason: exit status %d, want 2", code)
	}
	out := s.mustRun(t, 0, "skip", "--partition", strconv.Itoa(int(mp)), "--offset", strconv.FormatInt(poison, 10), "--reason", "garbage written by a test")
	if !strings.Contains(out, "recorded in __strata_skips") {
		t.Fatalf("skip printed %q", out)
	}
	s.cacheDir += "-fresh" // a reader that never saw the record halt
	_, errOut, code := s.run(t, "partitions")
	if code != 0 || strings.Contains(errOut, "incomplete") || !strings.Contains(errOut, "recorded in __strata_skips: garbage written by a test") {
		t.Fatalf("partitions after the skip: exit status %d\n%s", code, errOut)
	}
}
