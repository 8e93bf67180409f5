//go:build faults

package faults

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// env is what integration/scripts/start-cluster.sh exports.
type env struct {
	brokers    []string
	nodes      int
	state      string // the harness's state directory
	scripts    string // integration/scripts
	s3Endpoint string
	s3Cert     string
	s3Key      string
	bucket     string
	region     string
	accessKey  string
	secretKey  string
}

func loadEnv() (env, error) {
	var missing []string
	get := func(name string) string {
		v := os.Getenv(name)
		if v == "" {
			missing = append(missing, name)
		}
		return v
	}
	e := env{
		brokers:    strings.Split(get("STRATA_KAFKA_BROKERS"), ","),
		state:      get("STRATA_IT_STATE"),
		scripts:    get("STRATA_IT_SCRIPTS"),
		s3Endpoint: get("STRATA_S3_ENDPOINT"),
		s3Cert:     get("STRATA_S3_CERT"),
		s3Key:      get("STRATA_S3_KEY"),
		bucket:     get("STRATA_S3_BUCKET"),
		region:     get("STRATA_S3_REGION"),
		accessKey:  get("AWS_ACCESS_KEY_ID"),
		secretKey:  get("AWS_SECRET_ACCESS_KEY"),
	}
	n, err := strconv.Atoi(get("STRATA_KAFKA_NODES"))
	if len(missing) > 0 {
		return env{}, fmt.Errorf("%s not set: run the suite through integration/faults.sh (make faults)", strings.Join(missing, ", "))
	}
	if err != nil || n < 3 {
		return env{}, fmt.Errorf("STRATA_KAFKA_NODES=%q: want a cluster of at least 3 nodes", os.Getenv("STRATA_KAFKA_NODES"))
	}
	e.nodes = n
	return e, nil
}

// cluster controls the nodes of the harness's cluster by the pids broker.sh records.
type cluster struct {
	env env
	adm *kadm.Client
	cl  *kgo.Client
}

func newCluster(t testing.TB, e env) *cluster {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.RequestTimeoutOverhead(5*time.Second))
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return &cluster{env: e, adm: kadm.NewClient(cl), cl: cl}
}

func (c *cluster) pid(node int32) (int, error) {
	b, err := os.ReadFile(filepath.Join(c.env.state, fmt.Sprintf("kafka-%d.pid", node)))
	if err != nil {
		return 0, fmt.Errorf("node %d: %w", node, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("node %d: pid file: %w", node, err)
	}
	return pid, nil
}

// running reports whether pid is a live process (not gone, not a zombie).
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses, which may itself hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}

func (c *cluster) signal(node int32, sig syscall.Signal) error {
	pid, err := c.pid(node)
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("signal %v to node %d (pid %d): %w", sig, node, pid, err)
	}
	return nil
}

// stop sends sig to node and waits until its process has exited.
func (c *cluster) stop(node int32, sig syscall.Signal, timeout time.Duration) error {
	pid, err := c.pid(node)
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("signal %v to node %d (pid %d): %w", sig, node, pid, err)
	}
	deadline := time.Now().Add(timeout)
	for running(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("node %d (pid %d) still running %v after %v", node, pid, timeout, sig)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// start starts node again through broker.sh and waits until it says it has started: until
// then the cluster may still show the node's previous run, not yet fenced, as healthy.
func (c *cluster) start(node int32) error {
	logFile := filepath.Join(c.env.state, "logs", fmt.Sprintf("kafka-%d.log", node))
	starts := func() int {
		b, _ := os.ReadFile(logFile)
		return strings.Count(string(b), "Kafka Server started")
	}
	before := starts()
	out, err := exec.Command(filepath.Join(c.env.scripts, "broker.sh"), c.env.state, strconv.Itoa(int(node))).CombinedOutput()
	if err != nil {
		return fmt.Errorf("broker.sh %d: %v: %s", node, err, out)
	}
	pid, err := c.pid(node)
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(2 * time.Minute); starts() == before; time.Sleep(200 * time.Millisecond) {
		if !running(pid) {
			return fmt.Errorf("node %d exited while starting (see %s)", node, logFile)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %d not started within 2 minutes (see %s)", node, logFile)
		}
	}
	return nil
}

// leaders returns the leader of each of the topic's partitions.
func (c *cluster) leaders(ctx context.Context, topic string) (map[int32]int32, error) {
	md, err := c.adm.Metadata(ctx, topic)
	if err != nil {
		return nil, err
	}
	td, ok := md.Topics[topic]
	if !ok || td.Err != nil {
		return nil, fmt.Errorf("metadata of %s: %v", topic, td.Err)
	}
	out := map[int32]int32{}
	for p, pd := range td.Partitions {
		out[p] = pd.Leader
	}
	return out, nil
}

// waitHealthy waits until every node is registered and every partition of topic has a leader and
// all its replicas in sync: the state in which the next fault may start.
func (c *cluster) waitHealthy(ctx context.Context, topic string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		md, err := c.adm.Metadata(ctx, topic)
		if err == nil {
			err = func() error {
				if len(md.Brokers) < c.env.nodes {
					return fmt.Errorf("%d of %d brokers registered", len(md.Brokers), c.env.nodes)
				}
				td := md.Topics[topic]
				if td.Err != nil {
					return td.Err
				}
				for p, pd := range td.Partitions {
					if pd.Leader < 0 || len(pd.ISR) < len(pd.Replicas) {
						return fmt.Errorf("%s-%d: leader %d, ISR %v of replicas %v", topic, p, pd.Leader, pd.ISR, pd.Replicas)
					}
				}
				return nil
			}()
		}
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not healthy within %v: %w", timeout, errors.Join(last, ctx.Err()))
		case <-time.After(200 * time.Millisecond):
		}
	}
}
