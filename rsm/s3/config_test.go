package s3_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/stratalog/strata/rsm"
	"github.com/stratalog/strata/rsm/s3"
)

const (
	testSecret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
	testToken  = "FwoGZXIvYXdzEXAMPLETOKEN"
)

func secretConfig() s3.Config {
	return s3.Config{
		Bucket:          "b",
		Prefix:          "p",
		Region:          "eu-west-1",
		AccessKeyID:     "AKIAEXAMPLE",
		SecretAccessKey: testSecret,
		SessionToken:    testToken,
	}
}

func checkRedacted(t *testing.T, what, s string) {
	t.Helper()
	if strings.Contains(s, testSecret) || strings.Contains(s, testToken) {
		t.Errorf("%s leaks a secret: %s", what, s)
	}
	if !strings.Contains(s, "AKIAEXAMPLE") && what != "secret alone" {
		t.Errorf("%s lost the access key id, which is not secret: %s", what, s)
	}
}

// Secrets never print, whichever way a Config or its fields are formatted or logged.
func TestConfigRedaction(t *testing.T) {
	c := secretConfig()
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		for what, v := range map[string]any{"": c, " of a pointer": &c} {
			out := fmt.Sprintf(verb, v)
			if verb == "%x" {
				b, err := hex.DecodeString(out)
				if err != nil {
					t.Fatalf("%%x%s printed %q", what, out)
				}
				out = string(b)
			}
			checkRedacted(t, "fmt "+verb+what, out)
		}
	}
	for _, verb := range []string{"%v", "%s", "%q", "%x", "%d", "%#v"} {
		checkRedacted(t, "secret alone", fmt.Sprintf(verb, c.SecretAccessKey))
	}
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	checkRedacted(t, "json", string(j))

	var buf bytes.Buffer
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	log := zap.New(zapcore.NewCore(enc, zapcore.AddSync(&buf), zapcore.DebugLevel))
	log.Info("config", zap.Any("any", c), zap.Object("object", c), zap.Reflect("reflect", c), zap.Stringer("stringer", c))
	log.Sync()
	checkRedacted(t, "zap", buf.String())

	want := "s3://b/p/ region=eu-west-1 access-key-id=AKIAEXAMPLE secret-access-key=(redacted) session-token=(redacted)"
	if c.String() != want {
		t.Errorf("String() = %q\nwant       %q", c.String(), want)
	}
}

// Errors of New print the configuration redacted, and the Store logs it redacted.
func TestNewRedactsAndValidates(t *testing.T) {
	var buf bytes.Buffer
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	log := zap.New(zapcore.NewCore(enc, zapcore.AddSync(&buf), zapcore.DebugLevel))

	st, err := s3.New(t.Context(), secretConfig(), s3.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	log.Sync()
	if buf.Len() == 0 {
		t.Fatal("New logged nothing at debug level")
	}
	checkRedacted(t, "the Store's log", buf.String())

	for name, tc := range map[string]struct {
		cfg  s3.Config
		opts []s3.Option
	}{
		"no bucket":        {s3.Config{Region: "r", AccessKeyID: "AKIAEXAMPLE", SecretAccessKey: testSecret}, nil},
		"secret no key id": {s3.Config{Bucket: "b", Region: "r", SecretAccessKey: testSecret}, nil},
		"small parts":      {secretConfig(), []s3.Option{s3.WithPartSize(1 << 20)}},
		"no concurrency":   {secretConfig(), []s3.Option{s3.WithConcurrency(0)}},
		"huge threshold":   {secretConfig(), []s3.Option{s3.WithMultipartThreshold(6 << 30)}},
		"no attempts":      {secretConfig(), []s3.Option{s3.WithRetries(0, 1)}},
	} {
		_, err := s3.New(t.Context(), tc.cfg, tc.opts...)
		if !errors.Is(err, rsm.ErrPermanent) {
			t.Errorf("%s: New = %v, want ErrPermanent", name, err)
			continue
		}
		if strings.Contains(err.Error(), testSecret) {
			t.Errorf("%s: error leaks the secret: %v", name, err)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv(s3.EnvBucket, "")
	if _, err := s3.ConfigFromEnv(); err == nil {
		t.Error("ConfigFromEnv without a bucket succeeded")
	}
	t.Setenv(s3.EnvBucket, "bench")
	t.Setenv(s3.EnvPrefix, "runs/1")
	t.Setenv(s3.EnvEndpoint, "http://127.0.0.1:9000")
	c, err := s3.ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if c.Bucket != "bench" || c.Prefix != "runs/1" || c.Endpoint != "http://127.0.0.1:9000" || !c.PathStyle || c.AccessKeyID != "" {
		t.Errorf("ConfigFromEnv = %v", c)
	}
	t.Setenv(s3.EnvPathStyle, "false")
	if c, err := s3.ConfigFromEnv(); err != nil || c.PathStyle {
		t.Errorf("with %s=false: %v, %v", s3.EnvPathStyle, c, err)
	}
	t.Setenv(s3.EnvPathStyle, "maybe")
	if _, err := s3.ConfigFromEnv(); err == nil {
		t.Errorf("%s=maybe accepted", s3.EnvPathStyle)
	}
}
