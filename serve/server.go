package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	rlmmv1 "github.com/stratalog/strata/api/rlmm/v1"
	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rlmm"
)

// Defaults of the options.
const (
	DefaultGracePeriod = 10 * time.Second
	DefaultListChunk   = 500
	DefaultCallTimeout = 2 * time.Minute
	// listChunkBytes bounds a chunk's size well under gRPC's 4 MiB default message limit.
	listChunkBytes = 1 << 20
)

// Option configures New.
type Option interface{ apply(*Server) }

type optionFunc func(*Server)

func (f optionFunc) apply(s *Server) { f(s) }

// WithLogger sets the logger. Default zap.NewNop().
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(s *Server) {
		if l != nil {
			s.log = l
		}
	})
}

// WithVersion sets the version Health reports.
func WithVersion(v string) Option { return optionFunc(func(s *Server) { s.version = v }) }

// WithGracePeriod bounds how long a stop waits for calls in flight (a write waits up to the
// consume wait for its record) before cancelling them. Default 10s.
func WithGracePeriod(d time.Duration) Option {
	return optionFunc(func(s *Server) { s.grace = d })
}

// WithListChunk sets how many records a ListRemoteLogSegments chunk holds at most. Default 500.
func WithListChunk(n int) Option {
	return optionFunc(func(s *Server) {
		if n > 0 {
			s.chunk = n
		}
	})
}

// WithCallTimeout bounds a call whose client set no deadline. Default 2 minutes. A write is
// bounded by the manager's consume wait as well; an assignment, which lists the metadata topic's
// offsets until Kafka answers, only by this.
func WithCallTimeout(d time.Duration) Option {
	return optionFunc(func(s *Server) {
		if d > 0 {
			s.callTimeout = d
		}
	})
}

// WithServerOptions appends options to the gRPC server: interceptors (metrics, tracing), limits.
func WithServerOptions(opts ...grpc.ServerOption) Option {
	return optionFunc(func(s *Server) { s.grpcOpts = append(s.grpcOpts, opts...) })
}

// Server serves one rlmm.Manager. Create it with New, or with NewStarting while the manager
// starts; run it with Serve.
type Server struct {
	rlmmv1.UnimplementedRemoteLogMetadataServiceServer

	// m and startErr are written once, before up closes; calls read them after it has (see
	// awaitManager).
	m        *rlmm.Manager
	startErr error
	up       chan struct{}
	upOnce   sync.Once

	log         *zap.Logger
	version     string
	grace       time.Duration
	callTimeout time.Duration
	chunk       int
	grpcOpts    []grpc.ServerOption
	stopping    atomic.Bool
	served      atomic.Bool
	// stop is closed when a stop begins: it ends the WatchReadiness streams, which would
	// otherwise hold a graceful stop for its whole grace period.
	stop chan struct{}
}

// New returns a server of m. It does not own m: close m after Serve returns.
func New(m *rlmm.Manager, opts ...Option) *Server {
	s := NewStarting(opts...)
	s.Started(m)
	return s
}

// NewStarting returns a server whose manager is still starting. Serve may run at once: clients
// connect, and each call waits, within its deadline, until Started hands the manager over (or
// a stop begins). A process that listens first, then starts its manager, lets its client's
// connection and first calls overlap the manager's start (its store opening, the cluster's
// first answers) instead of following it; no call is answered before the manager is up.
// StartFailed instead fails the waiting calls, and every later one, with Unavailable.
func NewStarting(opts ...Option) *Server {
	s := &Server{log: zap.NewNop(), grace: DefaultGracePeriod, callTimeout: DefaultCallTimeout, chunk: DefaultListChunk,
		up: make(chan struct{}), stop: make(chan struct{})}
	for _, o := range opts {
		if o != nil {
			o.apply(s)
		}
	}
	return s
}

// Started hands the server its manager: the calls waiting for it proceed. It does not own m:
// close m after Serve returns. Only the first of Started and StartFailed counts.
func (s *Server) Started(m *rlmm.Manager) {
	s.upOnce.Do(func() {
		s.m = m
		close(s.up)
	})
}

// StartFailed says the manager will not come: calls waiting for it, and every later one, fail
// with Unavailable naming err. Only the first of Started and StartFailed counts.
func (s *Server) StartFailed(err error) {
	if err == nil {
		err = errors.New("no reason given")
	}
	s.upOnce.Do(func() {
		s.startErr = err
		close(s.up)
	})
}

