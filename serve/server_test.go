package serve

import (
	"errors"
	"io"
	"reflect"
	"slices"
	"testing"

	rlmmv1 "github.com/stratalog/strata/api/rlmm/v1"
	"github.com/stratalog/strata/proto"
)

// list drains a ListRemoteLogSegments stream, returning each chunk's records.
func list(t testing.TB, c rlmmv1.RemoteLogMetadataServiceClient, req *rlmmv1.ListRemoteLogSegmentsRequest) ([][]*proto.SegmentMetadata, error) {
	t.Helper()
	stream, err := c.ListRemoteLogSegments(ctxT(t), req)
	if err != nil {
		return nil, err
	}
	var chunks [][]*proto.SegmentMetadata
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return chunks, nil
		}
		if err != nil {
			return chunks, err
		}
		var chunk []*proto.SegmentMetadata
		for _, b := range resp.Records {
			chunk = append(chunk, decodeSegment(t, b))
		}
		chunks = append(chunks, chunk)
	}
}

func flat(chunks [][]*proto.SegmentMetadata) []*proto.SegmentMetadata {
	return slices.Concat(chunks...)
}

// TestEveryRPC drives each RPC through a real socket and checks each answer against what was
// written: the segment's lifecycle, the lookups, the lists, the partition's deletion and stop.
func TestEveryRPC(t *testing.T) {
	h, _ := newHarness(t)
	ctx := ctxT(t)
	h.assign(t, tp0)

	s0 := segment(tp0, 0, 99, proto.EpochEntry{Epoch: 0, StartOffset: 0})
	s1 := segment(tp0, 100, 199, proto.EpochEntry{Epoch: 0, StartOffset: 100}, proto.EpochEntry{Epoch: 1, StartOffset: 150})
	s1.TxnIndexEmpty = false
	s1.CustomMetadata = []byte("custom")
	h.add(t, s0, true)
	h.add(t, s1, false)

	// A COPY_SEGMENT_STARTED segment is not returned by the lookup; once finished it is.
	got, err := h.client.RemoteLogSegmentMetadata(ctx, &rlmmv1.RemoteLogSegmentMetadataRequest{TopicIdPartition: pb(tp0), EpochForOffset: 1, Offset: 160})
	if err != nil || got.Record != nil {
		t.Fatalf("lookup of a started segment = %v, %v; want none", got, err)
	}
	if _, err := h.client.UpdateRemoteLogSegmentMetadata(ctx, &rlmmv1.UpdateRemoteLogSegmentMetadataRequest{Record: encode(t, update(s1, proto.CopySegmentFinished))}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		epoch  int32
		offset int64
		want   *proto.SegmentMetadata
	}{{0, 50, s0}, {0, 120, s1}, {1, 160, s1}, {1, 50, nil}, {0, 200, nil}, {2, 160, nil}} {
		got, err := h.client.RemoteLogSegmentMetadata(ctx, &rlmmv1.RemoteLogSegmentMetadataRequest{TopicIdPartition: pb(tp0), EpochForOffset: tc.epoch, Offset: tc.offset})
		if err != nil {
			t.Fatal(err)
		}
		if tc.want == nil {
			if got.Record != nil {
				t.Errorf("lookup(%d, %d) = %v, want none", tc.epoch, tc.offset, decodeSegment(t, got.Record))
			}
			continue
		}
		if got.Record == nil {
			t.Fatalf("lookup(%d, %d) = none, want %s", tc.epoch, tc.offset, tc.want.SegmentID)
		}
		want := *tc.want
		want.State = proto.CopySegmentFinished
		// The update's timestamp and custom metadata (none) replace the add's, as Kafka's
		// RemoteLogSegmentMetadata.createWithUpdates does.
		want.EventTimestampMs, want.CustomMetadata = 1700000000001, nil
		if got := decodeSegment(t, got.Record); !reflect.DeepEqual(&want, got) {
			t.Errorf("lookup(%d, %d) = %+v\nwant %+v", tc.epoch, tc.offset, got, &want)
		}
	}

	for _, tc := range []struct {
		epoch int32
		want  *int64
	}{{0, ptr(int64(149))}, {1, ptr(int64(199))}, {2, nil}} {
		got, err := h.client.HighestOffsetForEpoch(ctx, &rlmmv1.HighestOffsetForEpochRequest{TopicIdPartition: pb(tp0), LeaderEpoch: tc.epoch})
		if err != nil {
			t.Fatal(err)
		}
		if (got.Offset == nil) != (tc.want == nil) || (tc.want != nil && *got.Offset != *tc.want) {
			t.Errorf("HighestOffsetForEpoch(%d) = %v, want %v", tc.epoch, got.Offset, tc.want)
		}
	}

	for _, tc := range []struct {
		epoch int32
		want  int64
	}{{0, 2000}, {1, 1000}, {2, 0}} {
		got, err := h.client.RemoteLogSize(ctx, &rlmmv1.RemoteLogSizeRequest{TopicIdPartition: pb(tp0), LeaderEpoch: tc.epoch})
		if err != nil || got.SizeBytes != tc.want {
			t.Errorf("RemoteLogSize(%d) = %v, %v; want %d", tc.epoch, got, err, tc.want)
		}
	}

	// Only s1 has a transaction index.
	next, err := h.client.NextSegmentWithTxnIndex(ctx, &rlmmv1.NextSegmentWithTxnIndexRequest{TopicIdPartition: pb(tp0), Epoch: 0, Offset: 10})
	if err != nil || next.Record == nil || decodeSegment(t, next.Record).SegmentID != s1.SegmentID {
		t.Fatalf("NextSegmentWithTxnIndex = %v, %v; want %s", next, err, s1.SegmentID)
	}
	next, err = h.client.NextSegmentWithTxnIndex(ctx, &rlmmv1.NextSegmentWithTxnIndexRequest{TopicIdPartition: pb(tp0), Epoch: 1, Offset: 200})
	if err != nil || next.Record != nil {
		t.Fatalf("NextSegmentWithTxnIndex past the end = %v, %v; want none", next, err)
	}

	all, err := list(t, h.client, &rlmmv1.ListRemoteLogSegmentsRequest{TopicIdPartition: pb(tp0)})
	if err != nil || !sameIDs(flat(all), s0, s1) {
		t.Fatalf("list all = %v, %v", flat(all), err)
	}
	ep1, err := list(t, h.client, &rlmmv1.ListRemoteLogSegmentsRequest{TopicIdPartition: pb(tp0), LeaderEpoch: ptr(int32(1))})
	if err != nil || !sameIDs(flat(ep1), s1) {
		t.Fatalf("list epoch 1 = %v, %v", flat(ep1), err)
	}

	// A segment's deletion through updates, then the partition's.
	for _, st := range []proto.SegmentState{proto.DeleteSegmentStarted, proto.DeleteSegmentFinished} {
		if _, err := h.client.UpdateRemoteLogSegmentMetadata(ctx, &rlmmv1.UpdateRemoteLogSegmentMetadataRequest{Record: encode(t, update(s0, st))}); err != nil {
			t.Fatal(err)
		}
	}
	all, err = list(t, h.client, &rlmmv1.ListRemoteLogSegmentsRequest{TopicIdPartition: pb(tp0)})
	if err != nil || !sameIDs(flat(all), s1) {
		t.Fatalf("list after deleting s0 = %v, %v", flat(all), err)
	}
	del := &proto.PartitionDeleteMetadata{TopicIDPartition: tp0, BrokerID: 1, EventTimestampMs: 1700000000002, State: proto.DeletePartitionMarked}
	if _, err := h.client.PutRemotePartitionDeleteMetadata(ctx, &rlmmv1.PutRemotePartitionDeleteMetadataRequest{Record: encode(t, del)}); err != nil {
		t.Fatal(err)
	}
	if st, ok, err := h.m.PartitionDeleteState(tp0); err != nil || !ok || st != proto.DeletePartitionMarked {
		t.Fatalf("partition-delete state after the RPC returned = %v %v %v", st, ok, err)
	}

	health, err := h.client.Health(ctx, &rlmmv1.HealthRequest{})
	if err != nil || !health.Serving || health.MetadataTopicPartitions != 5 || len(health.Partitions) != 1 ||
		health.Partitions[0].Partition != 2 || health.Partitions[0].AppliedOffset != 7 || health.Partitions[0].Halted {
		t.Fatalf("Health = %v, %v", health, err)
	}

	// Stopping the partition: it is not ready any more, and reads say not found.
	if _, err := h.client.OnStopPartitions(ctx, &rlmmv1.OnStopPartitionsRequest{Partitions: []*rlmmv1.TopicIdPartition{pb(tp0)}}); err != nil {
		t.Fatal(err)
	}
	ready, err := h.client.IsReady(ctx, &rlmmv1.IsReadyRequest{TopicIdPartition: pb(tp0)})
	if err != nil || ready.Ready || ready.Reason.GetKind() != rlmmv1.ErrorKind_ERROR_KIND_NOT_FOUND {
		t.Fatalf("IsReady after stop = %v, %v", ready, err)
	}
}

