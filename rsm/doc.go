// Package rsm is the remote storage manager of Kafka's tiered storage (KIP-405) in Go terms: the
// Manager interface that copies a closed log segment and its indexes to remote storage, reads
// them back, deletes them, and lists what is stored so that a verification tool can find
// orphans. Its implementations live in subpackages: rsm/local (a directory laid out exactly as
// Kafka's LocalTieredStorage lays it out) and rsm/s3 (an S3 bucket, through aws-sdk-go-v2).
//
// The package knows objects and bytes, not metadata events. It never publishes or reads
// __remote_log_metadata; deciding when a segment is copied, when it becomes readable and when it
// is deleted is the job of the caller (package tier, which records COPY_SEGMENT_STARTED before
// Copy and COPY_SEGMENT_FINISHED after it). A segment is identified by its
// *proto.SegmentMetadata: the segment id and the start offset name its files, exactly as Kafka
// names them, so that Strata reads what a Kafka broker tiered and the other way round.
//
// The package also holds what the implementations share: the naming rules of Kafka's layout
// (PartitionDirName, SegmentFileName and their parsers), the typed Error every operation returns
// and the sentinels callers branch on:
//
//   - ErrNotFound: the segment, or the requested index, is not stored. Fetching a segment that was
//     never copied or was deleted yields it; Delete never does.
//   - ErrPermanent: the call will fail the same way until the configuration or the input changes
//     (denied access, missing bucket, invalid topic name or range). Retrying does not help.
//   - ErrCorrupt: bytes read back do not match the checksum recorded when they were written.
//
// Any other error (a network failure that outlived the retries, a full disk) is transient: the
// caller may retry the operation later.
package rsm