// awaitManager waits until the manager is handed over (nil), it failed to start, ctx ends or a
// stop begins (each an error status).
func (s *Server) awaitManager(ctx context.Context) error {
	select {
	case <-s.up:
	default:
		select {
		case <-s.up:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-s.stop:
			return status.Error(codes.Unavailable, "serve: stopping before the manager started")
		}
	}
	if s.startErr != nil {
		return status.Errorf(codes.Unavailable, "serve: the manager did not start: %v", s.startErr)
	}
	return nil
}

// Serve answers on lis until ctx ends, then stops gracefully: new calls are refused, calls in
// flight get the grace period, then are cancelled. It returns nil after a stop that ctx asked
// for, or the error that ended serving early; either way lis is closed and every goroutine the
// server started has ended. A Server serves once.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	if !s.served.CompareAndSwap(false, true) {
		lis.Close()
		return errors.New("serve: Serve called twice")
	}
	gs := grpc.NewServer(append([]grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.boundUnary),
		grpc.ChainStreamInterceptor(s.boundStream),
	}, s.grpcOpts...)...)
	rlmmv1.RegisterRemoteLogMetadataServiceServer(gs, s)

	done := make(chan error, 1)
	go func() { done <- gs.Serve(lis) }()
	s.log.Info("serving", zap.Stringer("address", lis.Addr()))

	select {
	case err := <-done:
		// Serve failed on its own (the listener broke): stop whatever is in flight.
		gs.Stop()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.stopping.Store(true)
	close(s.stop)
	s.log.Info("stopping", zap.Duration("grace", s.grace))
	stopped := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(stopped)
	}()
	t := time.NewTimer(s.grace)
	defer t.Stop()
	select {
	case <-stopped:
	case <-t.C:
		s.log.Warn("calls still in flight after the grace period: cancelling them", zap.Duration("grace", s.grace))
		gs.Stop()
		<-stopped
	}
	if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// untilStop returns ctx, also cancelled when a stop begins.
func (s *Server) untilStop(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// boundUnary gives a call without a deadline the call timeout, so that nothing waits forever,
// and holds it until the manager is up (see NewStarting).
func (s *Server) boundUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.callTimeout)
		defer cancel()
	}
	if err := s.awaitManager(ctx); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// boundStream is boundUnary for streams, but for WatchReadiness and WatchGenerations, which last until its client
// cancels it or the server stops.
func (s *Server) boundStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if _, ok := ss.Context().Deadline(); ok || info.FullMethod == rlmmv1.RemoteLogMetadataService_WatchReadiness_FullMethodName ||
		info.FullMethod == rlmmv1.RemoteLogMetadataService_WatchGenerations_FullMethodName {
		if err := s.awaitManager(ss.Context()); err != nil {
			return err
		}
		return handler(srv, ss)
	}
	ctx, cancel := context.WithTimeout(ss.Context(), s.callTimeout)
	defer cancel()
	if err := s.awaitManager(ctx); err != nil {
		return err
	}
	return handler(srv, &boundStream{ServerStream: ss, ctx: ctx})
}

type boundStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (b *boundStream) Context() context.Context { return b.ctx }

func topicIDPartition(p *rlmmv1.TopicIdPartition) (proto.TopicIDPartition, error) {
	if p == nil {
		return proto.TopicIDPartition{}, fmt.Errorf("%w: topic_id_partition is missing", errInvalid)
	}
	if len(p.TopicId) != len(proto.UUID{}) {
		return proto.TopicIDPartition{}, fmt.Errorf("%w: topic_id has %d bytes, want 16", errInvalid, len(p.TopicId))
	}
	if p.Partition < 0 {
		return proto.TopicIDPartition{}, fmt.Errorf("%w: partition %d is negative", errInvalid, p.Partition)
	}
	tp := proto.TopicIDPartition{Topic: p.Topic, Partition: p.Partition}
	copy(tp.TopicID[:], p.TopicId)
	return tp, nil
}

// topicIDPartitionPB is topicIDPartition's inverse.
func topicIDPartitionPB(tp proto.TopicIDPartition) *rlmmv1.TopicIdPartition {
	return &rlmmv1.TopicIdPartition{TopicId: tp.TopicID[:], Topic: tp.Topic, Partition: tp.Partition}
}

func topicIDPartitions(field string, ps []*rlmmv1.TopicIdPartition) ([]proto.TopicIDPartition, error) {
	out := make([]proto.TopicIDPartition, 0, len(ps))
	for i, p := range ps {
		tp, err := topicIDPartition(p)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", field, i, err)
		}
		out = append(out, tp)
	}
	return out, nil
}

