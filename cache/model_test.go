package cache

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/stratalog/strata/proto"
)

var (
	modelSeeds  = flag.Int("cache.seeds", 0, "seeds of the reference-model test (default 4, with -race 3, with -short 2)")
	modelEvents = flag.Int("cache.events", 0, "records per seed of the reference-model test (default 3000, with -race 1000, with -short 500)")
	modelSeed   = flag.Uint64("cache.seed", 0, "run the reference-model test with this one seed")
)

// model is the reference the store is compared with: Kafka's RemotePartitionMetadataStore,
// RemoteLogMetadataCache and RemoteLogLeaderEpochState written out as plainly as possible, in
// memory, with the checks Strata adds (partition-delete transitions, one metadata partition per
// user partition, validation of add records, cleanup on re-add).
type model struct {
	next    map[int32]int64
	parts   map[tpPrefix]*modelPart
	deleted map[tpPrefix]bool // partitions whose DELETE_PARTITION_FINISHED was applied
}

type modelPart struct {
	name      string
	mp        int32
	segs      map[proto.UUID]proto.SegmentMetadata
	epochs    map[int32]*modelEpoch
	hasDelete bool
	delState  proto.PartitionDeleteState
}

type modelEpoch struct {
	offsetToID map[int64]proto.UUID
	unref      map[proto.UUID]bool
	hasHighest bool
	highest    int64
}

func newModel() *model {
	return &model{next: map[int32]int64{}, parts: map[tpPrefix]*modelPart{}, deleted: map[tpPrefix]bool{}}
}

func (p *modelPart) epoch(e int32) *modelEpoch {
	st := p.epochs[e]
	if st == nil {
		st = &modelEpoch{offsetToID: map[int64]proto.UUID{}, unref: map[proto.UUID]bool{}}
		p.epochs[e] = st
	}
	return st
}

func (m *model) apply(entries []Entry) Result {
	var res Result
	for _, e := range entries {
		if e.Offset < m.next[e.Partition] {
			res.Duplicates++
			continue
		}
		m.next[e.Partition] = e.Offset + 1
		tp, _ := proto.UserPartition(e.Record)
		reason := m.applyOne(e)
		if reason == 0 {
			res.Applied++
		} else {
			res.Dropped = append(res.Dropped, Drop{Partition: e.Partition, Offset: e.Offset, UserPartition: tp, Reason: reason})
		}
	}
	return res
}

func (m *model) part(e Entry, tp proto.TopicIDPartition) (*modelPart, DropReason) {
	p := m.parts[prefixOf(tp)]
	if p != nil && (p.mp != e.Partition || p.name != tp.Topic) {
		return nil, PartitionMismatch
	}
	if p == nil && m.deleted[prefixOf(tp)] {
		return nil, PartitionDeleted
	}
	return p, 0
}

func (m *model) create(e Entry, tp proto.TopicIDPartition) *modelPart {
	p := m.parts[prefixOf(tp)]
	if p == nil {
		p = &modelPart{name: tp.Topic, mp: e.Partition, segs: map[proto.UUID]proto.SegmentMetadata{}, epochs: map[int32]*modelEpoch{}}
		m.parts[prefixOf(tp)] = p
	}
	return p
}

// modelValidAdd is the model's own statement of which add records apply, written from Kafka's
// RemoteLogSegmentMetadata constructor and the rules of cache/doc.go rather than taken from the
// store's code, so that a mistake there shows as a difference: the state is
// COPY_SEGMENT_STARTED; the start offset is not negative and not past the end; there is at
// least one leader epoch; the epochs ascend strictly; and none starts past the end offset.
func modelValidAdd(r *proto.SegmentMetadata) bool {
	if r.State != proto.CopySegmentStarted || r.StartOffset < 0 || r.EndOffset < r.StartOffset || len(r.LeaderEpochs) == 0 {
		return false
	}
	prev := r.LeaderEpochs[0]
	for i, e := range r.LeaderEpochs {
		if (i > 0 && e.Epoch <= prev.Epoch) || e.StartOffset > r.EndOffset {
			return false
		}
		prev = e
	}
	return true
}

