// Package cache is the materialized view of Kafka's __remote_log_metadata topic (KIP-405),
// kept on disk in Pebble: for every user partition, its remote log segments and their states,
// the per-leader-epoch maps Kafka's RemoteLogMetadataCache keeps, the partition-delete state,
// and for every metadata partition the offset up to which the view is built.
//
// It exists because Kafka keeps this view in memory and rebuilds it from the whole topic at every
// restart, which makes long-running clusters slow to start and costs them gigabytes of memory
// (KAFKA-19599, KAFKA-16454). Here the view survives restarts, so a consumer resumes each
// metadata partition from NextOffset and reads only the tail; and nothing per segment lives in
// memory, so memory stays flat however much history there is (the block cache bounds it; see
// WithBlockCacheSize).
//
// What it is for:
//   - Apply: the consumer hands over each fetch, decoded; the row changes of every record and
//     the new next offset of each metadata partition are written in one synced Pebble batch, so
//     the store is always a prefix of the topic and re-delivery is a no-op. Records that cannot
//     be applied are dropped, listed (Result.Dropped) and kept (Dropped), never fatal.
//     CheckRecord says, before a record is published, whether every store would drop it.
//   - Queries that answer exactly as Kafka's RemoteLogMetadataCache does, state by state and
//     epoch by epoch (SegmentFor, HighestOffsetForEpoch, Segments, SegmentsForEpoch,
//     RemoteLogSizeForEpoch, NextSegmentWithTxnIndex), plus what an operator needs (Segment,
//     Partitions, RemoteLogSize, PartitionDeleteState).
//   - Operating it: Skip records an operator's choice to step over a record; ResetPartition
//     rebuilds a metadata partition from a new offset; Check verifies the store against itself;
//     Dump prints it in a stable order so that two stores can be diffed.
//
// Memory: the store holds Pebble's memtables (WithMemTableSize, 16 MiB each; two while writing,
// at most four) and block cache (WithBlockCacheSize, 8 MiB), both outside the Go heap; the
// answer cache of SegmentFor (WithLookupCacheSize), which only lookups fill; the writer's copy
// of one row per partition written; and, while an Apply runs, its batch's rows and its Pebble
// batch. Nothing grows with the number of segments. docs/MEMORY.md has the measured breakdown
// of a cold load.
//
// Every Apply is committed with sync. The store only has to be a prefix of the topic, which
// Pebble's write-ahead log gives even unsynced, but syncing makes an applied batch survive a
// crash of the machine too (TestCrashRecovery checks both), and measured on a cold load of
// 1M events it cost no measurable time: an Apply takes tens of milliseconds of CPU, its sync
// far less.
//
// What it is not for: it does not decode records (package proto does), consume the topic, know
// which partitions are assigned or ready, or wait for anything (package rlmm does all of that);
// it never talks to remote storage. It is not the source of truth: the topic is, and any store
// can be thrown away and rebuilt from it.
//
// Where the semantics differ from Kafka's on purpose, the code that differs says so:
//   - partition delete transitions are checked;
//   - snapshot records and records Kafka's constructors would refuse are dropped instead of
//     killing the consumer, and so are add records whose leader-epoch map names an epoch
//     starting after the segment's end offset (Kafka accepts them, then claims the segment holds
//     offsets it does not, and its nextSegmentWithTxnIndex loops forever on them);
//     NextSegmentWithTxnIndex only ever walks forward, whatever the store holds;
//   - segment lists are ordered;
//   - a segment added again while still copying leaves the epochs it no longer names;
//   - a user partition's records must all come from one metadata partition under one topic
//     name;
//   - a deleted partition stays deleted: DELETE_PARTITION_FINISHED leaves a tombstone, and every
//     later record of the partition (a late COPY_SEGMENT_STARTED of an old leader, a repeated
//     DELETE_PARTITION_MARKED) is dropped as PartitionDeleted (ErrPartitionDeleted). A topic id
//     is never reused, so such records are stale; Kafka would re-create the partition, and its
//     consumer thread dies on some of them. Queries of the partition still answer ErrNotFound,
//     as Kafka's do;
//   - every dropped record is kept, with its reason and the segment it named (Dropped,
//     DroppedAt), so that a publisher can learn that its record had no effect and an audit can
//     list what the topic holds that no store applied (the objects of a late copy, above, are
//     left in remote storage, and nothing but an audit would ever find them).
package cache