func ptr[T any](v T) *T { return &v }

func sameIDs(got []*proto.SegmentMetadata, want ...*proto.SegmentMetadata) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].SegmentID != want[i].SegmentID {
			return false
		}
	}
	return true
}

// TestListStreamsChunks: a list longer than a chunk arrives in chunks of the configured size,
// by start offset, and an empty partition gets no chunk.
func TestListStreamsChunks(t *testing.T) {
	c := newCluster(t)
	h := serveManager(t, newManager(t, c), WithListChunk(3))
	h.assign(t, tp0, tp1)
	var want []*proto.SegmentMetadata
	for i := int64(0); i < 10; i++ {
		epoch := int32(i / 5)
		md := segment(tp0, i*10, i*10+9, proto.EpochEntry{Epoch: epoch, StartOffset: i * 10})
		h.add(t, md, true)
		want = append(want, md)
	}
	chunks, err := list(t, h.client, &rlmmv1.ListRemoteLogSegmentsRequest{TopicIdPartition: pb(tp0)})
	if err != nil {
		t.Fatal(err)
	}
	if sizes := chunkSizes(chunks); !slices.Equal(sizes, []int{3, 3, 3, 1}) {
		t.Fatalf("chunk sizes %v, want [3 3 3 1]", sizes)
	}
	if !sameIDs(flat(chunks), want...) {
		t.Fatalf("list = %v, want by start offset", flat(chunks))
	}
	chunks, err = list(t, h.client, &rlmmv1.ListRemoteLogSegmentsRequest{TopicIdPartition: pb(tp0), LeaderEpoch: ptr(int32(1))})
	if err != nil || !slices.Equal(chunkSizes(chunks), []int{3, 2}) || !sameIDs(flat(chunks), want[5:]...) {
		t.Fatalf("list epoch 1 = %v %v, %v", chunkSizes(chunks), flat(chunks), err)
	}
	chunks, err = list(t, h.client, &rlmmv1.ListRemoteLogSegmentsRequest{TopicIdPartition: pb(tp1)})
	if err != nil || len(chunks) != 0 {
		t.Fatalf("list of an empty partition = %d chunks, %v; want none", len(chunks), err)
	}
}

func chunkSizes(chunks [][]*proto.SegmentMetadata) []int {
	var out []int
	for _, c := range chunks {
		out = append(out, len(c))
	}
	return out
}