func (m *model) applyOne(e Entry) DropReason {
	switch r := e.Record.(type) {
	case *proto.SegmentMetadata:
		if !modelValidAdd(r) {
			return InvalidRecord
		}
		p, reason := m.part(e, r.SegmentID.TopicIDPartition)
		if reason != 0 {
			return reason
		}
		old, exists := proto.SegmentMetadata{}, false
		if p != nil {
			old, exists = p.segs[r.SegmentID.ID]
		}
		if exists && old.State != proto.CopySegmentStarted {
			return InvalidTransition
		}
		p = m.create(e, r.SegmentID.TopicIDPartition)
		if exists {
			for _, oe := range old.LeaderEpochs {
				if !slices.ContainsFunc(r.LeaderEpochs, func(e proto.EpochEntry) bool { return e.Epoch == oe.Epoch }) {
					delete(p.epoch(oe.Epoch).unref, r.SegmentID.ID)
				}
			}
		}
		for _, ee := range r.LeaderEpochs {
			p.epoch(ee.Epoch).unref[r.SegmentID.ID] = true
		}
		seg := *r
		seg.Unknown = nil
		p.segs[r.SegmentID.ID] = seg
		return 0

	case *proto.SegmentMetadataUpdate:
		if !r.State.Valid() {
			return InvalidRecord
		}
		p, reason := m.part(e, r.SegmentID.TopicIDPartition)
		if reason != 0 {
			return reason
		}
		if p == nil {
			return UnknownSegment
		}
		seg, ok := p.segs[r.SegmentID.ID]
		if !ok {
			return UnknownSegment
		}
		if !proto.ValidSegmentTransition(seg.State, true, r.State) {
			return InvalidTransition
		}
		if r.State == proto.CopySegmentStarted {
			return InvalidRecord
		}
		seg.BrokerID, seg.EventTimestampMs, seg.CustomMetadata, seg.State = r.BrokerID, r.EventTimestampMs, r.CustomMetadata, r.State
		id := r.SegmentID.ID
		for i, ee := range seg.LeaderEpochs {
			st := p.epoch(ee.Epoch)
			switch r.State {
			case proto.CopySegmentFinished:
				end := proto.EndOffsetForEpoch(seg.LeaderEpochs, i, seg.EndOffset)
				for {
					lastKey, found := int64(0), false
					for k := range st.offsetToID {
						if !found || k > lastKey {
							lastKey, found = k, true
						}
					}
					if !found || lastKey < ee.StartOffset || (st.hasHighest && st.highest > end) {
						break
					}
					st.unref[st.offsetToID[lastKey]] = true
					delete(st.offsetToID, lastKey)
				}
				st.offsetToID[ee.StartOffset] = id
				delete(st.unref, id)
				if !st.hasHighest || end > st.highest {
					st.hasHighest, st.highest = true, end
				}
			case proto.DeleteSegmentStarted:
				if cur, ok := st.offsetToID[ee.StartOffset]; ok && cur == id {
					delete(st.offsetToID, ee.StartOffset)
				}
				st.unref[id] = true
			case proto.DeleteSegmentFinished:
				delete(st.unref, id)
			}
		}
		if r.State == proto.DeleteSegmentFinished {
			delete(p.segs, id)
		} else {
			p.segs[id] = seg
		}
		return 0

	case *proto.PartitionDeleteMetadata:
		if !r.State.Valid() {
			return InvalidRecord
		}
		p, reason := m.part(e, r.TopicIDPartition)
		if reason != 0 {
			return reason
		}
		has := p != nil && p.hasDelete
		var from proto.PartitionDeleteState
		if has {
			from = p.delState
		}
		if !proto.ValidPartitionDeleteTransition(from, has, r.State) {
			return InvalidTransition
		}
		if r.State == proto.DeletePartitionFinished {
			delete(m.parts, prefixOf(r.TopicIDPartition))
			m.deleted[prefixOf(r.TopicIDPartition)] = true
			return 0
		}
		p = m.create(e, r.TopicIDPartition)
		p.hasDelete, p.delState = true, r.State
		return 0
	}
	return UnsupportedRecord
}

