package rlmm_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rlmm"
	"github.com/stratalog/strata/rsm"
	"github.com/stratalog/strata/rsm/local"
	"github.com/stratalog/strata/tier"
)

// A broker links the manager in, tells it which partitions it leads, tiers a closed segment
// and later asks where an offset lives. An in-process Kafka stands in for the cluster here.
func Example() {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	dir, _ := os.MkdirTemp("", "strata-example-")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	// A broker passes its own properties through, by Kafka's names.
	m, err := rlmm.New(ctx, rlmm.WithProperties(map[string]string{
		"remote.log.metadata.common.client.bootstrap.servers": cluster.ListenAddrs()[0],
		"remote.log.metadata.topic.replication.factor":        "1",
		"remote.log.metadata.topic.min.isr":                   "1",
		"log.dir":                                             filepath.Join(dir, "data"),
	}))
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	orders := proto.TopicIDPartition{TopicID: proto.NewUUID(), Topic: "orders", Partition: 0}
	if err := m.AssignPartitions(ctx, []proto.TopicIDPartition{orders}, nil); err != nil {
		log.Fatal(err)
	}
	if err := m.WaitReady(ctx, orders); err != nil {
		log.Fatal(err)
	}

	// Tier a closed segment: COPY_SEGMENT_STARTED, upload, COPY_SEGMENT_FINISHED.
	store, _ := local.New(filepath.Join(dir, "remote"))
	files := writeSegmentFiles(filepath.Join(dir, "log"))
	seg := &proto.SegmentMetadata{
		SegmentID:   proto.SegmentID{TopicIDPartition: orders, ID: proto.NewUUID()},
		StartOffset: 0, EndOffset: 999, MaxTimestampMs: time.Now().UnixMilli(),
		LeaderEpochs:       []proto.EpochEntry{{Epoch: 0, StartOffset: 0}},
		SegmentSizeInBytes: 5, State: proto.CopySegmentStarted, TxnIndexEmpty: true,
	}
	tr, err := tier.New(m, store)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := tr.Copy(ctx, seg, files); err != nil {
		log.Fatal(err)
	}

	// Where does offset 500 of leader epoch 0 live? The answer reflects the write at once.
	found, ok, err := m.SegmentFor(orders, 0, 500)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ok, found.SegmentID.ID == seg.SegmentID.ID, found.State)
	// Output: true true COPY_SEGMENT_FINISHED
}

func writeSegmentFiles(dir string) rsm.SegmentData {
	os.MkdirAll(dir, 0o755)
	d := rsm.SegmentData{LeaderEpochCheckpoint: []byte("0\n1\n0 0\n")}
	for path, name := range map[*string]string{&d.LogPath: "0.log", &d.OffsetIndexPath: "0.index", &d.TimeIndexPath: "0.timeindex", &d.ProducerSnapshotPath: "0.snapshot"} {
		*path = filepath.Join(dir, name)
		os.WriteFile(*path, []byte("bytes"), 0o644)
	}
	return d
}
