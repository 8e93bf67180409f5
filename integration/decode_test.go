//go:build integration

package integration

import (
	"bytes"
	"os/exec"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/proto"
)

// TestDecodeHelpPipeline runs the pipeline `strata decode --help` shows for Kafka's console
// consumer, as written there, on the harness's broker: the consumer reads __remote_log_metadata
// from the beginning and its stdout goes into `strata decode`. Every record of the metadata
// partition it reads, among them records Strata published whose values hold bytes the
// consumer's printing escapes (a backslash, a space, a newline, bytes above 0x7e), decodes to
// what the topic holds.
//
// The test adds to the example only what bounds the consumer: one partition, a number of
// records, a timeout.
func TestDecodeHelpPipeline(t *testing.T) {
	requireTool(t, "java")
	requireEnv(t, envKafkaLibs)
	help := runStrata(t, "", "decode", "--help")
	m := regexp.MustCompile(`(?m)^\s*kafka-console-consumer\.sh (.*) \| strata (decode.*)$`).FindStringSubmatch(help.Stdout)
	if m == nil {
		t.Fatalf("no console consumer example in strata decode --help:\n%s", help.Stdout)
	}
	var consumerArgs []string
	for f := strings.Fields(m[1]); len(f) > 0; f = f[1:] {
		if f[0] == "--bootstrap-server" { // the harness's broker instead of the example's
			f = f[1:]
			continue
		}
		consumerArgs = append(consumerArgs, f[0])
	}
	decodeArgs := strings.Fields(m[2])

	ctx := testContext(t, 2*time.Minute)
	mgr := newManager(t, t.TempDir())
	topic := uniqueTopic(t)
	a := newPartition(t, topic, 0)
	mp := proto.MetadataPartition(a, kafkaMetadataPartitions)
	b := newPartitionOn(t, mp, `strata \x41 ü `+topic, 3)
	assignReady(t, mgr, a, b)

	s1 := newSegment(a, 0, 99, 4096, proto.EpochEntry{Epoch: 0, StartOffset: 0})
	s1.CustomMetadata = []byte("back\\slash space\nnewline\x00\xff\x7f~")
	s2 := newSegment(b, 0, 9, 92, proto.EpochEntry{Epoch: 5, StartOffset: 0}, proto.EpochEntry{Epoch: 92, StartOffset: 4})
	u1 := updateOf(s1, proto.CopySegmentFinished)
	u1.CustomMetadata = []byte{'\\', 'x', 'z', 'z'} // looks like an escape, is not one
	published := []proto.Record{s1, s2, u1, updateOf(s2, proto.CopySegmentFinished),
		&proto.PartitionDeleteMetadata{TopicIDPartition: b, BrokerID: 1, EventTimestampMs: time.Now().UnixMilli(), State: proto.DeletePartitionMarked}}
	for _, r := range published {
		var err error
		switch r := r.(type) {
		case *proto.SegmentMetadata:
			err = mgr.AddSegment(ctx, r)
		case *proto.SegmentMetadataUpdate:
			err = mgr.UpdateSegment(ctx, r)
		case *proto.PartitionDeleteMetadata:
			err = mgr.PutPartitionDelete(ctx, r)
		}
		if err != nil {
			t.Fatalf("publish %s: %v", r, err)
		}
	}

	// What the partition holds from its first offset, Kafka's own manager's records among
	// Strata's, read with a plain consumer: the consumer in the pipeline prints the same.
	offs, err := kafkaAdmin(t).ListStartOffsets(ctx, proto.TopicName)
	if err == nil {
		err = offs.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	start, _ := offs.Lookup(proto.TopicName, mp)
	records := readMetadata(t, mp, start.Offset, endOffset(t, mp))
	var ours []proto.Record
	for _, r := range records {
		if tp, ok := proto.UserPartition(r.Decoded); ok && (tp == a || tp == b) {
			ours = append(ours, r.Decoded)
		}
	}
	if !reflect.DeepEqual(ours, published) {
		t.Fatalf("%s-%d holds %d records of the test's partitions, not the %d published", proto.TopicName, mp, len(ours), len(published))
	}

	consumer := consoleConsumer(t, ctx, append(consumerArgs,
		"--partition", strconv.Itoa(int(mp)),
		"--max-messages", strconv.Itoa(len(records)),
		"--timeout-ms", "60000")...)
	decode := exec.CommandContext(ctx, strataBinary(t), decodeArgs...)
	var consumerErr, decodeOut, decodeErr bytes.Buffer
	consumer.Stderr = &consumerErr
	decode.Stdout, decode.Stderr = &decodeOut, &decodeErr
	if decode.Stdin, err = consumer.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	if err := consumer.Start(); err != nil {
		t.Fatalf("start Kafka's console consumer: %v", err)
	}
	if err := decode.Start(); err != nil {
		consumer.Process.Kill()
		consumer.Wait()
		t.Fatalf("start strata decode: %v", err)
	}
	// The consumer exits after its records, closing the pipe; decode then ends at EOF.
	errConsumer := consumer.Wait()
	errDecode := decode.Wait()
	if errConsumer != nil {
		t.Fatalf("Kafka's console consumer: %v\nstderr:\n%s", errConsumer, consumerErr.String())
	}
	if errDecode != nil || decodeErr.Len() > 0 {
		t.Fatalf("strata %s: %v\nstderr:\n%s", strings.Join(decodeArgs, " "), errDecode, decodeErr.String())
	}

	lines := strings.Split(strings.TrimSuffix(decodeOut.String(), "\n"), "\n")
	if len(lines) != len(records) {
		t.Fatalf("the pipeline printed %d lines for the %d records of %s-%d:\n%s", len(lines), len(records), proto.TopicName, mp, decodeOut.String())
	}
	for i, r := range records {
		want, err := proto.MarshalRecordJSON(r.Decoded)
		if err != nil {
			t.Fatal(err)
		}
		if lines[i] != string(want) {
			t.Errorf("offset %d: the pipeline printed\n  %s\nthe topic holds\n  %s", r.Offset, lines[i], want)
		}
	}
}
