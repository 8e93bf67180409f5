package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stratalog/strata/proto"
)

// runCLI runs one strata command line in-process and returns stdout, stderr and the exit status.
func runCLI(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

func mustEncode(t *testing.T, r proto.Record) []byte {
	t.Helper()
	b, err := proto.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	cliTopic, _ = proto.ParseUUID("Bp9TDduJRGa9Q5rlvCJOxg")
	cliSeg, _   = proto.ParseUUID("AAECAwQFBgcICQoLDA0ODw")
	cliTP       = proto.TopicIDPartition{TopicID: cliTopic, Topic: "foo", Partition: 0}
)

func TestDecodeText(t *testing.T) {
	// The 42-byte partition-delete example of docs/KAFKA_SEMANTICS.md section 2, with spaces that
	// decode ignores.
	in := "01 02 00 04 666f6f 069f530ddb894466bd439ae5bc224ec6 00000000 00 00000000 000000000000007b 00 00\n"
	out, errOut, code := runCLI(t, in, "decode", "--format", "text")
	want := "RemotePartitionDeleteMetadata{topicPartition=Bp9TDduJRGa9Q5rlvCJOxg:foo-0, state=DELETE_PARTITION_MARKED, eventTimestampMs=123, brokerId=0}\n"
	if code != 0 || out != want || errOut != "" {
		t.Fatalf("code %d\nstdout %q\nstderr %q", code, out, errOut)
	}
}

func TestDecodeJSONAndBadLines(t *testing.T) {
	seg := &proto.SegmentMetadata{SegmentID: proto.SegmentID{TopicIDPartition: cliTP, ID: cliSeg}, EndOffset: 100, LeaderEpochs: []proto.EpochEntry{{Epoch: 0, StartOffset: 0}},
		SegmentSizeInBytes: 7, State: proto.CopySegmentStarted, TxnIndexEmpty: true}
	upd := &proto.SegmentMetadataUpdate{SegmentID: seg.SegmentID, CustomMetadata: []byte{}, State: proto.CopySegmentFinished}
	lines := []string{
		hex.EncodeToString(mustEncode(t, seg)),
		"zz-not-hex",
		"",
		hex.EncodeToString(mustEncode(t, upd)),
		"010900", // unknown apiKey
	}
	out, errOut, code := runCLI(t, strings.Join(lines, "\n")+"\n", "decode")
	if code == 0 {
		t.Fatal("exit status 0 with bad lines")
	}
	outLines := strings.Split(strings.TrimSpace(out), "\n")
	if len(outLines) != 2 {
		t.Fatalf("want 2 decoded lines, got %q", out)
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(outLines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first["type"] != "RemoteLogSegmentMetadata" || first["segmentId"] != "AAECAwQFBgcICQoLDA0ODw" || first["customMetadata"] != nil || first["txnIndexEmpty"] != true {
		t.Fatalf("first = %v", first)
	}
	if !strings.Contains(outLines[1], `"customMetadata":""`) || !strings.Contains(outLines[1], `"state":"COPY_SEGMENT_FINISHED"`) {
		t.Fatalf("second = %s", outLines[1])
	}
	errLines := strings.Split(strings.TrimSpace(errOut), "\n")
	if len(errLines) != 2 || !strings.Contains(errLines[0], "line 2:") || !strings.Contains(errLines[1], "line 5:") || !strings.Contains(errLines[1], "unknown apiKey") {
		t.Fatalf("stderr = %q", errOut)
	}
}

func TestDecodeBase64(t *testing.T) {
	b := mustEncode(t, &proto.PartitionDeleteMetadata{TopicIDPartition: cliTP, State: proto.DeletePartitionStarted})
	in := base64.StdEncoding.EncodeToString(b) + "\n" + base64.RawURLEncoding.EncodeToString(b) + "\n"
	out, errOut, code := runCLI(t, in, "decode", "--input", "base64", "--format", "text")
	if code != 0 || strings.Count(out, "state=DELETE_PARTITION_STARTED") != 2 {
		t.Fatalf("code %d stdout %q stderr %q", code, out, errOut)
	}
	if _, _, code := runCLI(t, "", "decode", "--input", "octal"); code == 0 {
		t.Fatal("accepted --input octal")
	}
	if _, errOut, code := runCLI(t, "", "decode", "--format", "table"); code == 0 || !strings.Contains(errOut, "--format") {
		t.Fatalf("accepted --format table: %q", errOut)
	}
}

func TestLocate(t *testing.T) {
	for p, want := range map[string]string{"0": "2\n", "1": "2\n", "2": "2\n", "3": "4\n"} {
		out, errOut, code := runCLI(t, "", "locate", "--topic-id", "Bp9TDduJRGa9Q5rlvCJOxg", "--partition", p, "--metadata-partitions", "5")
		if code != 0 || out != want {
			t.Fatalf("partition %s: code %d out %q err %q", p, code, out, errOut)
		}
	}
	out, _, code := runCLI(t, "", "locate", "--topic-id", "069f530d-db89-4466-bd43-9ae5bc224ec6", "--partition", "3", "--metadata-partitions", "5", "--format", "json")
	if code != 0 || strings.TrimSpace(out) != `{"metadataPartition":4,"metadataPartitions":5,"partition":3,"topicId":"Bp9TDduJRGa9Q5rlvCJOxg"}` {
		t.Fatalf("json: %q", out)
	}
	for _, args := range [][]string{
		{"locate", "--partition", "1"},
		{"locate", "--topic-id", "bad", "--partition", "1"},
		{"locate", "--topic-id", "Bp9TDduJRGa9Q5rlvCJOxg", "--partition", "1", "--metadata-partitions", "0"},
		{"locate", "--topic-id", "Bp9TDduJRGa9Q5rlvCJOxg", "--partition", "-1"},
	} {
		if _, errOut, code := runCLI(t, "", args...); code == 0 || errOut == "" {
			t.Errorf("%v: code %d, stderr %q", args, code, errOut)
		}
	}
}

// kafkaBytesString prints b as org.apache.kafka.common.utils.Bytes.toString does: a byte from
// ' ' to '~' other than '\' as itself, any other as \xHH.
func kafkaBytesString(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		if c >= ' ' && c <= '~' && c != '\\' {
			s.WriteByte(c)
		} else {
			fmt.Fprintf(&s, "\\x%02X", c)
		}
	}
	return s.String()
}

func TestDecodeEscaped(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for _, b := range [][]byte{all, []byte(" lead and trail "), []byte(`\x41`), {}} {
		got, err := decodeEscaped(kafkaBytesString(b))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%q: got %q, %v", kafkaBytesString(b), got, err)
		}
	}
	for _, bad := range []string{`\`, `\x4`, `\y41`, `\xZZ`, "tab\there", "é"} {
		if _, err := decodeEscaped(bad); err == nil || !strings.Contains(err.Error(), "column") {
			t.Errorf("%q: err %v, want one naming the column", bad, err)
		}
	}
	// Spaces are bytes of the value: a record whose topic name holds one decodes only if kept.
	tp := cliTP
	tp.Topic = " spaced topic "
	b := mustEncode(t, &proto.PartitionDeleteMetadata{TopicIDPartition: tp, State: proto.DeletePartitionStarted})
	out, errOut, code := runCLI(t, kafkaBytesString(b)+"\n\n", "decode", "--input", "escaped", "--format", "text")
	if code != exitOK || !strings.Contains(out, " spaced topic ") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