// decode reads a request's record and checks it is of the type the RPC takes.
func decode[T proto.Record](b []byte) (T, error) {
	var zero T
	r, err := proto.Decode(b)
	if err != nil {
		return zero, fmt.Errorf("%w: record: %v", errInvalid, err)
	}
	t, ok := r.(T)
	if !ok {
		return zero, fmt.Errorf("%w: record is a %s, want a %s", errInvalid, r.TypeName(), zero.TypeName())
	}
	return t, nil
}

var (
	kafkaKind    = rlmmv1.ErrorKind_ERROR_KIND_KAFKA
	internalKind = rlmmv1.ErrorKind_ERROR_KIND_INTERNAL
)

// fail turns err into the status the RPC answers with.
func fail(err error, fallback rlmmv1.ErrorKind) error { return Status(err, fallback).Err() }

func (s *Server) AddRemoteLogSegmentMetadata(ctx context.Context, req *rlmmv1.AddRemoteLogSegmentMetadataRequest) (*rlmmv1.AddRemoteLogSegmentMetadataResponse, error) {
	md, err := decode[*proto.SegmentMetadata](req.GetRecord())
	if err == nil {
		err = s.m.AddSegment(ctx, md)
	}
	if err != nil {
		return nil, fail(err, kafkaKind)
	}
	return &rlmmv1.AddRemoteLogSegmentMetadataResponse{Generation: s.generation(md.SegmentID.TopicIDPartition)}, nil
}

func (s *Server) UpdateRemoteLogSegmentMetadata(ctx context.Context, req *rlmmv1.UpdateRemoteLogSegmentMetadataRequest) (*rlmmv1.UpdateRemoteLogSegmentMetadataResponse, error) {
	u, err := decode[*proto.SegmentMetadataUpdate](req.GetRecord())
	if err == nil {
		err = s.m.UpdateSegment(ctx, u)
	}
	if err != nil {
		return nil, fail(err, kafkaKind)
	}
	return &rlmmv1.UpdateRemoteLogSegmentMetadataResponse{Generation: s.generation(u.SegmentID.TopicIDPartition)}, nil
}

func (s *Server) PutRemotePartitionDeleteMetadata(ctx context.Context, req *rlmmv1.PutRemotePartitionDeleteMetadataRequest) (*rlmmv1.PutRemotePartitionDeleteMetadataResponse, error) {
	d, err := decode[*proto.PartitionDeleteMetadata](req.GetRecord())
	if err == nil {
		err = s.m.PutPartitionDelete(ctx, d)
	}
	if err != nil {
		return nil, fail(err, kafkaKind)
	}
	return &rlmmv1.PutRemotePartitionDeleteMetadataResponse{Generation: s.generation(d.TopicIDPartition)}, nil
}

// generation is tp's change generation now. A write reads it after its record is applied, so it
// is at least the generation the record's Apply left: a client that drops what it keeps older
// than it cannot answer from before the write.
func (s *Server) generation(tp proto.TopicIDPartition) *rlmmv1.Generation {
	stripe, gen := s.m.Generation(tp)
	return &rlmmv1.Generation{Stripe: uint32(stripe), Generation: gen}
}

// segmentReply encodes an optional segment for a reply.
func segmentReply(md proto.SegmentMetadata, ok bool, err error) ([]byte, error) {
	if err != nil || !ok {
		return nil, err
	}
	b, err := proto.Encode(&md)
	if err != nil {
		return nil, fmt.Errorf("serve: encoding segment %s: %w", md.SegmentID, err)
	}
	return b, nil
}

func (s *Server) RemoteLogSegmentMetadata(ctx context.Context, req *rlmmv1.RemoteLogSegmentMetadataRequest) (*rlmmv1.RemoteLogSegmentMetadataResponse, error) {
	tp, err := topicIDPartition(req.GetTopicIdPartition())
	if err != nil {
		return nil, fail(err, internalKind)
	}
	r, ok, err := s.m.SegmentForRange(tp, req.GetEpochForOffset(), req.GetOffset())
	b, err := segmentReply(r.Segment, ok, err)
	if err != nil {
		return nil, fail(err, internalKind)
	}
	resp := &rlmmv1.RemoteLogSegmentMetadataResponse{Record: b}
	if ok {
		resp.ValidFrom, resp.ValidTo = r.Lo, r.Hi
		resp.Generation = &rlmmv1.Generation{Stripe: uint32(r.Stripe), Generation: r.Generation}
	}
	return resp, nil
}

