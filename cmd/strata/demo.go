package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/stratalog/strata/cache"
	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/remover"
	"github.com/stratalog/strata/rlmm"
	"github.com/stratalog/strata/rsm"
	"github.com/stratalog/strata/rsm/local"
	"github.com/stratalog/strata/tier"
)

func newDemoCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Run Strata end to end against an in-process Kafka, with nothing installed",
		Long: `demo starts an in-process Kafka cluster, a local remote-storage directory and a cache in a
temporary folder; plays a broker that tiers segments of a few partitions across leader epochs,
crashes once in the middle of a copy, and deletes a partition through the remover; then runs
partitions, segments, verify (which finds the stuck copy), repair --execute, verify again and
checkpoint against it. It removes everything it made when it ends.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
}

// demoBroker is the broker the demo plays: a metadata manager, a local remote storage and the
// tiering workflows over them.
type demoBroker struct {
	m     *rlmm.Manager
	store *local.Store
	tier  *tier.Tierer
	files string
}

func runDemo(ctx context.Context, out, errOut io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	tmp, err := os.MkdirTemp("", "strata-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	remote := filepath.Join(tmp, "remote-storage")

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		return fmt.Errorf("starting the in-process Kafka: %w", err)
	}
	defer cluster.Close()
	addr := strings.Join(cluster.ListenAddrs(), ",")
	fmt.Fprintf(out, "Strata demo: an in-process Kafka at %s, remote storage in %s\n\n", addr, remote)

	payments, audit, err := demoTopics(ctx, cluster)
	if err != nil {
		return err
	}
	b, err := startDemoBroker(ctx, addr, tmp, remote)
	if err != nil {
		return err
	}
	step := func(format string, args ...any) { fmt.Fprintf(out, "* "+format+"\n", args...) }
	if err := b.play(ctx, payments, audit, step); err != nil {
		b.m.Close()
		return err
	}
	if err := b.m.Close(); err != nil {
		return err
	}

	cli := func(args ...string) int {
		fmt.Fprintf(out, "\n$ strata %s\n", strings.Join(args, " "))
		full := append(args, "--brokers", addr, "--cache-dir", filepath.Join(tmp, "cli-cache"))
		if args[0] == "verify" || args[0] == "repair" {
			full = append(full, "--local-dir", remote)
		}
		var stderr bytes.Buffer
		code := run(ctx, full, strings.NewReader(""), out, &stderr)
		out.Write(stderr.Bytes())
		if code != 0 {
			fmt.Fprintf(out, "(exit status %d)\n", code)
		}
		return code
	}
	fmt.Fprintln(out, "\nThe broker is gone. What does remote storage hold?")
	if cli("partitions") != 0 || cli("segments", "--topic", "payments") != 0 {
		return errors.New("demo: inspecting the cluster failed")
	}
	if cli("verify", "--stuck-after", "1h") == 0 {
		return errors.New("demo: verify found nothing, but a copy was left stuck")
	}
	if cli("repair", "--execute", "--stuck-after", "1h") != 0 {
		return errors.New("demo: repair failed")
	}
	if cli("verify", "--stuck-after", "1h") != 0 {
		return errors.New("demo: verify still finds anomalies after repair")
	}
	if cli("checkpoint", "--topic", "payments") != 0 {
		return errors.New("demo: checkpoint failed")
	}
	fmt.Fprint(out, `
That was all in memory, and it is gone now. To point strata at a real cluster:

  export STRATA_BROKERS=broker1:9092,broker2:9092
  strata partitions                                   # what each partition keeps remotely
  strata verify --s3-bucket my-tiered-bucket          # anomalies, with the objects in S3
  strata verify --local-dir /var/kafka/tiered         # or Kafka's LocalTieredStorage directory
  strata repair --s3-bucket my-tiered-bucket          # the plan; add --execute to carry it out
  strata checkpoint --topic payments                  # how far back remote storage is complete

