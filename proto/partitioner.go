package proto

import "encoding/binary"

// TopicName is the name of Kafka's remote log metadata topic, fixed by KIP-405
// (TopicBasedRemoteLogMetadataManagerConfig.REMOTE_LOG_METADATA_TOPIC_NAME): every record this
// package encodes lives there.
const TopicName = "__remote_log_metadata"

// MetadataPartition returns the partition of __remote_log_metadata that holds the events of
// user partition tp when the topic has numPartitions partitions, exactly as Kafka's
// RemoteLogMetadataTopicPartitioner computes it: a Java-style hash of the topic id and the
// partition number (not the topic name), murmur2 over its four big-endian bytes, made positive,
// modulo the partition count. The mapping depends on numPartitions, which is why the metadata
// topic's partition count can never change.
//
// REQUIRES: numPartitions > 0.
func MetadataPartition(tp TopicIDPartition, numPartitions int32) int32 {
	var buf [4]byte
	binary.BigEndian.PutUint32(buf[:], uint32(topicIDPartitionHash(tp)))
	return int32(uint32(Murmur2(buf[:]))&0x7fffffff) % numPartitions
}

// topicIDPartitionHash is Objects.hash(topicId, partition) as Kafka's TopicIdPartition feeds it
// to the partitioner, with Uuid.hashCode folding each 64-bit half: the least significant half
// first.
func topicIDPartitionHash(tp TopicIDPartition) int32 {
	msb := int64(binary.BigEndian.Uint64(tp.TopicID[:8]))
	lsb := int64(binary.BigEndian.Uint64(tp.TopicID[8:]))
	h := int32(1)
	h = 31*h + int32(lsb^int64(uint64(lsb)>>32))
	h = 31*h + int32(msb^int64(uint64(msb)>>32))
	h = 31*h + tp.Partition
	return h
}

// Murmur2 is Kafka's murmur2 hash (Utils.murmur2), the hash of its default producer
// partitioner.
func Murmur2(data []byte) int32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	length := len(data)
	h := uint32(seed) ^ uint32(length)
	n := length / 4
	for i := 0; i < n; i++ {
		k := binary.LittleEndian.Uint32(data[i*4:])
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[n*4:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}
