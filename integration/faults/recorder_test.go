//go:build faults

package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/rlmm"
)

// slack is what a call may take beyond its deadline before the suite counts it as having
// outlived it: time to notice the deadline and unwind, on a loaded 2-core machine.
const slack = time.Second

// call is one recorded call: a metadata write (AddSegment, UpdateSegment, PutPartitionDelete),
// or a tier workflow (Copy, Delete) made of several.
type call struct {
	Op    string        `json:"op"`
	TP    string        `json:"tp"`
	MP    int32         `json:"mp"`
	Value []byte        `json:"value,omitempty"` // a write's record, as Strata encodes it
	Start time.Time     `json:"start"`
	Dur   time.Duration `json:"dur"`
	Bound time.Duration `json:"bound"` // the caller's deadline (for a write: or the consume wait, if earlier) plus slack
	Err   string        `json:"err,omitempty"`
}

func (c call) write() bool { return c.Value != nil }

// recorder keeps the calls of a scenario; a Strata process the suite kills writes them to a file
// as they end (see child_test.go), so that what it acknowledged before it died is known.
type recorder struct {
	mu    sync.Mutex
	calls []call
	out   *json.Encoder
}

func (r *recorder) add(c call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
	if r.out != nil {
		_ = r.out.Encode(c) // one write(2) per call: a SIGKILL loses only the call in flight
	}
}

func (r *recorder) snapshot() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

// load adds the calls a child process recorded in file.
func (r *recorder) load(file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var bad error
	for sc.Scan() {
		if bad != nil {
			// Only the last line of a killed writer may be cut short.
			return bad
		}
		var c call
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			bad = fmt.Errorf("%s: %w", file, err)
			continue
		}
		r.add(c)
	}
	return sc.Err()
}

// time runs fn as one call of op on tp and records it, bounded by ctx's deadline plus slack.
func (r *recorder) time(ctx context.Context, op string, tp proto.TopicIDPartition, fn func() error) error {
	bound := time.Duration(0)
	if dl, ok := ctx.Deadline(); ok {
		bound = time.Until(dl) + slack
	}
	start := time.Now()
	err := fn()
	c := call{Op: op, TP: tp.String(), MP: -1, Start: start, Dur: time.Since(start), Bound: bound}
	if err != nil {
		c.Err = err.Error()
	}
	r.add(c)
	return err
}

// recMeta is a metadata manager whose writes are recorded. It implements tier.Metadata and
// remover.Metadata.
type recMeta struct {
	*rlmm.Manager
	rec         *recorder
	consumeWait time.Duration
}

func (m recMeta) write(ctx context.Context, op string, tp proto.TopicIDPartition, r proto.Record, fn func() error) error {
	val, err := proto.Encode(r)
	if err != nil {
		return err
	}
	// A write returns by the earlier of the caller's deadline and the consume wait.
	limit := m.consumeWait
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < limit {
		limit = time.Until(dl)
	}
	start := time.Now()
	err = fn()
	c := call{Op: op, TP: tp.String(), MP: proto.MetadataPartition(tp, m.NumPartitions()), Value: val,
		Start: start, Dur: time.Since(start), Bound: limit + slack}
	if err != nil {
		c.Err = err.Error()
	}
	m.rec.add(c)
	return err
}

func (m recMeta) AddSegment(ctx context.Context, md *proto.SegmentMetadata) error {
	return m.write(ctx, "AddSegment", md.SegmentID.TopicIDPartition, md, func() error { return m.Manager.AddSegment(ctx, md) })
}

func (m recMeta) UpdateSegment(ctx context.Context, u *proto.SegmentMetadataUpdate) error {
	return m.write(ctx, "UpdateSegment", u.SegmentID.TopicIDPartition, u, func() error { return m.Manager.UpdateSegment(ctx, u) })
}

func (m recMeta) PutPartitionDelete(ctx context.Context, d *proto.PartitionDeleteMetadata) error {
	return m.write(ctx, "PutPartitionDelete", d.TopicIDPartition, d, func() error { return m.Manager.PutPartitionDelete(ctx, d) })
}
