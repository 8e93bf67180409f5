package workload

// LookupKeys draws the keys of the lookup workload: SplitMix64 from the workload's seed, two
// draws a key (the user partition's index, then the offset), each reduced modulo its range as an
// unsigned number. The Java side (bench/kafka-rlmm, LookupKeys.java) implements the same
// generator, so both sides look up the same keys in the same order.
type LookupKeys struct{ state uint64 }

// NewLookupKeys starts the sequence of seed.
func NewLookupKeys(seed uint64) *LookupKeys { return &LookupKeys{state: seed} }

// Next returns the next 64 random bits.
func (k *LookupKeys) Next() uint64 {
	k.state += 0x9E3779B97F4A7C15
	z := k.state
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// Below returns a value in [0, bound). REQUIRES: bound > 0.
func (k *LookupKeys) Below(bound int64) int64 { return int64(k.Next() % uint64(bound)) }

// Key is one lookup: the index of a user partition in Spec.Partitions and an offset.
type Key struct {
	Partition int
	Offset    int64
}

// NextKey draws the next lookup key of s.
func (s *Spec) NextKey(k *LookupKeys) Key {
	p := int(k.Below(int64(len(s.Partitions))))
	return Key{Partition: p, Offset: k.Below(s.OffsetsPerPartition())}
}

// LookupChecksum is the sum of the segment start offsets the measured lookups of s must find:
// each side reports the sum of what it found, and the two must equal this.
func (s *Spec) LookupChecksum() int64 {
	k := NewLookupKeys(s.LookupSeed)
	var sum int64
	for i := range s.LookupWarmup + s.Lookups {
		key := s.NextKey(k)
		if i >= s.LookupWarmup {
			sum += s.SegmentStart(key.Offset)
		}
	}
	return sum
}

// ConsumerSteps is how many lookups a consumer makes in one segment: it reads the segment from
// its start, a tenth of it a fetch, and a broker serving each fetch from remote storage asks
// for the segment of the fetch's offset.
const ConsumerSteps = 10

// ConsumerKeys draws the keys of the consumer lookups: for every ConsumerSteps keys, a user
// partition and a segment of it (two draws of LookupKeys, as NextKey's), then the offsets
// that read through that segment from its start. The Java side draws them alike.
type ConsumerKeys struct {
	s     *Spec
	k     *LookupKeys
	key   Key
	start int64
	step  int64
}

// NewConsumerKeys starts the consumer keys of s from seed.
func (s *Spec) NewConsumerKeys(seed uint64) *ConsumerKeys {
	return &ConsumerKeys{s: s, k: NewLookupKeys(seed)}
}

// Next returns the next key.
func (c *ConsumerKeys) Next() Key {
	if c.step == 0 {
		c.key = c.s.NextKey(c.k)
		c.start = c.s.SegmentStart(c.key.Offset)
	}
	c.key.Offset = c.start + c.step*c.s.SegmentSpan/ConsumerSteps
	c.step = (c.step + 1) % ConsumerSteps
	return c.key
}

// ConsumerChecksum is LookupChecksum for the consumer lookups.
func (s *Spec) ConsumerChecksum() int64 {
	c := s.NewConsumerKeys(s.LookupSeed)
	var sum int64
	for i := range s.LookupWarmup + s.Lookups {
		key := c.Next()
		if i >= s.LookupWarmup {
			sum += s.SegmentStart(key.Offset)
		}
	}
	return sum
}
