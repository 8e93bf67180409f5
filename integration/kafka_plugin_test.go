//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	rlmmv1 "github.com/stratalog/strata/api/rlmm/v1"
	"github.com/stratalog/strata/proto"
)

// envPluginJar names bin/strata-kafka.jar, the Kafka plugin `make kafka-plugin` builds; the
// Makefile's integration target sets it.
const envPluginJar = "STRATA_KAFKA_PLUGIN_JAR"

// pluginClass is the plugin's RemoteLogMetadataManager.
const pluginClass = "io.github.stratalog.strata.kafka.StrataRemoteLogMetadataManager"

// pluginBroker is an Apache Kafka broker of the test's own (KRaft, broker and controller in one
// JVM) whose remote log metadata manager is Strata's plugin, loaded from its jar through
// remote.log.metadata.manager.class.path exactly as an operator configures it, and whose
// remote storage manager is LocalTieredStorage. The plugin starts `strata serve` itself.
type pluginBroker struct {
	t         *testing.T
	version   string
	libs      string
	dir       string
	logDir    string
	tieredDir string
	props     string
	port      int
	brokers   []string
	logPath   string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
}

// kafkaLibs returns the folder of Kafka version's jars that the harness installed.
func kafkaLibs(t *testing.T, version string) string {
	t.Helper()
	if version == os.Getenv("STRATA_KAFKA_VERSION") || version == "4.3.1" && os.Getenv("STRATA_KAFKA_VERSION") == "" {
		return requireEnv(t, envKafkaLibs)
	}
	return requireEnv(t, "STRATA_KAFKA_LIBS_"+strings.ReplaceAll(version, ".", "_"))
}

