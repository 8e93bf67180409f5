// Package workload is what both sides of Strata's benchmark run: the user partitions, the layout
// of their segments in __remote_log_metadata, the lookup keys, the publish sizes, the file that
// hands all of it to each side's process, and the producer that fills the topic once before any
// side runs.
//
// The same file drives Strata's side (package strataside) and Kafka's side (the Java program in
// bench/kafka-rlmm), so that the two cannot run different workloads by accident.
package workload

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/stratalog/strata/proto"
)

// The shape of the user partitions: 100 topics of 10 partitions, each topic with a random id,
// spread over every partition of the metadata topic.
const (
	Topics             = 100
	PartitionsPerTopic = 10
	// SegmentSpan is the number of offsets each segment covers: segment j of every partition
	// holds offsets [j*SegmentSpan, (j+1)*SegmentSpan).
	SegmentSpan = 1000
	// BytesPerOffset gives each segment a size (SegmentSpan*BytesPerOffset bytes); the figure
	// plays no part in any measure.
	BytesPerOffset = 100
	// BrokerID is the broker id written in the events the fill produces.
	BrokerID = 1
)

// Spec is one benchmark's workload.
type Spec struct {
	Brokers            string // bootstrap servers, host:port[,host:port...]
	MetadataPartitions int32  // partitions of __remote_log_metadata
	// SegmentsPerPartition segments per user partition, each written as COPY_SEGMENT_STARTED then
	// COPY_SEGMENT_FINISHED: the topic holds Events() events.
	SegmentsPerPartition int
	SegmentSpan          int64
	Lookups              int    // measured segment-for-offset lookups
	LookupWarmup         int    // lookups run before them, not measured
	LookupSeed           uint64 // seed of LookupKeys
	PublishSegments      int    // measured segments of the publish workload
	PublishWarmup        int    // segments published before them, not measured
	Partitions           []proto.TopicIDPartition
}

// Params are the sizes a run chooses; the rest of a Spec follows from them.
type Params struct {
	Brokers            string
	MetadataPartitions int32
	Events             int64 // events in the topic; a multiple of 2*Topics*PartitionsPerTopic
	Lookups            int
	LookupWarmup       int
	LookupSeed         uint64
	PublishSegments    int
	PublishWarmup      int
}

// New makes a workload with fresh random topic ids. Every metadata partition receives events
// from some user partition, so that a manager assigned all of them reads the whole topic.
func New(p Params) (*Spec, error) {
	n := int64(Topics * PartitionsPerTopic)
	if p.Events <= 0 || p.Events%(2*n) != 0 {
		return nil, fmt.Errorf("workload: events must be a positive multiple of %d (2 events per segment, %d user partitions), got %d", 2*n, n, p.Events)
	}
	if p.MetadataPartitions <= 0 {
		return nil, fmt.Errorf("workload: metadata partitions must be positive, got %d", p.MetadataPartitions)
	}
	s := &Spec{
		Brokers:              p.Brokers,
		MetadataPartitions:   p.MetadataPartitions,
		SegmentsPerPartition: int(p.Events / (2 * n)),
		SegmentSpan:          SegmentSpan,
		Lookups:              p.Lookups,
		LookupWarmup:         p.LookupWarmup,
		LookupSeed:           p.LookupSeed,
		PublishSegments:      p.PublishSegments,
		PublishWarmup:        p.PublishWarmup,
	}
	covered := map[int32]bool{}
	for t := range Topics {
		id := proto.NewUUID()
		for i := range PartitionsPerTopic {
			tp := proto.TopicIDPartition{TopicID: id, Topic: fmt.Sprintf("bench-%03d", t), Partition: int32(i)}
			s.Partitions = append(s.Partitions, tp)
			covered[proto.MetadataPartition(tp, s.MetadataPartitions)] = true
		}
	}
	if len(covered) != int(s.MetadataPartitions) {
		return nil, fmt.Errorf("workload: %d user partitions map to only %d of %d metadata partitions; run again",
			len(s.Partitions), len(covered), s.MetadataPartitions)
	}
	return s, s.validate()
}

// Events is the number of events the filled topic holds.
func (s *Spec) Events() int64 {
	return 2 * int64(len(s.Partitions)) * int64(s.SegmentsPerPartition)
}

