package rlmm

import (
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/proto"
)

// failListOffsets makes every ListOffsets request to c fail with code for every partition, and
// counts the requests.
func failListOffsets(c interface {
	ControlKey(int16, func(kmsg.Request) (kmsg.Response, error, bool))
	KeepControl()
}, code int16, count *atomic.Int32) {
	c.ControlKey(int16(kmsg.ListOffsets), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		count.Add(1)
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, rt := range req.(*kmsg.ListOffsetsRequest).Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
}

// Listing the metadata partitions' offsets stops at an error no retry can fix and returns it:
// AssignPartitions does not spin until its context ends.
func TestListOffsetsPermanentErrorsReturnAtOnce(t *testing.T) {
	for _, c := range []struct {
		name string
		err  *kerr.Error
	}{
		{"authorization", kerr.TopicAuthorizationFailed},
		{"unknown topic", kerr.UnknownTopicOrPartition},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := newCluster(t)
			m := newManager(t, cl, t.TempDir())
			var requests atomic.Int32
			failListOffsets(cl, c.err.Code, &requests)
			start := time.Now()
			err := m.AssignPartitions(ctxT(t), []proto.TopicIDPartition{tp0}, nil)
			if !errors.Is(err, c.err) {
				t.Fatalf("AssignPartitions: %v, want %v", err, c.err)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("AssignPartitions returned after %s, retrying what cannot succeed", took)
			}
			if n := requests.Load(); n > 2 {
				t.Errorf("%d ListOffsets requests, want the error returned after the first answer", n)
			}
		})
	}
}

// A retriable error is asked again until it clears.
func TestListOffsetsRetriesTransientErrors(t *testing.T) {
	cl := newCluster(t)
	m := newManager(t, cl, t.TempDir())
	var requests atomic.Int32
	cl.ControlKey(int16(kmsg.ListOffsets), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if requests.Add(1) > 3 {
			return nil, nil, false
		}
		cl.KeepControl()
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, rt := range req.(*kmsg.ListOffsetsRequest).Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.LeaderNotAvailable.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	assignReady(t, m, []proto.TopicIDPartition{tp0}, nil)
}

// listingHooks records, in order, each ListOffsets request a client writes ("w") and each answer
// it reads ("r").
type listingHooks struct {
	mu     sync.Mutex
	events []string
}

func (h *listingHooks) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == int16(kmsg.ListOffsets) && err == nil {
		h.mu.Lock()
		h.events = append(h.events, "w")
		h.mu.Unlock()
	}
}

func (h *listingHooks) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == int16(kmsg.ListOffsets) && err == nil {
		h.mu.Lock()
		h.events = append(h.events, "r")
		h.mu.Unlock()
	}
}

// An assignment's wait for the cluster is one round trip: the start and end offsets are listed
// at once (before, the end offsets were asked for once the start offsets had come back, in every
// assignment, a restart's included). The first listing is held: the second is sent meanwhile.
func TestAssignListsOffsetsAtOnce(t *testing.T) {
	cl := newCluster(t)
	hooks := &listingHooks{}
	m := newManager(t, cl, t.TempDir(), WithClientOptions(kgo.WithHooks(hooks)))
	var held atomic.Bool
	cl.ControlKey(int16(kmsg.ListOffsets), func(kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		if held.CompareAndSwap(false, true) {
			time.Sleep(500 * time.Millisecond)
		}
		return nil, nil, false
	})
	if err := m.AssignPartitions(ctxT(t), []proto.TopicIDPartition{tp0}, nil); err != nil {
		t.Fatal(err)
	}
	hooks.mu.Lock()
	got := strings.Join(hooks.events, "")
	hooks.mu.Unlock()
	if !strings.HasPrefix(got, "ww") {
		t.Errorf("ListOffsets writes and reads: %q, want both requests written before the first answer (ww...)", got)
	}
	if err := m.Ready(tp0); err != nil {
		t.Errorf("Ready after the assignment of an empty partition: %v", err)
	}
}

// connectHooks records the brokers a client connects to, by node id (seed brokers have
// negative ids).
type connectHooks struct{ leaders chan int32 }

func (h connectHooks) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err == nil && meta.NodeID >= 0 {
		select {
		case h.leaders <- meta.NodeID:
		default:
		}
	}
}

// New connects to the metadata partitions' leaders on its own, while it finishes: the first
// assignment's offset listing, which goes to them, does not wait for a connection after New
// (every restart's path to ready). New's own requests go to a seed broker.
func TestNewConnectsToTheLeaders(t *testing.T) {
	cl := newCluster(t)
	dir := t.TempDir()
	newManager(t, cl, dir).Close() // creates the metadata topic: a restart finds it
	hooks := connectHooks{leaders: make(chan int32, 1)}
	newManager(t, cl, dir, WithClientOptions(kgo.WithHooks(hooks)))
	select {
	case <-hooks.leaders:
	case <-time.After(10 * time.Second):
		t.Fatal("no connection to a metadata partition's leader without an assignment")
	}
}

// The client settings the manager's correctness depends on are not overridden by
// WithClientOptions: a record lands in the partition Kafka's partitioner picks, acknowledged by
// all in-sync replicas, whatever the caller passes; and a client without idempotent writes is
// refused.
func TestClientOptionsCannotOverrideStrataSettings(t *testing.T) {
	c := newCluster(t)
	m := newManager(t, c, t.TempDir(), WithConsumeWait(5*time.Second),
		WithClientOptions(kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.RequiredAcks(kgo.LeaderAck())))
	assignReady(t, m, []proto.TopicIDPartition{tp0, tp3}, nil)
	for i := range 4 {
		for _, tp := range []proto.TopicIDPartition{tp0, tp3} {
			// A record in another partition than the partitioner's would never be applied
			// where the write waits for it.
			if err := m.AddSegment(ctxT(t), segment(tp, int64(i)*10, int64(i)*10+9)); err != nil {
				t.Fatalf("write %d of %s: %v", i, tp, err)
			}
		}
	}
	if v := m.client.OptValue(kgo.RequiredAcks); v != kgo.AllISRAcks() {
		t.Errorf("acks = %v, want all", v)
	}

	_, err := New(ctxT(t), WithBootstrapServers(c.ListenAddrs()...), WithCacheDir(t.TempDir()), WithMetadataPartitions(5),
		WithClientOptions(kgo.DisableIdempotentWrite()))
	if !errors.Is(err, ErrConfig) {
		t.Errorf("New with idempotence disabled: %v, want ErrConfig", err)
	}
}

// New reports every invalid option at once, each naming its property.
func TestInvalidOptionsReportedTogether(t *testing.T) {
	_, err := New(ctxT(t), WithMetadataPartitions(0), WithMinISR(-1), WithConsumeWait(0), WithRetention(0))
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("err = %v, want ErrConfig", err)
	}
	for _, prop := range []string{"bootstrap servers", PropNumPartitions, PropMinISR, PropConsumeWaitMs, PropRetentionMs, "cache directory"} {
		if !strings.Contains(err.Error(), prop) {
			t.Errorf("err = %v; does not name %s", err, prop)
		}
	}
}