// freePorts returns n distinct loopback ports the kernel had free.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// newPluginBroker writes the broker's configuration and formats its storage; start runs it.
func newPluginBroker(t *testing.T, version string) *pluginBroker {
	t.Helper()
	// Not in docker-compose.yml's tests container, under CI too: it holds neither the plugin's
	// jar, a JDK, nor Kafka 4.4.0's jars. make integration runs these tests natively.
	if os.Getenv(envHarness) == "compose" {
		t.Skip("the Kafka plugin's tests start brokers of their own from the native harness's jars; make integration runs them")
	}
	requireTool(t, "java")
	jar := requireEnv(t, envPluginJar)
	if _, err := os.Stat(jar); err != nil {
		missing(t, "the Kafka plugin's jar: "+err.Error()+"; run make kafka-plugin")
	}
	libs := kafkaLibs(t, version)
	strata := strataBinary(t)
	// Inside the harness's state folder, which stop.sh removes even if this process is killed.
	dir, err := os.MkdirTemp(os.Getenv(envState), "plugin-broker-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("broker folder kept: %s", dir)
		}
	})
	ports := freePorts(t, 2)
	b := &pluginBroker{
		t: t, version: version, libs: libs, dir: dir,
		logDir:    filepath.Join(dir, "data"),
		tieredDir: filepath.Join(dir, "tiered"),
		props:     filepath.Join(dir, "server.properties"),
		port:      ports[0],
		brokers:   []string{fmt.Sprintf("127.0.0.1:%d", ports[0])},
		logPath:   filepath.Join(dir, "kafka.log"),
	}
	for _, d := range []string{b.logDir, b.tieredDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The settings of integration/scripts/start.sh, but for the metadata manager: the three
	// lines an operator adds (README, "Using Strata with Apache Kafka"), and nothing else.
	conf := fmt.Sprintf(`process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:%[2]d
listeners=PLAINTEXT://127.0.0.1:%[1]d,CONTROLLER://127.0.0.1:%[2]d
advertised.listeners=PLAINTEXT://127.0.0.1:%[1]d
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=%[3]s
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.initial.task.delay.ms=100
log.segment.delete.delay.ms=1000
log.retention.check.interval.ms=1000
remote.log.storage.system.enable=true
remote.log.storage.manager.class.name=org.apache.kafka.server.log.remote.storage.LocalTieredStorage
remote.log.storage.manager.class.path=%[4]s
rsm.config.dir=%[5]s
remote.log.metadata.manager.listener.name=PLAINTEXT
rlmm.config.remote.log.metadata.topic.replication.factor=1
rlmm.config.remote.log.metadata.topic.min.isr=1
remote.log.manager.task.interval.ms=1000
remote.log.metadata.manager.class.name=%[6]s
remote.log.metadata.manager.class.path=%[7]s
rlmm.config.strata.binary=%[8]s
`, b.port, ports[1], b.logDir, storageTestJar(t, libs, version), b.tieredDir, pluginClass, jar, strata)
	if err := os.WriteFile(b.props, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	log4j := filepath.Join(dir, "log4j2.properties")
	if err := os.WriteFile(log4j, []byte(`status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
`), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t, 2*time.Minute)
	format := exec.CommandContext(ctx, "java", "-XX:TieredStopAtLevel=1", "-Dlog4j2.configurationFile="+log4j,
		"-cp", filepath.Join(libs, "*"), "kafka.tools.StorageTool", "format",
		"--cluster-id", "c3RyYXRhLXBsdWdpbi10ZQ", "--config", b.props, "--standalone")
	if out, err := format.CombinedOutput(); err != nil {
		t.Fatalf("format Kafka %s's storage: %v\n%s", version, err, out)
	}
	t.Cleanup(b.stop)
	return b
}

// storageTestJar is the jar of kafka-storage that holds LocalTieredStorage in version.
func storageTestJar(t *testing.T, libs, version string) string {
	t.Helper()
	for _, c := range []string{"test", "test-fixtures"} {
		p := filepath.Join(libs, "kafka-storage-"+version+"-"+c+".jar")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("no kafka-storage test jar of %s in %s", version, libs)
	return ""
}

// start runs the broker and waits until it listens and the plugin's strata serve answers.
func (b *pluginBroker) start() {
	t := b.t
	t.Helper()
	b.mu.Lock()
	logf, err := os.OpenFile(b.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		b.mu.Unlock()
		t.Fatal(err)
	}
	cmd := exec.Command("java", "-Xms384m", "-Xmx384m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile="+filepath.Join(b.dir, "log4j2.properties"),
		"-cp", filepath.Join(b.libs, "*"), "kafka.Kafka", b.props)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.mu.Unlock()
		t.Fatalf("start Kafka %s: %v", b.version, err)
	}
	logf.Close()
	b.cmd, b.exited = cmd, make(chan struct{})
	b.starts++
	exited := b.exited
	go func() { cmd.Wait(); close(exited) }()
	want := b.starts
	b.mu.Unlock()

	b.waitLog(fmt.Sprintf("Kafka %s listening with strata serve answering", b.version), 3*time.Minute, func(log string) bool {
		return strings.Count(log, "strata serve (pid ") > 0 && strings.Count(log, "Kafka Server started") >= want &&
			strings.Count(log, ") answers on ") >= want
	})
}

// waitLog waits until done(the broker's log so far) holds, failing if the broker exits first
// or time runs out.
func (b *pluginBroker) waitLog(what string, timeout time.Duration, done func(string) bool) {
	t := b.t
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		log, _ := os.ReadFile(b.logPath)
		if done(string(log)) {
			return
		}
		select {
		case <-b.exited:
			t.Fatalf("%s: the broker exited; its log:\n%s", what, tail(string(log), 60))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; the broker's log:\n%s", what, timeout, tail(string(log), 60))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stop stops the broker with SIGTERM (SIGKILL after 90 s) and checks that the plugin stopped
// its strata serve: close() waits for the child.
func (b *pluginBroker) stop() {
	b.mu.Lock()
	cmd, exited := b.cmd, b.exited
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(90 * time.Second):
		b.t.Errorf("Kafka %s did not stop within 90 s of SIGTERM: killing it", b.version)
		cmd.Process.Kill()
		<-exited
	}
	if pids := b.servePIDs(); len(pids) > 0 {
		b.t.Errorf("strata serve (pids %v) still runs after its broker stopped", pids)
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
}

// servePIDs lists the strata serve processes of this broker: their command line names its
// folder (the socket and properties sit beside its log directory).
func (b *pluginBroker) servePIDs() []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cl, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cl), "\x00")
		if len(args) > 1 && args[1] == "serve" && bytes.Contains(cl, []byte(b.dir)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// socket is where the plugin's strata serve listens: beside the store, beside the log directory.
func (b *pluginBroker) socket() string { return b.logDir + "-strata-rlmm.sock" }

func (b *pluginBroker) client(opts ...kgo.Opt) *kgo.Client {
	b.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.brokers...)}, opts...)...)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(cl.Close)
	return cl
}