func (p *modelPart) withName(m proto.SegmentMetadata, tp proto.TopicIDPartition) proto.SegmentMetadata {
	m.SegmentID.TopicIDPartition = proto.TopicIDPartition{TopicID: tp.TopicID, Topic: p.name, Partition: tp.Partition}
	return m
}

func (p *modelPart) segmentFor(tp proto.TopicIDPartition, epoch int32, offset int64) (proto.SegmentMetadata, bool) {
	st := p.epochs[epoch]
	if st == nil {
		return proto.SegmentMetadata{}, false
	}
	floor, found := int64(0), false
	for k := range st.offsetToID {
		if k <= offset && (!found || k > floor) {
			floor, found = k, true
		}
	}
	if !found {
		return proto.SegmentMetadata{}, false
	}
	m := p.segs[st.offsetToID[floor]]
	end := m.EndOffset
	for _, e := range m.LeaderEpochs {
		if e.Epoch > epoch {
			end = e.StartOffset - 1
			break
		}
	}
	if offset > end {
		return proto.SegmentMetadata{}, false
	}
	return p.withName(m, tp), true
}

func (p *modelPart) epochSegments(tp proto.TopicIDPartition, epoch int32) []proto.SegmentMetadata {
	var out []proto.SegmentMetadata
	if st := p.epochs[epoch]; st != nil {
		for _, id := range st.offsetToID {
			out = append(out, p.withName(p.segs[id], tp))
		}
		for id := range st.unref {
			out = append(out, p.withName(p.segs[id], tp))
		}
	}
	sortByStart(out)
	return out
}

// gen produces random records for a few user partitions: mostly valid lifecycles, with
// overlapping and duplicate uploads, and every kind of invalid record mixed in.
type gen struct {
	r      *rand.Rand
	tps    []proto.TopicIDPartition
	mps    []int32 // metadata partition of each tp
	segs   [][]proto.SegmentID
	cursor []int64
	epoch  []int32
	next   map[int32]int64
	sent   map[int32][]Entry // every entry sent, by metadata partition, for re-delivery
}

func newGen(seed uint64) *gen {
	g := &gen{r: rand.New(rand.NewPCG(seed, 0x5eed)), next: map[int32]int64{}, sent: map[int32][]Entry{}}
	topics := []proto.UUID{{1: 1, 15: 1}, {1: 2, 15: 2}}
	for i := 0; i < 4; i++ {
		g.tps = append(g.tps, proto.TopicIDPartition{TopicID: topics[i/2], Topic: fmt.Sprintf("topic-%d", i/2), Partition: int32(i % 2)})
		g.mps = append(g.mps, int32(i%2))
		g.segs = append(g.segs, nil)
		g.cursor = append(g.cursor, 0)
		g.epoch = append(g.epoch, 0)
	}
	return g
}

func (g *gen) custom() []byte {
	switch g.r.IntN(3) {
	case 0:
		return nil
	case 1:
		return []byte{}
	}
	return []byte{byte(g.r.IntN(256)), byte(g.r.IntN(256))}
}

