// Package local is an rsm.Manager that keeps tiered segments in a directory, laid out exactly as
// Apache Kafka's LocalTieredStorage lays them out:
//
//	<dir>/kafka-tiered-storage/<topic>-<partition>-<topicId>/<start offset>-<segment id>.log
//	                                                       .../<start offset>-<segment id>.index
//	                                                       .../<start offset>-<segment id>.timeindex
//	                                                       .../<start offset>-<segment id>.txnindex   (only if the segment has one)
//	                                                       .../<start offset>-<segment id>.snapshot
//	                                                       .../<start offset>-<segment id>.leader_epoch_checkpoint
//
// with the start offset zero-padded to 20 digits and both ids in Kafka's 22-character base64
// form. Pointing Store at the directory a Kafka broker's rsm.config.dir names lets Strata read and
// verify what the broker tiered, and the broker read what Strata tiered. Files written by
// brokers that did not yet pad the start offset are found as well.
//
// What it is for: tests, demos, and verifying a Kafka cluster that uses LocalTieredStorage. What
// it is not for: production tiered storage. A directory on one machine is not remote storage;
// use rsm/s3.
//
// # Durability
//
// Every file is written to a temporary file under <dir>/.strata-tmp, synced, renamed into place
// and the partition directory synced, so a reader or a crash never sees a partly written file:
// each file is either absent, the previous copy, or the complete new one. The temporary files
// live outside kafka-tiered-storage because Kafka's own tooling parses every name in that tree
// and fails on names it does not know. The two directories must be on the same file system,
// which they are unless kafka-tiered-storage is itself a mount point. A segment's files are
// renamed one after another, so a crash in the middle of Copy can leave a partial set; ListAll
// shows it, and the leftover temporary files, for a verification tool to clean up. Nothing is
// cleaned up automatically, because several brokers may share one directory as they do in
// Kafka's tests.
//
// Unlike Kafka's LocalTieredStorage, Copy always writes the leader-epoch checkpoint file, even
// empty, since Kafka's own reader of the layout requires it.
package local