// health asks the broker's strata serve, on its socket, what it serves.
func (b *pluginBroker) health() *rlmmv1.HealthResponse {
	t := b.t
	t.Helper()
	conn, err := grpc.NewClient("unix://"+b.socket(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h, err := rlmmv1.NewRemoteLogMetadataServiceClient(conn).Health(testContext(t, 10*time.Second), &rlmmv1.HealthRequest{})
	if err != nil {
		t.Fatalf("Health of strata serve on %s: %v", b.socket(), err)
	}
	return h
}

// produced is what a test wrote to a topic: values by offset.
type produced struct {
	mu     sync.Mutex
	values map[int64][]byte
}

// produceBatch writes n records of 4 KiB random values, uncompressed, and records them.
func (p *produced) produceBatch(t *testing.T, ctx context.Context, cl *kgo.Client, rng *rand.Rand, n int) error {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		v := make([]byte, 4<<10)
		for j := 0; j < len(v); j += 8 {
			binary.LittleEndian.PutUint64(v[j:], rng.Uint64())
		}
		recs[i] = &kgo.Record{Value: v}
	}
	res := cl.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range res {
		p.values[r.Record.Offset] = r.Record.Value
	}
	return nil
}

func (p *produced) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.values)
}

// consumeAll reads topic's partition 0 from offset 0 with a fresh consumer and checks that
// every record produced comes back, at its offset, with its value.
func (b *pluginBroker) consumeAll(topic string, p *produced) {
	t := b.t
	t.Helper()
	want := p.count()
	cl := b.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(0)}}),
		kgo.FetchMaxWait(500*time.Millisecond))
	ctx := testContext(t, 3*time.Minute)
	got := 0
	for got < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consume %s from offset 0: %d of %d records within 3 minutes", topic, got, want)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch %s: %v (retrying)", topic, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != int64(got) {
				t.Fatalf("consume %s: offset %d after %d records, want %d", topic, r.Offset, got, got)
			}
			p.mu.Lock()
			v := p.values[r.Offset]
			p.mu.Unlock()
			if !bytes.Equal(r.Value, v) {
				t.Fatalf("consume %s: offset %d holds other bytes than were produced", topic, r.Offset)
			}
			got++
		})
	}
}

// tieredLogFiles lists the .log files LocalTieredStorage holds for topic's partition 0.
func (b *pluginBroker) tieredLogFiles(topic string) []string {
	files, _ := filepath.Glob(filepath.Join(b.tieredDir, "kafka-tiered-storage", topic+"-0-*", "*.log"))
	return files
}

// localStart is the base offset of the first segment the broker still keeps locally for
// topic's partition 0 (-1 when it keeps none).
func (b *pluginBroker) localStart(topic string) int64 {
	files, _ := filepath.Glob(filepath.Join(b.logDir, topic+"-0", "*.log"))
	first := int64(-1)
	for _, f := range files {
		n, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(f), ".log"), 10, 64)
		if err == nil && (first < 0 || n < first) {
			first = n
		}
	}
	return first
}

// waitFor polls cond until it holds, failing after timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// metadataEnd is the sum of __remote_log_metadata's end offsets: how many records it holds.
func (b *pluginBroker) metadataEnd() int64 {
	t := b.t
	t.Helper()
	offs, err := kadm.NewClient(b.client()).ListEndOffsets(testContext(t, 30*time.Second), proto.TopicName)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", proto.TopicName, err)
	}
	var n int64
	offs.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// appliedSum is the sum of the applied offsets of the metadata partitions strata serve consumes.
