package rlmm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/stratalog/strata/proto"
)

// SkipsTopic is the compacted topic where an operator's decision to skip a record of the
// metadata topic is kept, so that every Strata manager of the cluster applies it: those halted
// at that record now, and those that reach it later (a broker restarted with an empty store, a
// new broker, the CLI). Its one partition holds one record per skip, keyed
// "<metadata topic id>/<partition>/<offset>": a topic deleted and created again has another id,
// so a skip never applies to the wrong record. The value is JSON: {"reason": ..., "at": <ms>}.
const SkipsTopic = "__strata_skips"

// skipValue is a record of SkipsTopic.
type skipValue struct {
	Reason string `json:"reason"`
	At     int64  `json:"at"` // Unix milliseconds, when SkipEverywhere was called
}

type skipKey struct {
	mp     int32
	offset int64
}

func skipRecordKey(topicID proto.UUID, mp int32, offset int64) string {
	return topicID.String() + "/" + strconv.FormatInt(int64(mp), 10) + "/" + strconv.FormatInt(offset, 10)
}

// parseSkipRecordKey returns the skip a key names, and false for a key of another metadata
// topic or one that does not parse.
func parseSkipRecordKey(topicID proto.UUID, key []byte) (skipKey, bool) {
	parts := strings.Split(string(key), "/")
	if len(parts) != 3 || parts[0] != topicID.String() {
		return skipKey{}, false
	}
	mp, err1 := strconv.ParseInt(parts[1], 10, 32)
	off, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || mp < 0 || off < 0 {
		return skipKey{}, false
	}
	return skipKey{int32(mp), off}, true
}

// skipsRecheck is how often a manager with a halted metadata partition reads SkipsTopic again,
// for a skip recorded after it halted.
const skipsRecheck = 2 * time.Second

// initSkips creates SkipsTopic when it is missing and the manager may create topics (with the
// metadata topic's replication factor and min ISR). New only warns when it fails: a manager that
// finds no topic reads none, and SkipEverywhere creates it.
func (m *Manager) initSkips(ctx context.Context, known *kadm.Metadata) error {
	if m.cfg.noCreateTopic {
		return nil
	}
	if known != nil {
		if d, ok := known.Topics[SkipsTopic]; ok && d.Err == nil {
			return nil
		}
	}
	exists, err := m.skipsTopicExists(ctx)
	if err != nil || exists {
		return err
	}
	return m.createSkipsTopic(ctx)
}

func (m *Manager) skipsTopicExists(ctx context.Context) (bool, error) {
	reqCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	details, err := m.adm.ListTopics(reqCtx, SkipsTopic)
	if err != nil {
		return false, fmt.Errorf("rlmm: describing %s: %w", SkipsTopic, err)
	}
	d, ok := details[SkipsTopic]
	if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
		return false, nil
	}
	if d.Err != nil {
		return false, fmt.Errorf("rlmm: describing %s: %w", SkipsTopic, d.Err)
	}
	return true, nil
}

func (m *Manager) createSkipsTopic(ctx context.Context) error {
	reqCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	compact, minISR := "compact", strconv.Itoa(m.cfg.minISR)
	resp, err := m.adm.CreateTopic(reqCtx, 1, m.cfg.replicationFactor,
		map[string]*string{"cleanup.policy": &compact, "min.insync.replicas": &minISR}, SkipsTopic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("rlmm: creating %s: %w", SkipsTopic, err)
	}
	if err == nil {
		m.log.Info("created the skips topic", zap.String("topic", SkipsTopic))
	}
	return nil
}

