//go:build integration

package integration

import (
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/stratalog/strata/proto"
)

// TestKafkaAnswers checks the broker the other tests rely on: it answers, and Kafka's own
// metadata manager has created __remote_log_metadata as the rest of Strata expects it.
func TestKafkaAnswers(t *testing.T) {
	adm := kafkaAdmin(t)
	ctx := testContext(t, time.Minute)

	md, err := adm.Metadata(ctx)
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	if len(md.Brokers) == 0 {
		t.Fatal("metadata names no broker")
	}

	// Kafka's metadata manager creates the topic while the broker starts, and the harness waits
	// for it. Against a broker started some other way, the test creates a tiered topic, which
	// needs the metadata topic, and waits for the metadata topic to appear.
	if _, ok := md.Topics[proto.TopicName]; !ok {
		createTopic(t, adm, uniqueTopic(t), tieredTopicConfigs())
	}
	var detail kadm.TopicDetail
	for deadline := time.Now().Add(time.Minute); ; {
		md, err := adm.Metadata(ctx, proto.TopicName)
		if err == nil {
			err = md.Topics[proto.TopicName].Err
		}
		if err == nil {
			detail = md.Topics[proto.TopicName]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not exist after a minute: %v", proto.TopicName, err)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// Kafka's default partition count; the partitioner, and so every published record's
	// placement, depends on it. The harness sets the replication factor to 1.
	if n := len(detail.Partitions); n != 50 {
		t.Errorf("%s has %d partitions, want Kafka's default 50", proto.TopicName, n)
	}
	for p, pd := range detail.Partitions {
		if len(pd.Replicas) != 1 {
			t.Errorf("%s-%d has replicas %v, want one (rlmm.config.remote.log.metadata.topic.replication.factor=1)", proto.TopicName, p, pd.Replicas)
		}
	}

	// docs/KAFKA_SEMANTICS.md section 4: the topic is created with cleanup.policy=delete, unlimited
	// retention by default, and is itself never tiered.
	rcs, err := adm.DescribeTopicConfigs(ctx, proto.TopicName)
	if err != nil {
		t.Fatalf("describe %s configs: %v", proto.TopicName, err)
	}
	rc, err := rcs.On(proto.TopicName, nil)
	if err != nil {
		t.Fatalf("describe %s configs: %v", proto.TopicName, err)
	}
	want := map[string]string{
		"cleanup.policy":        "delete",
		"retention.ms":          "-1",
		"remote.storage.enable": "false",
	}
	for _, c := range rc.Configs {
		w, ok := want[c.Key]
		if !ok {
			continue
		}
		delete(want, c.Key)
		if c.Value == nil || *c.Value != w {
			t.Errorf("%s config %s = %v, want %s", proto.TopicName, c.Key, c.MaybeValue(), w)
		}
	}
	for k := range want {
		t.Errorf("%s config %s not described", proto.TopicName, k)
	}
}

// TestS3Answers checks the S3 server: a request signed with the harness's credentials lists the
// bucket, and wrong credentials are refused with S3's authentication error codes.
func TestS3Answers(t *testing.T) {
	e := requireS3(t)
	ctx := testContext(t, time.Minute)

	if _, err := s3Client(e, e.AccessKey, e.SecretKey).ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket: aws.String(e.Bucket),
	}); err != nil {
		t.Fatalf("list bucket %s at %s: %v", e.Bucket, e.Endpoint, err)
	}

	// A wrong secret is S3's SignatureDoesNotMatch, HTTP 403. An unknown access key is
	// InvalidAccessKeyId (403) on AWS; versitygw v1.8.0 answers XAdminUserNotFound with HTTP 404.
	for _, tc := range []struct {
		name                 string
		accessKey, secretKey string
		codes                []string
		status               int
	}{
		{"wrong secret", e.AccessKey, e.SecretKey + "x", []string{"SignatureDoesNotMatch"}, http.StatusForbidden},
		{"unknown access key", "STRATAUNKNOWNKEY0000", e.SecretKey, []string{"InvalidAccessKeyId", "XAdminUserNotFound"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s3Client(e, tc.accessKey, tc.secretKey).ListObjectsV2(ctx, &s3.ListObjectsV2Input{
				Bucket: aws.String(e.Bucket),
			})
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("list with %s: got %v, want an S3 error", tc.name, err)
			}
			if !slices.Contains(tc.codes, apiErr.ErrorCode()) {
				t.Errorf("list with %s: error code %q (%v), want one of %q", tc.name, apiErr.ErrorCode(), err, tc.codes)
			}
			var respErr *awshttp.ResponseError
			if tc.status != 0 && (!errors.As(err, &respErr) || respErr.HTTPStatusCode() != tc.status) {
				t.Errorf("list with %s: got %v, want HTTP status %d", tc.name, err, tc.status)
			}
		})
	}
}