func appliedSum(h *rlmmv1.HealthResponse) (sum int64, parts int) {
	for _, p := range h.GetPartitions() {
		sum += p.GetAppliedOffset()
	}
	return sum, len(h.GetPartitions())
}

// createTieredTopic creates a one-partition topic tiered in 1 MiB segments whose local copies
// go a second after they are tiered.
func (b *pluginBroker) createTieredTopic(topic string) {
	t := b.t
	t.Helper()
	adm := kadm.NewClient(b.client())
	if _, err := adm.CreateTopic(testContext(t, 30*time.Second), 1, 1, tieredTopicConfigs(), topic); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	topicDetail(t, adm, topic)
}

// verifyClean runs `strata verify` against the broker and its LocalTieredStorage and fails the
// test on any finding. stuckAfter is how old a segment in a *_STARTED state must be to count.
func (b *pluginBroker) verifyClean(stuckAfter string) {
	t := b.t
	t.Helper()
	res := runStrata(t, "", "verify", "--brokers", strings.Join(b.brokers, ","), "--cache-dir", t.TempDir(),
		"--local-dir", b.tieredDir, "--stuck-after", stuckAfter, "--format", "json", "--timeout", "1m")
	if anomalies := parseAnomalies(t, res); res.Code != 0 || len(anomalies) != 0 {
		t.Fatalf("strata verify: exit status %d, %d anomalies, want none:\n%s\nstderr:\n%s",
			res.Code, len(anomalies), res.Stdout, res.Stderr)
	}
}

// TestKafkaPlugin is issue 15's proof on a stock Kafka broker of each version the plugin
// supports: with Strata's plugin as its metadata manager and LocalTieredStorage, Kafka tiers a
// topic, serves every record from offset 0 once the local copies are gone, does so again after
// a restart (Strata resuming from its store: the test logs how many metadata records it
// fetched), deletes every remote segment when the topic is deleted, and `strata verify` then
// finds nothing. Stopping the broker stops its strata serve.
func TestKafkaPlugin(t *testing.T) {
	for _, version := range []string{"4.3.1", "4.4.0"} {
		t.Run(version, func(t *testing.T) { testKafkaPlugin(t, version) })
	}
}

func testKafkaPlugin(t *testing.T, version string) {
	b := newPluginBroker(t, version)
	b.start()
	topic := uniqueTopic(t)
	b.createTieredTopic(topic)

	// 5 MiB in 4 KiB records: at least four 1 MiB segments are closed, tiered, and their local
	// copies deleted.
	p := &produced{values: map[int64][]byte{}}
	producer := b.client(kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(128<<10))
	rng := rand.New(rand.NewPCG(15, uint64(len(version))))
	ctx := testContext(t, 2*time.Minute)
	for range 20 {
		if err := p.produceBatch(t, ctx, producer, rng, 64); err != nil {
			t.Fatalf("produce to %s: %v", topic, err)
		}
	}
	waitFor(t, "Kafka tiering 4 segments of "+topic+" through Strata and deleting their local copies", 3*time.Minute,
		func() bool { return len(b.tieredLogFiles(topic)) >= 4 && b.localStart(topic) > 0 })
	t.Logf("Kafka %s tiered %d segments; the broker keeps offsets from %d locally", version,
		len(b.tieredLogFiles(topic)), b.localStart(topic))

	// Offsets below localStart exist only in remote storage: Kafka finds each one's segment
	// through the plugin's remoteLogSegmentMetadata.
	b.consumeAll(topic, p)

	// Restart: the plugin's new strata serve resumes from its store. Kafka's own manager
	// would read __remote_log_metadata from the start.
	h := b.health()
	appliedBefore, parts := appliedSum(h)
	total := b.metadataEnd()
	b.stop()
	// The plugin's close() waits for its child to stop; the child's last line, after its
	// store is closed, reaches the broker's log only if close() left the child's pipes open.
	if log, _ := os.ReadFile(b.logPath); !strings.Contains(string(log), `"msg":"stopped"`) {
		t.Errorf("the broker's log has no line of strata serve stopping cleanly; its tail:\n%s", tail(string(log), 30))
	}
	b.start()
	var appliedAfter int64
	waitFor(t, "strata serve applying the metadata partitions after the restart", time.Minute, func() bool {
		h := b.health()
		var n int
		appliedAfter, n = appliedSum(h)
		ready := n >= parts
		for _, mp := range h.GetPartitions() {
			ready = ready && mp.GetAppliedOffset() >= mp.GetTargetOffset()
		}
		return ready
	})
	t.Logf("restart: strata serve fetched %d metadata records (applied offsets %d before the stop, %d after, over %d metadata partitions); __remote_log_metadata holds %d",
		appliedAfter-appliedBefore, appliedBefore, appliedAfter, parts, total)
	b.consumeAll(topic, p)

	// Delete the topic: Kafka deletes each remote segment, recording it through the plugin.
	adm := kadm.NewClient(b.client())
	if _, err := adm.DeleteTopics(testContext(t, 30*time.Second), topic); err != nil {
		t.Fatalf("delete topic %s: %v", topic, err)
	}
	waitFor(t, "Kafka deleting every remote segment of "+topic, 2*time.Minute,
		func() bool { return len(b.tieredLogFiles(topic)) == 0 })
	b.verifyClean("1h")
	b.stop()
}