func (g *gen) newSegment(i int) *proto.SegmentMetadata {
	r := g.r
	tp := g.tps[i]
	if r.IntN(50) == 0 {
		tp.Topic = "renamed"
	}
	var id proto.SegmentID
	if len(g.segs[i]) > 0 && r.IntN(10) == 0 {
		id = g.segs[i][r.IntN(len(g.segs[i]))] // re-add
		id.TopicIDPartition = tp
	} else {
		id = proto.SegmentID{TopicIDPartition: tp, ID: proto.UUID{0: byte(i), 1: byte(r.IntN(256)), 2: byte(r.IntN(256)), 3: byte(r.IntN(256)), 15: 0xaa}}
		g.segs[i] = append(g.segs[i], id)
	}
	if r.IntN(4) == 0 && g.epoch[i] < 5 {
		g.epoch[i]++
	}
	start := g.cursor[i]
	if r.IntN(3) == 0 {
		start -= int64(r.IntN(60)) // an overlapping or duplicate upload
		if start < 0 {
			start = 0
		}
	}
	end := start + int64(r.IntN(60))
	g.cursor[i] = max(g.cursor[i], end+1)
	m := &proto.SegmentMetadata{
		SegmentID: id, StartOffset: start, EndOffset: end, BrokerID: int32(r.IntN(3)),
		MaxTimestampMs: int64(r.IntN(1000)), EventTimestampMs: int64(r.IntN(1000)),
		SegmentSizeInBytes: int32(r.IntN(5000)), CustomMetadata: g.custom(),
		State: proto.CopySegmentStarted, TxnIndexEmpty: r.IntN(3) != 0,
	}
	// One to three epochs inside [start, end], the first at start.
	ep, at := g.epoch[i]-int32(r.IntN(2)), start
	for n := 1 + r.IntN(3); n > 0 && at <= end; n-- {
		m.LeaderEpochs = append(m.LeaderEpochs, proto.EpochEntry{Epoch: max(ep, 0), StartOffset: at})
		ep++
		at += 1 + int64(r.IntN(40))
	}
	if r.IntN(40) == 0 {
		switch r.IntN(4) {
		case 0:
			m.State = proto.SegmentState(r.IntN(4))
		case 1:
			m.EndOffset = m.StartOffset - 1
		case 2:
			m.LeaderEpochs = nil
		case 3:
			m.LeaderEpochs = append(m.LeaderEpochs, proto.EpochEntry{Epoch: 0, StartOffset: end})
		}
	}
	return m
}

func (g *gen) record() (proto.Record, int) {
	r := g.r
	i := r.IntN(len(g.tps))
	switch k := r.IntN(100); {
	case k < 35 || len(g.segs[i]) == 0:
		return g.newSegment(i), i
	case k < 85:
		id := g.segs[i][r.IntN(len(g.segs[i]))]
		if r.IntN(30) == 0 {
			id.ID[15] = 0xbb // unknown
		}
		st := proto.SegmentState(1 + r.IntN(3))
		if r.IntN(10) == 0 {
			st = proto.SegmentState(r.IntN(6) - 1)
		}
		return &proto.SegmentMetadataUpdate{SegmentID: id, BrokerID: int32(r.IntN(3)), EventTimestampMs: int64(r.IntN(1000)), CustomMetadata: g.custom(), State: st}, i
	case k < 97:
		st := proto.PartitionDeleteState(r.IntN(3))
		if r.IntN(3) == 0 {
			st = proto.DeletePartitionMarked // keep partitions alive more often than not
		}
		if r.IntN(20) == 0 {
			st = 3
		}
		return &proto.PartitionDeleteMetadata{TopicIDPartition: g.tps[i], BrokerID: 1, EventTimestampMs: int64(r.IntN(1000)), State: st}, i
	default:
		return &proto.SegmentMetadataSnapshot{SegmentUUID: proto.UUID{15: 0xcc}, State: proto.CopySegmentFinished}, i
	}
}

// batch returns the next Apply call: up to 12 new records, sometimes after a re-delivery of
// records already sent.
func (g *gen) batch() []Entry {
	var out []Entry
	if g.r.IntN(10) == 0 {
		mp := int32(g.r.IntN(2))
		if sent := g.sent[mp]; len(sent) > 0 {
			from := g.r.IntN(len(sent))
			out = append(out, sent[from:min(len(sent), from+1+g.r.IntN(5))]...)
		}
	}
	for n := 1 + g.r.IntN(12); n > 0; n-- {
		rec, i := g.record()
		mp := g.mps[i]
		if g.r.IntN(50) == 0 {
			mp = 1 - mp // from the wrong metadata partition
		}
		off := g.next[mp]
		if g.r.IntN(20) == 0 {
			off += int64(1 + g.r.IntN(3)) // a gap in the topic
		}
		g.next[mp] = off + 1
		e := Entry{Partition: mp, Offset: off, Record: rec}
		g.sent[mp] = append(g.sent[mp], e)
		out = append(out, e)
	}
	return out
}

