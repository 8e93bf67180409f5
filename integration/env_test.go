//go:build integration

package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The environment the tests read; integration/run.sh and docker-compose.yml set it.
const (
	envKafkaBrokers = "STRATA_KAFKA_BROKERS"    // host:port[,host:port...] of the Kafka broker
	envKafkaLibs    = "STRATA_KAFKA_LIBS"       // folder of Kafka's jars, for `java -cp "$dir/*"`
	envTieredDir    = "STRATA_KAFKA_TIERED_DIR" // the broker's LocalTieredStorage rsm.config.dir
	envS3Endpoint   = "STRATA_S3_ENDPOINT"      // http[s]://host:port of the S3 server
	envCABundle     = "AWS_CA_BUNDLE"           // PEM certificates the S3 server's is signed by, if not the system's
	envS3Bucket     = "STRATA_S3_BUCKET"        // a bucket that exists
	envS3Region     = "STRATA_S3_REGION"
	envAccessKey    = "AWS_ACCESS_KEY_ID"
	envSecretKey    = "AWS_SECRET_ACCESS_KEY"
	envState        = "STRATA_IT_STATE"   // the harness's state folder, removed when it stops the servers
	envHarness      = "STRATA_IT_HARNESS" // "compose" in docker-compose.yml's tests container
)

// requireNativeHarness skips a test of the native harness itself (integration/run.sh and its
// scripts) where the suite runs in docker-compose.yml's containers, under CI too: there the
// servers are the compose file's, and the harness's own tools (Maven, a versitygw build) are not
// in the tests' image. CI runs such tests natively, in make test.
func requireNativeHarness(t testing.TB) {
	t.Helper()
	if os.Getenv(envHarness) == "compose" {
		t.Skip("tests integration/run.sh, the native harness, which the compose suite does not use; make integration runs it")
	}
}

// missing stops a test whose prerequisite is absent: under CI a missing prerequisite is a
// failure, elsewhere the test is skipped with what to run.
func missing(t testing.TB, what string) {
	t.Helper()
	msg := what + "; run the integration tests through integration/run.sh, e.g. " +
		"integration/run.sh go test -race -tags integration -count=1 ./integration/..."
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// requireEnv returns the value of the environment variable name, or stops the test (see missing).
func requireEnv(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		missing(t, name+" is not set")
	}
	return v
}

// requireTool returns the path of the program name, or stops the test (see missing).
func requireTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		missing(t, name+" is not on PATH")
	}
	return path
}

func testContext(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

func kafkaBrokers(t testing.TB) []string {
	t.Helper()
	return strings.Split(requireEnv(t, envKafkaBrokers), ",")
}

// kafkaClient returns a client of the test broker, closed when the test ends.
func kafkaClient(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(kafkaBrokers(t)...)}, opts...)...)
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func kafkaAdmin(t testing.TB) *kadm.Client {
	t.Helper()
	return kadm.NewClient(kafkaClient(t))
}

var topicSeq atomic.Int64

var notTopicChars = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// uniqueTopic returns a topic name no other test or earlier run on the same broker uses.
func uniqueTopic(t testing.TB) string {
	t.Helper()
	name := notTopicChars.ReplaceAllString(t.Name(), "_")
	return fmt.Sprintf("strata-it-%s-%d-%d", name, time.Now().UnixNano(), topicSeq.Add(1))
}

// createTopic creates a topic with one partition and the given configs, deleted again when the
// test ends, and returns its id.
func createTopic(t testing.TB, adm *kadm.Client, topic string, configs map[string]*string) kadm.TopicID {
	t.Helper()
	resp, err := adm.CreateTopic(testContext(t, 30*time.Second), 1, 1, configs, topic)
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	t.Cleanup(func() {
		// The test may have deleted it already; a second delete only reports the topic unknown.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = adm.DeleteTopics(ctx, topic)
	})
	return resp.ID
}

// topicDetail returns what the broker's metadata says of topic, or fails the test. A topic
// just created may be unknown to the broker, or have no leader, for a moment: that is waited
// out.
func topicDetail(t testing.TB, adm *kadm.Client, topic string) kadm.TopicDetail {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		md, err := adm.Metadata(testContext(t, 30*time.Second), topic)
		if err == nil {
			err = md.Topics[topic].Err
		}
		if err == nil {
			for _, p := range md.Topics[topic].Partitions {
				if err == nil && (p.Err != nil || p.Leader < 0) {
					err = fmt.Errorf("partition %d has no leader (%v)", p.Partition, p.Err)
				}
			}
		}
		if err == nil {
			return md.Topics[topic]
		}
		if time.Now().After(deadline) {
			t.Fatalf("metadata of %s: %v", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// segmentBytes is the segment size of tiered test topics: the smallest Kafka accepts.
const segmentBytes = 1 << 20

// tieredTopicConfigs are the settings under which Kafka tiers a topic quickly: 1 MiB segments
// (the smallest Kafka accepts) and local copies deleted one second after they are tiered, while
// the data itself stays for an hour.
func tieredTopicConfigs() map[string]*string {
	return map[string]*string{
		"remote.storage.enable": kadm.StringPtr("true"),
		"segment.bytes":         kadm.StringPtr(strconv.Itoa(segmentBytes)),
		"local.retention.ms":    kadm.StringPtr("1000"),
		"retention.ms":          kadm.StringPtr("3600000"),
	}
}

// s3Env is where the test S3 server is and who may use it.
type s3Env struct {
	Endpoint, Bucket, Region string
	AccessKey, SecretKey     string
	// Transport reaches the server: it trusts the certificates of AWS_CA_BUNDLE, as the SDK's
	// own client does, for clients the tests build themselves.
	Transport *http.Transport
}

func requireS3(t testing.TB) s3Env {
	t.Helper()
	return s3Env{
		Endpoint:  requireEnv(t, envS3Endpoint),
		Bucket:    requireEnv(t, envS3Bucket),
		Region:    requireEnv(t, envS3Region),
		AccessKey: requireEnv(t, envAccessKey),
		SecretKey: requireEnv(t, envSecretKey),
		Transport: s3Transport(t),
	}
}

// s3Transport returns a transport that trusts the system's certificates and AWS_CA_BUNDLE's.
func s3Transport(t testing.TB) *http.Transport {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	bundle := os.Getenv(envCABundle)
	if bundle == "" {
		return tr
	}
	pem, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatalf("%s: %v", envCABundle, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s: no PEM certificate in %s", envCABundle, bundle)
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return tr
}

// s3Client returns a client of the test S3 server that signs with the given credentials. It is
// configured from e alone, not from ~/.aws or other AWS_* variables, so that the test talks to
// the test server whatever the machine's AWS setup.
func s3Client(e s3Env, accessKey, secretKey string) *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(e.Endpoint),
		Region:       e.Region,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
		HTTPClient:   &http.Client{Transport: e.Transport},
	})
}