func (s *Server) NextSegmentWithTxnIndex(ctx context.Context, req *rlmmv1.NextSegmentWithTxnIndexRequest) (*rlmmv1.NextSegmentWithTxnIndexResponse, error) {
	tp, err := topicIDPartition(req.GetTopicIdPartition())
	if err != nil {
		return nil, fail(err, internalKind)
	}
	b, err := segmentReply(s.m.NextSegmentWithTxnIndex(tp, req.GetEpoch(), req.GetOffset()))
	if err != nil {
		return nil, fail(err, internalKind)
	}
	return &rlmmv1.NextSegmentWithTxnIndexResponse{Record: b}, nil
}

func (s *Server) HighestOffsetForEpoch(ctx context.Context, req *rlmmv1.HighestOffsetForEpochRequest) (*rlmmv1.HighestOffsetForEpochResponse, error) {
	tp, err := topicIDPartition(req.GetTopicIdPartition())
	if err != nil {
		return nil, fail(err, internalKind)
	}
	off, ok, err := s.m.HighestOffsetForEpoch(tp, req.GetLeaderEpoch())
	if err != nil {
		return nil, fail(err, internalKind)
	}
	resp := &rlmmv1.HighestOffsetForEpochResponse{}
	if ok {
		resp.Offset = &off
	}
	return resp, nil
}

func (s *Server) ListRemoteLogSegments(req *rlmmv1.ListRemoteLogSegmentsRequest, stream grpc.ServerStreamingServer[rlmmv1.ListRemoteLogSegmentsResponse]) error {
	tp, err := topicIDPartition(req.GetTopicIdPartition())
	if err != nil {
		return fail(err, internalKind)
	}
	var segs []proto.SegmentMetadata
	if req.LeaderEpoch != nil {
		segs, err = s.m.SegmentsForEpoch(tp, req.GetLeaderEpoch())
	} else {
		segs, err = s.m.Segments(tp)
	}
	if err != nil {
		return fail(err, internalKind)
	}
	chunk := &rlmmv1.ListRemoteLogSegmentsResponse{}
	size := 0
	for i := range segs {
		b, err := proto.Encode(&segs[i])
		if err != nil {
			return fail(fmt.Errorf("serve: encoding segment %s: %w", segs[i].SegmentID, err), internalKind)
		}
		if len(chunk.Records) > 0 && (len(chunk.Records) == s.chunk || size+len(b) > listChunkBytes) {
			if err := stream.Send(chunk); err != nil {
				return err
			}
			chunk, size = &rlmmv1.ListRemoteLogSegmentsResponse{}, 0
		}
		chunk.Records = append(chunk.Records, b)
		size += len(b)
	}
	if len(chunk.Records) > 0 {
		return stream.Send(chunk)
	}
	return nil
}

func (s *Server) OnPartitionLeadershipChanges(ctx context.Context, req *rlmmv1.OnPartitionLeadershipChangesRequest) (*rlmmv1.OnPartitionLeadershipChangesResponse, error) {
	leaders, err := topicIDPartitions("leader_partitions", req.GetLeaderPartitions())
	if err != nil {
		return nil, fail(err, kafkaKind)
	}
	followers, err := topicIDPartitions("follower_partitions", req.GetFollowerPartitions())
	if err != nil {
		return nil, fail(err, kafkaKind)
	}
	// An assignment waits on the cluster (it lists the metadata topic's offsets, retrying
	// until the call's deadline). A stop ends it at once rather than after the grace period:
	// the broker stopping this server is shutting down, its cluster often already gone, and
	// nothing is written before the offsets are known; Kafka's plugin tells its assignment
	// again to the next server.
	ctx, cancel := s.untilStop(ctx)
	defer cancel()
	if err := s.m.AssignPartitions(ctx, leaders, followers); err != nil {
		return nil, fail(err, kafkaKind)
	}
	return &rlmmv1.OnPartitionLeadershipChangesResponse{}, nil
}

func (s *Server) OnStopPartitions(ctx context.Context, req *rlmmv1.OnStopPartitionsRequest) (*rlmmv1.OnStopPartitionsResponse, error) {
	tps, err := topicIDPartitions("partitions", req.GetPartitions())
	if err != nil {
		return nil, fail(err, internalKind)
	}
	s.m.StopPartitions(tps...)
	return &rlmmv1.OnStopPartitionsResponse{}, nil
}

func (s *Server) RemoteLogSize(ctx context.Context, req *rlmmv1.RemoteLogSizeRequest) (*rlmmv1.RemoteLogSizeResponse, error) {
	tp, err := topicIDPartition(req.GetTopicIdPartition())
	if err != nil {
		return nil, fail(err, internalKind)
	}
	n, err := s.m.RemoteLogSizeForEpoch(tp, req.GetLeaderEpoch())
	if err != nil {
		return nil, fail(err, internalKind)
	}
	return &rlmmv1.RemoteLogSizeResponse{SizeBytes: n}, nil
}

