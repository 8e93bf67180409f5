// Package rlmm is the remote log metadata manager a Go broker links in: Strata's equivalent of
// Apache Kafka's TopicBasedRemoteLogMetadataManager (KIP-405), without its failure modes.
//
// A Manager owns one franz-go client and one cache.Store. It creates or checks the metadata
// topic __remote_log_metadata, publishes segment and partition-delete events to the metadata
// partition Kafka's partitioner picks, and runs one consumer loop that fetches the metadata
// partitions of the user partitions this broker leads or follows and applies them to the store.
//
// What it guarantees:
//
//   - Read your writes: AddSegment, UpdateSegment and PutPartitionDelete return nil only once
//     this manager's store has applied the very record they produced. A write whose record had
//     no effect says so with a *NotAppliedError (errors.Is ErrNotApplied and the store's reason,
//     e.g. cache.ErrInvalidTransition): dropped by the store at a given offset, or refused
//     before producing when the partition is led here, ready, and the store proves the record
//     cannot apply. A record no store could apply fails with ErrInvalidArgument at once.
//     Waiting is by notification from the consumer loop, never by polling.
//   - Every write returns by the earlier of its context's deadline and the consume wait: when
//     it has not learned its outcome by then, with an *IncompleteError (errors.Is ErrTimeout)
//     that says whether the record is in the topic or may still reach it. Other failures:
//     ErrNotAssigned at once, ErrClosed, the halt of the metadata partition.
//   - Per-partition readiness: a user partition is ready once its metadata partition has been
//     applied up to the end offset seen when it was assigned. Reads of a partition that is not
//     ready fail with ErrNotReady (retriable); of a partition not assigned, with ErrNotFound.
//     WaitReady blocks until partitions are ready.
//   - Restart reads only the tail: each metadata partition resumes from the offset stored in the
//     store, in the same batch as the rows it produced. If that offset fell below the topic's log
//     start while the broker was away, the metadata partition is rebuilt from the log start, with
//     a warning.
//   - A record that cannot be decoded halts its metadata partition only: that partition's user
//     partitions report a *HaltError naming the offset and the cause; every other partition keeps
//     working. WithSkipBadRecords, or Skip at run time, skips such records; each skip is kept in
//     the store.
//
// Memory: besides the store's (see package cache: memtables and block cache, outside the Go
// heap), a manager holds what it has fetched and not yet applied. The consumer's fetches are
// the largest part of its heap during a cold load: about two fetches at a time, each decoded
// into about ten times its bytes (compressed records and one kgo.Record each), bounded by
// remote.log.metadata.consumer.fetch.max.bytes and .max.partition.fetch.bytes
// (DefaultFetchMaxBytes, 256 KiB each); then one Apply batch, bounded by
// remote.log.metadata.consumer.max.poll.records (DefaultMaxPollRecords, 2,500 records). The
// manager sets no GOGC or GOMEMLIMIT: the program that links it chooses (Go's default GOGC of 100
// lets the heap reach twice what survives a collection). docs/MEMORY.md has the measured
// breakdown.
//
// Close waits for every goroutine the manager started; a second Close returns nil, as in every
// package of Strata.
//
// It is not a remote storage manager (see package rsm) and does not decide what to tier or
// delete (see package tier).
package rlmm
