//go:build integration

package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/proto"
)

// remoteLogMetadataFormatter is the console consumer's formatter for __remote_log_metadata,
// from kafka-storage's main jar.
const remoteLogMetadataFormatter = "org.apache.kafka.server.log.remote.metadata.storage.serialization." +
	"RemoteLogMetadataSerde$RemoteLogMetadataFormatter"

// kafkaFormatterLines runs Kafka's own console consumer with RemoteLogMetadataFormatter on
// partition p of __remote_log_metadata from its first offset, and returns the n lines it prints
// for the first n records: "partition: P, offset: O, value: <record's toString>". Fails the test
// if the consumer fails or prints fewer lines.
func kafkaFormatterLines(t testing.TB, p int32, n int) []string {
	t.Helper()
	return kafkaFormatterLinesAt(t, proto.TopicName, p, -1, n)
}

// kafkaFormatterLinesAt is kafkaFormatterLines on any topic, from offset (the first offset
// when negative).
func kafkaFormatterLinesAt(t testing.TB, topic string, p int32, offset int64, n int) []string {
	t.Helper()
	if n == 0 {
		return nil
	}
	from := "earliest"
	if offset >= 0 {
		from = strconv.FormatInt(offset, 10)
	}
	cmd := consoleConsumer(t, testContext(t, 2*time.Minute),
		"--topic", topic,
		"--partition", strconv.Itoa(int(p)),
		"--offset", from,
		"--max-messages", strconv.Itoa(n),
		"--timeout-ms", "60000",
		"--formatter", remoteLogMetadataFormatter,
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("Kafka's console consumer: %v\nstderr:\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("Kafka's console consumer printed %d lines, want %d\nstdout:\n%s\nstderr:\n%s",
			len(lines), n, stdout.String(), stderr.String())
	}
	return lines
}

// consoleConsumer returns Kafka's console consumer, run from the harness's jars on the
// harness's broker with args after --bootstrap-server, killed when ctx ends. Its log goes to
// stderr, so stdout holds only records.
func consoleConsumer(t testing.TB, ctx context.Context, args ...string) *exec.Cmd {
	t.Helper()
	java := requireTool(t, "java")
	libs := requireEnv(t, envKafkaLibs)
	brokers := requireEnv(t, envKafkaBrokers)

	// Kafka's tools log through log4j2; send it to stderr so stdout holds only records.
	log4j := filepath.Join(t.TempDir(), "log4j2.properties")
	if err := os.WriteFile(log4j, []byte(strings.Join([]string{
		"appender.err.type = Console",
		"appender.err.name = STDERR",
		"appender.err.target = SYSTEM_ERR",
		"appender.err.layout.type = PatternLayout",
		"appender.err.layout.pattern = %p %m (%c)%n",
		"rootLogger.level = WARN",
		"rootLogger.appenderRef.err.ref = STDERR",
	}, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return exec.CommandContext(ctx, java, append([]string{
		"-Xmx256m", "-XX:TieredStopAtLevel=1", // a short-lived JVM: start fast, stay small
		// Topic names need not be ASCII; without a locale Java would print them as '?'.
		"-Dfile.encoding=UTF-8", "-Dstdout.encoding=UTF-8", "-Dsun.stdout.encoding=UTF-8",
		"-Dlog4j2.configurationFile=" + log4j,
		"-cp", filepath.Join(libs, "*"),
		"org.apache.kafka.tools.consumer.ConsoleConsumer",
		"--bootstrap-server", brokers,
	}, args...)...)
}