func (g *gen) epochRange() []int32 {
	return []int32{-1, 0, 1, 2, 3, 4, 5, 6}
}

func sameResult(got, want Result) bool {
	if got.Applied != want.Applied || got.Duplicates != want.Duplicates || len(got.Dropped) != len(want.Dropped) {
		return false
	}
	for i, d := range got.Dropped {
		w := want.Dropped[i]
		if d.Partition != w.Partition || d.Offset != w.Offset || d.UserPartition != w.UserPartition || d.Reason != w.Reason || d.Err == nil {
			return false
		}
	}
	return true
}

// focus names what a comparison covers: the user partitions an Apply touched and, in each,
// the epochs its records named. A nil focus covers everything.
type focus map[tpPrefix]*focusPart

type focusPart struct {
	all    bool
	epochs map[int32]bool
}

// touched returns the focus of entries, read from the model before they are applied to it.
func touched(m *model, entries []Entry) focus {
	f := focus{}
	for _, e := range entries {
		tp, ok := proto.UserPartition(e.Record)
		if !ok {
			continue
		}
		p := prefixOf(tp)
		fp := f[p]
		if fp == nil {
			fp = &focusPart{epochs: map[int32]bool{}}
			f[p] = fp
		}
		var id proto.UUID
		switch r := e.Record.(type) {
		case *proto.SegmentMetadata:
			id = r.SegmentID.ID
			for _, ee := range r.LeaderEpochs {
				fp.epochs[ee.Epoch] = true
			}
		case *proto.SegmentMetadataUpdate:
			id = r.SegmentID.ID
		default:
			fp.all = true
		}
		if mp := m.parts[p]; mp != nil {
			for _, ee := range mp.segs[id].LeaderEpochs {
				fp.epochs[ee.Epoch] = true
			}
		}
	}
	return f
}