// readSkips reads SkipsTopic whole, with a client of its own that lives for the read, and
// returns the skips of this metadata topic it holds. A missing or empty topic holds none. The
// topic is read only while a metadata partition is halted (see checkSkips), so that the
// manager's own consumer never fetches it: its fetches stay those of the metadata topic.
func (m *Manager) readSkips(ctx context.Context) (map[skipKey]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ends, err := m.adm.ListEndOffsets(ctx, SkipsTopic)
	if err != nil {
		return nil, fmt.Errorf("rlmm: listing the end offset of %s: %w", SkipsTopic, err)
	}
	out := map[skipKey]string{}
	e, ok := ends.Lookup(SkipsTopic, 0)
	if !ok || errors.Is(e.Err, kerr.UnknownTopicOrPartition) || (e.Err == nil && e.Offset == 0) {
		return out, nil
	}
	if e.Err != nil {
		return nil, fmt.Errorf("rlmm: listing the end offset of %s: %w", SkipsTopic, e.Err)
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(m.cfg.brokers...),
		kgo.ClientID(m.cfg.clientID),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{SkipsTopic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(100 * time.Millisecond),
	}
	if m.cfg.tls != nil {
		opts = append(opts, kgo.DialTLSConfig(m.cfg.tls))
	}
	if m.cfg.sasl != nil {
		opts = append(opts, kgo.SASL(m.cfg.sasl))
	}
	cl, err := kgo.NewClient(append(opts, m.cfg.clientOpts...)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	for next := int64(0); next < e.Offset; {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("rlmm: reading %s up to offset %d: %w", SkipsTopic, e.Offset, ctx.Err())
		}
		fetches.EachRecord(func(r *kgo.Record) {
			next = max(next, r.Offset+1)
			k, ok := parseSkipRecordKey(m.identity.TopicID, r.Key)
			if !ok {
				return
			}
			if r.Value == nil { // a tombstone withdraws a skip
				delete(out, k)
				return
			}
			var v skipValue
			if err := json.Unmarshal(r.Value, &v); err != nil {
				m.log.Warn("a record of the skips topic does not decode; ignored", zap.String("key", string(r.Key)),
					zap.Int64("offset", r.Offset), zap.Error(err))
				return
			}
			out[k] = v.Reason
		})
	}
	return out, nil
}

// halted returns the halts of the metadata partitions halted now, or nil when none is, which
// is what the consumer loop finds after almost every poll: no map then.
func (m *Manager) halted() map[int32]*HaltError {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out map[int32]*HaltError
	for mp, st := range m.mps {
		if st.halt != nil {
			if out == nil {
				out = map[int32]*HaltError{}
			}
			out[mp] = st.halt
		}
	}
	return out
}

// checkSkips applies the skips recorded in SkipsTopic to the metadata partitions halted at
// them. Run by the consumer loop after each poll: it reads the topic when a partition has halted
// since the last read, and every skipsRecheck while one stays halted, for a skip recorded
// later. A read that fails is logged and tried again then.
func (m *Manager) checkSkips(ctx context.Context) {
	halts := m.halted()
	if len(halts) == 0 {
		return
	}
	m.mu.Lock()
	fresh := false
	for mp, h := range halts {
		if m.skipsChecked[mp] != h {
			fresh = true
		}
	}
	due := fresh || time.Since(m.skipsReadAt) >= skipsRecheck
	m.mu.Unlock()
	if !due {
		return
	}
	skips, err := m.readSkips(ctx)
	m.mu.Lock()
	m.skipsReadAt = time.Now()
	m.mu.Unlock()
	if err != nil {
		m.log.Warn("reading the skips topic", zap.Error(err))
		return
	}
	for mp, h := range halts {
		reason, ok := skips[skipKey{mp, h.Offset}]
		if !ok {
			continue
		}
		err := m.Skip(mp, h.Offset, "recorded in "+SkipsTopic+": "+reason)
		if err != nil && !errors.Is(err, ErrInvalidArgument) { // not halted there any more: done
			m.log.Error("applying a skip recorded in the skips topic failed", zap.Int32("partition", mp),
				zap.Int64("offset", h.Offset), zap.Error(err))
		}
	}
	m.mu.Lock()
	for mp, h := range halts {
		m.skipsChecked[mp] = h
	}
	m.broadcastLocked()
	m.mu.Unlock()
}

// SkipsRead reports whether every metadata partition halted now has been checked against the
// skips recorded in SkipsTopic since it halted: until then a recorded skip may still lift it. A
// tool that reads a cluster once waits for it before taking a halt as final.
func (m *Manager) SkipsRead() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for mp, st := range m.mps {
		if st.halt != nil && m.skipsChecked[mp] != st.halt {
			return false
		}
	}
	return true
}

// SkipEverywhere records, in SkipsTopic, the operator's decision to skip the record at offset
// of metadata partition mp, with reason: every Strata manager of the cluster skips it, this
// one included, whether it is halted at that record now or reaches it later. It creates the
// topic if missing. It returns once the record is written (acknowledged by all in-sync
// replicas) and, when this manager is halted at that record, once it has skipped it here too.
// Unlike Skip it does not require this manager to be halted there: the halted broker may be
// another.
func (m *Manager) SkipEverywhere(ctx context.Context, mp int32, offset int64, reason string) error {
	switch {
	case mp < 0 || mp >= m.cfg.numPartitions:
		return fmt.Errorf("%w: metadata partition %d: the topic has %d", ErrInvalidArgument, mp, m.cfg.numPartitions)
	case offset < 0:
		return fmt.Errorf("%w: offset %d is negative", ErrInvalidArgument, offset)
	case strings.TrimSpace(reason) == "":
		return fmt.Errorf("%w: a skip needs a reason", ErrInvalidArgument)
	}
	if m.isClosed() {
		return ErrClosed
	}
	exists, err := m.skipsTopicExists(ctx)
	if err != nil {
		return err
	}
	if !exists {
		if err := m.createSkipsTopic(ctx); err != nil {
			return err
		}
	}
	v, err := json.Marshal(skipValue{Reason: reason, At: time.Now().UnixMilli()})
	if err != nil {
		return err
	}
	rec := &kgo.Record{Topic: SkipsTopic, Partition: 0, Key: []byte(skipRecordKey(m.identity.TopicID, mp, offset)), Value: v}
	if err := m.client.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("rlmm: recording the skip of %s-%d offset %d in %s: %w", proto.TopicName, mp, offset, SkipsTopic, err)
	}
	m.log.Warn("operator recorded a skip for every node", zap.Int32("partition", mp), zap.Int64("offset", offset),
		zap.String("reason", reason), zap.Int64("skips.offset", rec.Offset))
	m.mu.Lock()
	delete(m.skipsChecked, mp) // read the topic again now
	m.mu.Unlock()
	m.wakeLoop()
	// Wait for this manager to apply it, if it is halted there.
	for {
		m.mu.Lock()
		st, ok := m.mps[mp]
		halted := ok && st.halt != nil && st.halt.Offset == offset
		ch := m.changed
		closed := m.closed
		m.mu.Unlock()
		if closed {
			return ErrClosed
		}
		if !halted {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("rlmm: the skip is recorded, but this manager has not applied it yet: %w", ctx.Err())
		case <-ch:
		}
	}
}