func (s *Server) IsReady(ctx context.Context, req *rlmmv1.IsReadyRequest) (*rlmmv1.IsReadyResponse, error) {
	tp, err := topicIDPartition(req.GetTopicIdPartition())
	if err != nil {
		return nil, fail(err, internalKind)
	}
	err = s.m.Ready(tp)
	switch {
	case err == nil:
		return &rlmmv1.IsReadyResponse{Ready: true}, nil
	case errors.Is(err, rlmm.ErrClosed):
		return nil, fail(err, internalKind)
	}
	return &rlmmv1.IsReadyResponse{Reason: Detail(err, internalKind)}, nil
}

// WatchReadiness sends the readiness of every assigned partition, then each change of it. It
// reads the manager's readiness after each wake-up of Changed, taken before the read, so that no
// change is missed; a change and its reversal between two reads are not sent (the stream says
// how things are, as isReady would at that moment). It ends when the client cancels it (nil) or
// the server stops (Unavailable, which the client takes as: the server is going away).
func (s *Server) WatchReadiness(_ *rlmmv1.WatchReadinessRequest, stream grpc.ServerStreamingServer[rlmmv1.WatchReadinessResponse]) error {
	ctx := stream.Context()
	sent := map[proto.TopicIDPartition]bool{}
	for first := true; ; first = false {
		changed := s.m.Changed()
		now := s.m.Readiness()
		resp := &rlmmv1.WatchReadinessResponse{}
		for tp, ready := range now {
			if was, ok := sent[tp]; !ok || was != ready {
				resp.Partitions = append(resp.Partitions, &rlmmv1.WatchReadinessResponse_Partition{TopicIdPartition: topicIDPartitionPB(tp), Ready: ready})
				sent[tp] = ready
			}
		}
		for tp, was := range sent {
			if _, ok := now[tp]; !ok {
				if was {
					resp.Partitions = append(resp.Partitions, &rlmmv1.WatchReadinessResponse_Partition{TopicIdPartition: topicIDPartitionPB(tp), Ready: false})
				}
				delete(sent, tp)
			}
		}
		if first || len(resp.Partitions) > 0 {
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
		if done, err := s.awaitChange(ctx, changed); done {
			return err
		}
	}
}

// WatchGenerations sends every stripe's change generation, then each stripe whose generation
// grew. It reads them after each wake-up of GenerationsChanged, taken before the read, so that
// no change is missed; several changes between two reads go as one, with the newest
// generation, which is all a client needs (generations only grow). It ends as WatchReadiness.
func (s *Server) WatchGenerations(_ *rlmmv1.WatchGenerationsRequest, stream grpc.ServerStreamingServer[rlmmv1.WatchGenerationsResponse]) error {
	ctx := stream.Context()
	var sent, now []uint64
	for first := true; ; first = false {
		changed := s.m.GenerationsChanged()
		now = s.m.Generations(now[:0])
		resp := &rlmmv1.WatchGenerationsResponse{}
		for i, g := range now {
			if first || g != sent[i] {
				resp.Generations = append(resp.Generations, &rlmmv1.Generation{Stripe: uint32(i), Generation: g})
			}
		}
		sent = append(sent[:0], now...)
		if len(resp.Generations) > 0 {
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
		if done, err := s.awaitChange(ctx, changed); done {
			return err
		}
	}
}

func (s *Server) Health(ctx context.Context, req *rlmmv1.HealthRequest) (*rlmmv1.HealthResponse, error) {
	resp := &rlmmv1.HealthResponse{
		Serving:                 !s.stopping.Load(),
		Version:                 s.version,
		MetadataTopicPartitions: s.m.NumPartitions(),
	}
	for _, st := range s.m.Stats() {
		p := &rlmmv1.MetadataPartitionStatus{Partition: st.Partition, AppliedOffset: st.Applied, TargetOffset: st.Target}
		if st.Halt != nil {
			p.Halted, p.Halt = true, Detail(st.Halt, internalKind)
		}
		resp.Partitions = append(resp.Partitions, p)
	}
	return resp, nil
}

// awaitChange waits for changed to close (false), for the watcher to go (true, nil) or for a
// stop to begin (true, Unavailable): a stop ends a watch at once rather than holding the
// graceful stop for its grace period.
func (s *Server) awaitChange(ctx context.Context, changed <-chan struct{}) (done bool, err error) {
	select {
	case <-changed:
		return false, nil
	case <-ctx.Done():
		return true, nil
	case <-s.stop:
		return true, status.Error(codes.Unavailable, "serve: stopping")
	}
}