// OffsetsPerPartition is the number of offsets a user partition's segments cover; lookups draw
// offsets below it.
func (s *Spec) OffsetsPerPartition() int64 { return s.SegmentSpan * int64(s.SegmentsPerPartition) }

// SegmentStart is the first offset of the segment holding offset.
func (s *Spec) SegmentStart(offset int64) int64 { return offset - offset%s.SegmentSpan }

// NewSegment returns the COPY_SEGMENT_STARTED metadata of segment j of tp, with a fresh segment
// id: offsets [j*SegmentSpan, (j+1)*SegmentSpan), all of them in leader epoch 0.
func (s *Spec) NewSegment(tp proto.TopicIDPartition, j int, eventTimeMs int64) *proto.SegmentMetadata {
	start := int64(j) * s.SegmentSpan
	end := start + s.SegmentSpan - 1
	return &proto.SegmentMetadata{
		SegmentID:          proto.SegmentID{TopicIDPartition: tp, ID: proto.NewUUID()},
		StartOffset:        start,
		EndOffset:          end,
		BrokerID:           BrokerID,
		MaxTimestampMs:     end,
		EventTimestampMs:   eventTimeMs,
		LeaderEpochs:       []proto.EpochEntry{{Epoch: 0, StartOffset: start}},
		SegmentSizeInBytes: int32(s.SegmentSpan * BytesPerOffset),
		State:              proto.CopySegmentStarted,
		TxnIndexEmpty:      true,
	}
}

// Finished is the COPY_SEGMENT_FINISHED update of md.
func Finished(md *proto.SegmentMetadata, eventTimeMs int64) *proto.SegmentMetadataUpdate {
	return &proto.SegmentMetadataUpdate{
		SegmentID:        md.SegmentID,
		BrokerID:         BrokerID,
		EventTimestampMs: eventTimeMs,
		State:            proto.CopySegmentFinished,
	}
}

func (s *Spec) validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf("workload: "+format, args...))
		}
	}
	check(s.Brokers != "" && !strings.ContainsAny(s.Brokers, " \t\n"), "brokers must be one non-empty word, got %q", s.Brokers)
	check(s.MetadataPartitions > 0, "metadata partitions must be positive, got %d", s.MetadataPartitions)
	check(s.SegmentsPerPartition > 0, "segments per partition must be positive, got %d", s.SegmentsPerPartition)
	check(s.SegmentSpan > 0, "segment span must be positive, got %d", s.SegmentSpan)
	check(s.Lookups > 0, "lookups must be positive, got %d", s.Lookups)
	check(s.LookupWarmup >= 0, "lookup warmup must not be negative, got %d", s.LookupWarmup)
	check(s.PublishSegments > 0, "publish segments must be positive, got %d", s.PublishSegments)
	check(s.PublishWarmup >= 0, "publish warmup must not be negative, got %d", s.PublishWarmup)
	check(len(s.Partitions) > 0, "no user partitions")
	for _, tp := range s.Partitions {
		check(tp.Topic != "" && !strings.ContainsAny(tp.Topic, " \t\n"), "topic names must be one non-empty word, got %q", tp.Topic)
	}
	return errors.Join(errs...)
}

// The file format, read by both sides: comment lines start with '#'; a setting is "key value";
// each user partition is "partition TOPIC_ID TOPIC PARTITION" with Kafka's base64 topic id.
// "events" is redundant (2 x partitions x segments per partition) and checked by both readers.

// Write writes s in the file format.
func (s *Spec) Write(w io.Writer) error {
	if err := s.validate(); err != nil {
		return err
	}
	b := bufio.NewWriter(w)
	fmt.Fprintf(b, "# strata-bench workload: settings, then one user partition a line\n")
	for _, kv := range s.settings() {
		fmt.Fprintf(b, "%s %s\n", kv[0], kv[1])
	}
	for _, tp := range s.Partitions {
		fmt.Fprintf(b, "partition %s %s %d\n", tp.TopicID, tp.Topic, tp.Partition)
	}
	return b.Flush()
}