// TestKafkaPluginServeKilled kills the plugin's strata serve with SIGKILL while the broker
// tiers: the plugin starts it again, the broker tiers on, every record reads back from offset
// 0, and `strata verify` then finds nothing stuck.
func TestKafkaPluginServeKilled(t *testing.T) {
	b := newPluginBroker(t, "4.3.1")
	b.start()
	topic := uniqueTopic(t)
	b.createTieredTopic(topic)

	p := &produced{values: map[int64][]byte{}}
	producer := b.client(kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(128<<10))
	rng := rand.New(rand.NewPCG(15, 9))
	ctx := testContext(t, 5*time.Minute)
	produce := func(batches int) {
		t.Helper()
		for range batches {
			if err := p.produceBatch(t, ctx, producer, rng, 64); err != nil {
				t.Fatalf("produce to %s: %v", topic, err)
			}
		}
	}
	produce(8)
	waitFor(t, "Kafka tiering a first segment", 2*time.Minute, func() bool { return len(b.tieredLogFiles(topic)) >= 1 })

	// Kill strata serve while segments are still being tiered, and keep producing.
	pids := b.servePIDs()
	if len(pids) != 1 {
		t.Fatalf("strata serve processes of the broker: %v, want one", pids)
	}
	before := len(b.tieredLogFiles(topic))
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatalf("kill strata serve: %v", err)
	}
	t.Logf("killed strata serve (pid %d) with %d segments tiered", pids[0], before)
	produce(12)
	waitFor(t, "the plugin starting strata serve again", time.Minute, func() bool {
		ps := b.servePIDs()
		return len(ps) == 1 && ps[0] != pids[0]
	})
	b.waitLog("the new strata serve answering", time.Minute, func(log string) bool {
		return strings.Count(log, ") answers on ") >= 2
	})
	waitFor(t, "Kafka tiering on after the kill", 3*time.Minute, func() bool {
		return len(b.tieredLogFiles(topic)) >= before+3 && b.localStart(topic) > 0
	})
	t.Logf("after the kill: %d segments tiered", len(b.tieredLogFiles(topic)))
	b.consumeAll(topic, p)
	scanLog(t, b.logPath)
	b.verifyClean("1h")
	b.stop()
}

// scanLog logs the plugin's lines about the child's lifecycle, for the record of the run.
func scanLog(t *testing.T, path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.Contains(l, "(io.github.stratalog.strata.kafka.Supervisor)") && !strings.Contains(l, "[strata serve ") {
			t.Log(l)
		}
	}
}
