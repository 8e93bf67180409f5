package workload

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/proto"
)

// Fill writes the workload's events to __remote_log_metadata through cl, in Kafka's byte
// format (proto.Encode), each to the metadata partition Kafka's partitioner picks for its user
// partition: for each segment index j, for each user partition, COPY_SEGMENT_STARTED then
// COPY_SEGMENT_FINISHED of segment j. cl must produce to explicit partitions
// (kgo.RecordPartitioner(kgo.ManualPartitioner())). It returns once every record is
// acknowledged, or with the first error.
func (s *Spec) Fill(ctx context.Context, cl *kgo.Client, topic string) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	promise := func(r *kgo.Record, err error) {
		defer wg.Done()
		if err != nil {
			mu.Lock()
			if firstErr == nil {
				firstErr = fmt.Errorf("workload: producing to %s partition %d: %w", r.Topic, r.Partition, err)
			}
			mu.Unlock()
		}
	}
	now := time.Now().UnixMilli()
	for j := range s.SegmentsPerPartition {
		for _, tp := range s.Partitions {
			mp := proto.MetadataPartition(tp, s.MetadataPartitions)
			md := s.NewSegment(tp, j, now)
			for _, r := range []proto.Record{md, Finished(md, now)} {
				v, err := proto.Encode(r)
				if err != nil {
					wg.Wait()
					return fmt.Errorf("workload: encoding %v: %w", r, err)
				}
				wg.Add(1)
				cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: mp, Value: v}, promise)
			}
		}
		// Stop early once something failed: the rest would fail the same way.
		mu.Lock()
		err := firstErr
		mu.Unlock()
		if err != nil {
			break
		}
	}
	wg.Wait()
	return firstErr
}