// compare runs the queries of the focus on store and model and reports the first difference.
func compare(s *Store, m *model, g *gen, f focus) error {
	diff := func(what string, got, want any) error {
		return fmt.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
	}
	offsets, err := s.Offsets()
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(offsets, m.next) && !(len(offsets) == 0 && len(m.next) == 0) {
		return diff("Offsets", offsets, m.next)
	}
	infos, err := s.Partitions()
	if err != nil {
		return err
	}
	var wantInfos []PartitionInfo
	for p, mp := range m.parts {
		row := partRow{name: mp.name, mp: mp.mp, hasDelete: mp.hasDelete, delState: mp.delState}
		for _, seg := range mp.segs {
			row.counts[seg.State]++
			row.bytes += int64(seg.SegmentSizeInBytes)
		}
		wantInfos = append(wantInfos, row.info(p))
	}
	sort.Slice(wantInfos, func(i, j int) bool {
		a, b := prefixOf(wantInfos[i].Partition), prefixOf(wantInfos[j].Partition)
		return bytes.Compare(a[:], b[:]) < 0
	})
	if !reflect.DeepEqual(infos, wantInfos) {
		return diff("Partitions", infos, wantInfos)
	}
	for _, tp := range g.tps {
		fp := f[prefixOf(tp)]
		if f != nil && fp == nil {
			continue
		}
		mp := m.parts[prefixOf(tp)]
		known := func(what string, err error) error {
			switch {
			case mp == nil && !errors.Is(err, ErrNotFound):
				return fmt.Errorf("%s %s: %v, want ErrNotFound", what, tp, err)
			case mp != nil && err != nil:
				return fmt.Errorf("%s %s: %w", what, tp, err)
			}
			return nil
		}
		segs, err := s.Segments(tp)
		if err := known("Segments", err); err != nil || mp == nil {
			if err != nil {
				return err
			}
			continue
		}
		var wantSegs []proto.SegmentMetadata
		for _, seg := range mp.segs {
			wantSegs = append(wantSegs, mp.withName(seg, tp))
		}
		sortByStart(wantSegs)
		if !reflect.DeepEqual(segs, wantSegs) {
			return diff("Segments "+tp.String(), segs, wantSegs)
		}
		st, ok, err := s.PartitionDeleteState(tp)
		if err != nil || ok != mp.hasDelete || st != mp.delState {
			return diff("PartitionDeleteState "+tp.String(), fmt.Sprint(st, ok, err), fmt.Sprint(mp.delState, mp.hasDelete))
		}
		for _, epoch := range g.epochRange() {
			if f != nil && !fp.all && !fp.epochs[epoch] {
				continue
			}
			est := mp.epochs[epoch]
			h, ok, err := s.HighestOffsetForEpoch(tp, epoch)
			wantOK := est != nil && est.hasHighest
			if err != nil || ok != wantOK || (ok && h != est.highest) {
				return diff(fmt.Sprintf("HighestOffsetForEpoch %s %d", tp, epoch), fmt.Sprint(h, ok, err), est)
			}
			list, err := s.SegmentsForEpoch(tp, epoch)
			want := mp.epochSegments(tp, epoch)
			if err != nil || !reflect.DeepEqual(list, want) {
				return diff(fmt.Sprintf("SegmentsForEpoch %s %d (%v)", tp, epoch, err), list, want)
			}
			size, err := s.RemoteLogSizeForEpoch(tp, epoch)
			var wantSize int64
			for _, w := range want {
				wantSize += int64(w.SegmentSizeInBytes)
			}
			if err != nil || size != wantSize {
				return diff(fmt.Sprintf("RemoteLogSizeForEpoch %s %d", tp, epoch), fmt.Sprint(size, err), wantSize)
			}
			// Probe every epoch start and end of the epoch's segments, their neighbours, and
			// a few offsets at random.
			var probes []int64
			for _, w := range want {
				for i, e := range w.LeaderEpochs {
					end := proto.EndOffsetForEpoch(w.LeaderEpochs, i, w.EndOffset)
					probes = append(probes, e.StartOffset-1, e.StartOffset, end, end+1)
				}
			}
			// Each Apply touches few segments; a sample keeps the cost per step flat as the
			// epochs grow, and over thousands of steps every boundary gets probed.
			g.r.Shuffle(len(probes), func(i, j int) { probes[i], probes[j] = probes[j], probes[i] })
			probes = probes[:min(len(probes), 8)]
			for i := 0; i < 3; i++ {
				probes = append(probes, g.r.Int64N(g.cursor[0]+g.cursor[1]+g.cursor[2]+g.cursor[3]+10))
			}
			for _, off := range probes {
				got, ok, err := s.SegmentFor(tp, epoch, off)
				want, wantOK := mp.segmentFor(tp, epoch, off)
				if err != nil || ok != wantOK || !reflect.DeepEqual(got, want) {
					return diff(fmt.Sprintf("SegmentFor %s %d %d (%v)", tp, epoch, off, err), got, want)
				}
			}
			// SegmentForRange answers as SegmentFor, over an interval exactly as wide as the
			// answer holds: the same answer at both ends, another just outside.
			for _, off := range probes[:3] {
				got, ok, err := s.SegmentForRange(tp, epoch, off)
				want, wantOK := mp.segmentFor(tp, epoch, off)
				if err != nil || ok != wantOK || !reflect.DeepEqual(got.Segment, want) && ok {
					return diff(fmt.Sprintf("SegmentForRange %s %d %d (%v)", tp, epoch, off, err), got.Segment, want)
				}
				if !ok {
					continue
				}
				same := func(o int64) bool {
					m, ok := mp.segmentFor(tp, epoch, o)
					return ok && m.SegmentID == want.SegmentID
				}
				if got.Lo > off || got.Hi < off || !same(got.Lo) || !same(got.Hi) ||
					got.Lo > math.MinInt64 && same(got.Lo-1) || got.Hi < math.MaxInt64 && same(got.Hi+1) {
					return fmt.Errorf("SegmentForRange %s %d %d: [%d, %d] is not the interval of %v", tp, epoch, off, got.Lo, got.Hi, want.SegmentID)
				}
			}
			for _, off := range probes[len(probes)-3:] {
				got, ok, err := s.NextSegmentWithTxnIndex(tp, epoch, off)
				want, wantOK := mp.segmentFor(tp, epoch, off)
				for wantOK && want.TxnIndexEmpty {
					want, wantOK = mp.segmentFor(tp, epoch, want.EndOffset+1)
				}
				if !wantOK {
					want = proto.SegmentMetadata{}
				}
				if err != nil || ok != wantOK || !reflect.DeepEqual(got, want) {
					return diff(fmt.Sprintf("NextSegmentWithTxnIndex %s %d %d (%v)", tp, epoch, off, err), got, want)
				}
			}
		}
		var total int64
		for _, w := range wantSegs {
			total += int64(w.SegmentSizeInBytes)
		}
		if size, err := s.RemoteLogSize(tp); err != nil || size != total {
			return diff("RemoteLogSize "+tp.String(), fmt.Sprint(size, err), total)
		}
		sent := g.segs[slices.Index(g.tps, tp)]
		for range min(len(sent), 6) {
			id := sent[g.r.IntN(len(sent))]
			got, ok, err := s.Segment(id)
			want, wantOK := mp.segs[id.ID]
			if wantOK {
				want = mp.withName(want, tp)
			}
			if err != nil || ok != wantOK || !reflect.DeepEqual(got, want) {
				return diff("Segment "+id.String(), fmt.Sprint(got, ok, err), want)
			}
		}
	}
	return nil
}