func (s *Spec) settings() [][2]string {
	return [][2]string{
		{"brokers", s.Brokers},
		{"metadata.partitions", strconv.Itoa(int(s.MetadataPartitions))},
		{"segments.per.partition", strconv.Itoa(s.SegmentsPerPartition)},
		{"segment.span", strconv.FormatInt(s.SegmentSpan, 10)},
		{"events", strconv.FormatInt(s.Events(), 10)},
		{"lookups", strconv.Itoa(s.Lookups)},
		{"lookup.warmup", strconv.Itoa(s.LookupWarmup)},
		{"lookup.seed", strconv.FormatUint(s.LookupSeed, 10)},
		{"publish.segments", strconv.Itoa(s.PublishSegments)},
		{"publish.warmup", strconv.Itoa(s.PublishWarmup)},
	}
}

// Read reads a workload written by Write. Unknown, missing or repeated settings are errors, each
// naming its line.
func Read(r io.Reader) (*Spec, error) {
	settings := map[string]string{}
	var s Spec
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if f[0] == "partition" {
			tp, err := ParsePartition(f[1:])
			if err != nil {
				return nil, fmt.Errorf("workload: line %d: %w", n, err)
			}
			s.Partitions = append(s.Partitions, tp)
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("workload: line %d: want \"key value\", got %q", n, line)
		}
		if _, dup := settings[f[0]]; dup {
			return nil, fmt.Errorf("workload: line %d: %s set twice", n, f[0])
		}
		settings[f[0]] = f[1]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("workload: reading: %w", err)
	}
	var events int64
	var errs []error
	num := func(key string, bits int, set func(int64)) {
		v, ok := settings[key]
		if !ok {
			errs = append(errs, fmt.Errorf("workload: missing setting %s", key))
			return
		}
		delete(settings, key)
		n, err := strconv.ParseInt(v, 10, bits)
		if err != nil {
			errs = append(errs, fmt.Errorf("workload: %s: %w", key, err))
			return
		}
		set(n)
	}
	if v, ok := settings["brokers"]; ok {
		s.Brokers = v
		delete(settings, "brokers")
	} else {
		errs = append(errs, errors.New("workload: missing setting brokers"))
	}
	num("metadata.partitions", 32, func(n int64) { s.MetadataPartitions = int32(n) })
	num("segments.per.partition", 32, func(n int64) { s.SegmentsPerPartition = int(n) })
	num("segment.span", 64, func(n int64) { s.SegmentSpan = n })
	num("events", 64, func(n int64) { events = n })
	num("lookups", 32, func(n int64) { s.Lookups = int(n) })
	num("lookup.warmup", 32, func(n int64) { s.LookupWarmup = int(n) })
	num("publish.segments", 32, func(n int64) { s.PublishSegments = int(n) })
	num("publish.warmup", 32, func(n int64) { s.PublishWarmup = int(n) })
	if v, ok := settings["lookup.seed"]; ok {
		delete(settings, "lookup.seed")
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("workload: lookup.seed: %w", err))
		}
		s.LookupSeed = seed
	} else {
		errs = append(errs, errors.New("workload: missing setting lookup.seed"))
	}
	for k := range settings {
		errs = append(errs, fmt.Errorf("workload: unknown setting %s", k))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	if events != s.Events() {
		return nil, fmt.Errorf("workload: events %d is not 2 x %d partitions x %d segments", events, len(s.Partitions), s.SegmentsPerPartition)
	}
	return &s, nil
}

// ParsePartition parses the three fields of a partition: Kafka's base64 topic id, the topic
// name, the partition number.
func ParsePartition(f []string) (proto.TopicIDPartition, error) {
	if len(f) != 3 {
		return proto.TopicIDPartition{}, fmt.Errorf("want TOPIC_ID TOPIC PARTITION, got %q", strings.Join(f, " "))
	}
	id, err := proto.ParseUUID(f[0])
	if err != nil {
		return proto.TopicIDPartition{}, fmt.Errorf("topic id %q: %w", f[0], err)
	}
	p, err := strconv.ParseInt(f[2], 10, 32)
	if err != nil || p < 0 {
		return proto.TopicIDPartition{}, fmt.Errorf("partition %q: not a partition number", f[2])
	}
	return proto.TopicIDPartition{TopicID: id, Topic: f[1], Partition: int32(p)}, nil
}
