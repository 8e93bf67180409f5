package remover

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/stratalog/strata/proto"
)

// Group shares the metadata partitions among standalone removers through a Kafka consumer
// group on the metadata topic: each member owns the partitions the group assigns it, and when a
// member leaves or dies the group reassigns them, so another remover resumes its work. The
// group only assigns; the member never fetches or commits through it.
type Group struct {
	r      *Remover
	client *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
	log    *zap.Logger

	closeOnce sync.Once

	mu  sync.Mutex
	err error
}

// DefaultGroup is the consumer group removers join when none is named.
const DefaultGroup = "strata-remote-partition-remover"

// JoinGroup makes r a member of consumer group group (DefaultGroup when empty) on the cluster
// opts reach (at least kgo.SeedBrokers; TLS and SASL options as the manager's). Assignments and
// revocations call r.Own and r.Disown. Close leaves the group, which hands r's partitions to the
// other members at once.
func JoinGroup(r *Remover, group string, opts ...kgo.Opt) (*Group, error) {
	if group == "" {
		group = DefaultGroup
	}
	g := &Group{r: r, done: make(chan struct{}), log: r.log}
	own := func(ctx context.Context, _ *kgo.Client, assigned map[string][]int32) {
		mps := assigned[proto.TopicName]
		if len(mps) == 0 {
			return
		}
		if err := r.Own(ctx, mps...); err != nil {
			g.setErr(fmt.Errorf("remover: taking assigned partitions %v: %w", mps, err))
			g.log.Error("remover: taking assigned partitions", zap.Int32s("partitions", mps), zap.Error(err))
		}
	}
	disown := func(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
		if mps := revoked[proto.TopicName]; len(mps) > 0 {
			r.Disown(mps...)
		}
	}
	all := append([]kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(proto.TopicName),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(own),
		kgo.OnPartitionsRevoked(disown),
		kgo.OnPartitionsLost(disown),
		// A member that stops heartbeating loses its partitions after this long.
		kgo.SessionTimeout(10 * time.Second),
	}, opts...)
	cl, err := kgo.NewClient(append(all, r.groupClientMetrics()...)...)
	if err != nil {
		return nil, fmt.Errorf("remover: joining group %s: %w", group, err)
	}
	// The group is used for assignment only: nothing of the topic is fetched through it.
	cl.PauseFetchTopics(proto.TopicName)
	g.client = cl
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	go g.poll(ctx)
	return g, nil
}

// poll keeps the member's group session serviced; with the topic paused it returns no records.
func (g *Group) poll(ctx context.Context) {
	defer close(g.done)
	for {
		fetches := g.client.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return
		}
		fetches.EachError(func(t string, p int32, err error) {
			g.log.Warn("remover group", zap.String("topic", t), zap.Int32("partition", p), zap.Error(err))
		})
	}
}

func (g *Group) setErr(err error) {
	g.mu.Lock()
	g.err = err
	g.mu.Unlock()
}

// Err returns the last error taking an assignment, nil if none.
func (g *Group) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// Close leaves the group (revoking, and so disowning, every partition) and waits for the
// member's goroutine. It returns nil; a second Close does nothing and returns nil.
func (g *Group) Close() error {
	g.closeOnce.Do(func() {
		g.cancel()
		<-g.done
		g.client.LeaveGroup()
		g.client.Close()
	})
	return nil
}