// TestReferenceModel applies random sequences of valid and invalid records to the store and to
// the model, compares every query after every Apply, and at the end checks the store's
// invariants and that reopening it changes nothing.
func TestReferenceModel(t *testing.T) {
	seeds, events := 4, 3000
	switch {
	case testing.Short():
		seeds, events = 2, 500
	case raceEnabled:
		seeds, events = 3, 1000
	}
	if *modelSeeds > 0 {
		seeds = *modelSeeds
	}
	if *modelEvents > 0 {
		events = *modelEvents
	}
	first := uint64(1)
	if *modelSeed != 0 {
		first, seeds = *modelSeed, 1
	}
	for seed := first; seed < first+uint64(seeds); seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			// SegmentFor's answer cache at its default size, at a size that holds a few
			// ranges (so that eviction runs all the time), and off.
			lookupCache := []int64{DefaultLookupCacheSize, 4 << 10, 0}[seed%3]
			fs := vfs.NewMem()
			s := openOn(t, fs, WithLookupCacheSize(lookupCache))
			m, g := newModel(), newGen(seed)
			for n, step := 0, 0; n < events; step++ {
				entries := g.batch()
				n += len(entries)
				got, err := s.Apply(entries)
				if err != nil {
					t.Fatalf("step %d: Apply: %v", step, err)
				}
				f := touched(m, entries)
				if step%10 == 0 {
					f = nil // now and then, everything: a bug may reach beyond what a step touched
				}
				want := m.apply(entries)
				if !sameResult(got, want) {
					t.Fatalf("step %d: Apply(%v):\n got  %+v\n want %+v", step, entries, got, want)
				}
				if err := compare(s, m, g, f); err != nil {
					t.Fatalf("step %d, after Apply(%v): %v", step, entries, err)
				}
			}
			if err := compare(s, m, g, nil); err != nil {
				t.Fatalf("at the end: %v", err)
			}
			mustCheck(t, s)
			before := dump(t, s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openOn(t, fs, WithLookupCacheSize(lookupCache))
			if after := dump(t, s); after != before {
				t.Fatalf("reopened store differs:\n%s\n---\n%s", before, after)
			}
			if err := compare(s, m, g, nil); err != nil {
				t.Fatalf("after reopen: %v", err)
			}
		})
	}
}