TLS and SASL: --tls --tls-ca ca.pem, --sasl-mechanism SCRAM-SHA-512 --sasl-username u
(password in STRATA_SASL_PASSWORD). Every command takes --format json.
`)
	return nil
}

// demoTopics creates the demo's user topics and returns them with their ids.
func demoTopics(ctx context.Context, c *kfake.Cluster) (payments, audit kadm.TopicDetail, err error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		return payments, audit, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "payments"); err != nil {
		return payments, audit, err
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "audit"); err != nil {
		return payments, audit, err
	}
	td, err := adm.ListTopics(ctx, "payments", "audit")
	if err != nil {
		return payments, audit, err
	}
	return td["payments"], td["audit"], nil
}

func startDemoBroker(ctx context.Context, addr, tmp, remote string) (*demoBroker, error) {
	m, err := rlmm.New(ctx, rlmm.WithBootstrapServers(addr), rlmm.WithCacheDir(filepath.Join(tmp, "broker-cache")),
		rlmm.WithMetadataPartitions(5), rlmm.WithReplicationFactor(1), rlmm.WithMinISR(1), rlmm.WithLogger(zap.NewNop()))
	if err != nil {
		return nil, err
	}
	store, err := local.New(remote)
	if err != nil {
		m.Close()
		return nil, err
	}
	tr, err := tier.New(m, store, tier.WithBrokerID(1))
	if err != nil {
		m.Close()
		return nil, err
	}
	return &demoBroker{m: m, store: store, tier: tr, files: filepath.Join(tmp, "broker-log")}, nil
}

// segmentFiles writes a closed segment's files as a broker's log directory holds them.
func (b *demoBroker) segmentFiles(start int64, size int) (rsm.SegmentData, error) {
	dir := filepath.Join(b.files, fmt.Sprint(start))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return rsm.SegmentData{}, err
	}
	base := filepath.Join(dir, fmt.Sprintf("%020d", start))
	d := rsm.SegmentData{LogPath: base + ".log", OffsetIndexPath: base + ".index", TimeIndexPath: base + ".timeindex",
		ProducerSnapshotPath: base + ".snapshot", LeaderEpochCheckpoint: []byte("0\n1\n0 0\n")}
	for path, n := range map[string]int{d.LogPath: size, d.OffsetIndexPath: 64, d.TimeIndexPath: 96, d.ProducerSnapshotPath: 32} {
		if err := os.WriteFile(path, bytes.Repeat([]byte{byte(start)}, n), 0o644); err != nil {
			return d, err
		}
	}
	return d, nil
}

func (b *demoBroker) play(ctx context.Context, payments, audit kadm.TopicDetail, step func(string, ...any)) error {
	tp := func(td kadm.TopicDetail, p int32) proto.TopicIDPartition {
		return proto.TopicIDPartition{TopicID: proto.UUID(td.ID), Topic: td.Topic, Partition: p}
	}
	parts := []proto.TopicIDPartition{tp(payments, 0), tp(payments, 1), tp(payments, 2), tp(audit, 0)}
	if err := b.m.AssignPartitions(ctx, parts, nil); err != nil {
		return err
	}
	if err := b.m.WaitReady(ctx, parts...); err != nil {
		return err
	}
	now := time.Now()
	// Four segments a partition; the leader changes twice, so the segments span epochs 0 to 2.
	ep := func(e int32, off int64) proto.EpochEntry { return proto.EpochEntry{Epoch: e, StartOffset: off} }
	epochs := [][]proto.EpochEntry{{ep(0, 0)}, {ep(0, 1000), ep(1, 1500)}, {ep(1, 2000)}, {ep(2, 3000)}}
	for _, p := range parts {
		n := len(epochs)
		if p.Topic == "audit" {
			n = 2
		}
		for i := 0; i < n; i++ {
			start := int64(i) * 1000
			data, err := b.segmentFiles(start, 4096+int(p.Partition)*512)
			if err != nil {
				return err
			}
			seg := &proto.SegmentMetadata{SegmentID: proto.SegmentID{TopicIDPartition: p, ID: proto.NewUUID()},
				StartOffset: start, EndOffset: start + 999, MaxTimestampMs: now.Add(time.Duration(i-n) * 10 * time.Minute).UnixMilli(),
				LeaderEpochs: epochs[i], SegmentSizeInBytes: int32(4096 + int(p.Partition)*512), State: proto.CopySegmentStarted, TxnIndexEmpty: true}
			if _, err := b.tier.Copy(ctx, seg, data); err != nil {
				return err
			}
		}
		step("tiered %d segments of %s", n, p)
	}

	// The broker crashes after uploading a segment of payments-2, before publishing
	// COPY_SEGMENT_FINISHED. The copy started two hours ago.
	stuck := &proto.SegmentMetadata{SegmentID: proto.SegmentID{TopicIDPartition: parts[2], ID: proto.NewUUID()},
		StartOffset: 4000, EndOffset: 4999, BrokerID: 1, MaxTimestampMs: now.UnixMilli(), EventTimestampMs: now.Add(-2 * time.Hour).UnixMilli(),
		LeaderEpochs: []proto.EpochEntry{{Epoch: 2, StartOffset: 4000}}, SegmentSizeInBytes: 4096, State: proto.CopySegmentStarted, TxnIndexEmpty: true}
	if err := b.m.AddSegment(ctx, stuck); err != nil {
		return err
	}
	data, err := b.segmentFiles(4000, 4096)
	if err != nil {
		return err
	}
	if _, err := b.store.Copy(ctx, stuck, data); err != nil {
		return err
	}
	step("crashed while copying segment %s of %s: uploaded, never finished", stuck.SegmentID.ID, parts[2])

	// The audit topic is deleted: the controller marks its partition, the remover deletes it.
	if err := b.m.PutPartitionDelete(ctx, &proto.PartitionDeleteMetadata{TopicIDPartition: parts[3], BrokerID: 1,
		EventTimestampMs: time.Now().UnixMilli(), State: proto.DeletePartitionMarked}); err != nil {
		return err
	}
	r, err := remover.New(b.m, b.store, remover.WithBrokerID(1))
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.SetOwned(ctx, []int32{0, 1, 2, 3, 4}); err != nil {
		return err
	}
	for {
		ch := b.m.Changed()
		if _, _, err := b.m.View().PartitionDeleteState(parts[3]); errors.Is(err, cache.ErrNotFound) {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("demo: the remover did not delete %s: %w", parts[3], ctx.Err())
		}
	}
	step("deleted %s through the remover: DELETE_PARTITION_MARKED, STARTED, each segment, FINISHED", parts[3])
	return nil
}
