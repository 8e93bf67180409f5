// Package proto is the record format of Kafka's __remote_log_metadata topic (KIP-405) and
// nothing else: the identifiers of topic partitions and remote log segments, the segment and
// partition-delete states with their transition rules, the four record types, a codec that reads
// and writes exactly the bytes Apache Kafka reads and writes, the text Kafka's console formatter
// prints for each record, and the partitioner that maps a user partition to the metadata
// partition holding its events.
//
// Everything here is a pure function of its inputs: no I/O, no goroutines, no global state.
// Decoding never panics and never reads past its input; malformed input yields a *DecodeError
// that names the record type, the field and the byte offset at which decoding stopped.
package proto
