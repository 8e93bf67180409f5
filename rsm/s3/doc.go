// Package s3 is an rsm.Manager that keeps tiered segments in an Amazon S3 bucket, or any server
// that speaks S3's API, through aws-sdk-go-v2.
//
// What it is for: a broker's tiered storage in production, and the operator's view of it (List
// finds every object and tells which segment each belongs to). What it is not for: anything
// that needs the bytes of a Kafka LocalTieredStorage directory (use rsm/local) or a bucket
// written by another tiered-storage plugin, whose layouts differ.
//
// # Key layout
//
// Each segment is two objects:
//
//	<prefix><topic>-<partition>-<topicId>/<20-digit start offset>-<segment id>.log
//	<prefix><topic>-<partition>-<topicId>/<20-digit start offset>-<segment id>.indexes
//
// with the names of Kafka's LocalTieredStorage (see rsm.PartitionDirName and
// rsm.SegmentFileName), so a key alone names its partition, segment id and start offset and an
// object that no metadata record mentions is found by listing. Keys of one partition share a
// prefix, so listing a partition is one paginated ListObjectsV2, and requests spread across
// S3's per-prefix rate limits by partition. The .log object is Kafka's log file byte for byte:
// positions in Kafka's offset index are positions in it, and a downloaded copy reads with
// kafka-dump-log. The .indexes object bundles the offset, time and transaction indexes, the
// producer snapshot and the leader-epoch checkpoint behind a small header: format and
// version, then per index a type code, a present flag, a CRC-32C, an offset and a length,
// then a CRC-32C of the header (bundle.go has the exact layout).
//
// # Requests per segment
//
// Copying a segment whose log is at most the multipart threshold (1 GiB by default, Kafka's
// default segment.bytes, so every segment of a default topic) costs exactly 2 PUT requests: the
// index bundle, then the log. A larger log adds CreateMultipartUpload, one UploadPart per part
// (64 MiB by default) and CompleteMultipartUpload: 3 + ceil(size/part size) requests, 35 for a
// 2 GiB segment. Kafka's own layout, one object per file, would cost 5 or 6 PUTs; S3 charges
// per request whatever its size, and the indexes are always read together anyway (Kafka's
// RemoteIndexCache fetches the offset, time and transaction indexes on each miss). A failed
// upload costs 1 AbortMultipartUpload and 1 DeleteObjects more.
//
// Fetching the log, or any range of it, is 1 GET. Fetching an index is 1 ranged GET of the
// bundle's first 256 KiB (header and, for all but large segments, the index itself), or 2 when
// the index lies beyond. Deleting a segment is 1 DeleteObjects request for both objects, and
// DeleteBatch deletes 500 segments per request. Listing costs one request per 1000 objects,
// plus one ListMultipartUploads.
//
// # Integrity
//
// Every upload carries a CRC-32C (the SDK's flexible checksums; WithChecksumAlgorithm picks
// another), which S3 verifies before storing; multipart uploads carry one per part. Whole-log
// downloads are verified by the SDK against the stored checksum when S3 returns one
// (single-PUT objects); a mismatch fails the stream with rsm.ErrCorrupt at its end, never with
// io.EOF. A ranged GET cannot be verified against a whole-object checksum, so ranged log reads
// rely on TLS in transit and on the length check: a stream returns exactly the bytes asked for
// or an error. Indexes carry their own CRC-32C in the bundle header and are verified before any
// byte is returned.
//
// # Failures
//
// Requests are retried with exponential backoff and jitter on throttling (503 SlowDown and the
// SDK's other throttling codes), on 500, 502, 503 and 504, on broken connections and on
// responses cut short (WithRetries). A download that breaks part way resumes at the byte it
// reached, conditioned on the object's ETag so that it never splices two versions. Errors that
// retrying cannot fix are returned at once, marked rsm.ErrPermanent, with what S3 said: denied
// access, unknown or bad credentials, a missing bucket, a bucket in another region. A missing
// object is rsm.ErrNotFound. A failed multipart upload is aborted, on a context of its own so
// that a canceled copy aborts too, and a failed copy deletes what it wrote while the caller's
// context allows (past its deadline the objects stay for Delete of the segment). A process killed in
// the middle of a multipart upload cannot abort it: its parts stay, billed, until aborted. List
// reports such uploads; a bucket lifecycle rule with AbortIncompleteMultipartUpload removes them
// without an operator.
//
// # Permissions
//
// s3:PutObject, s3:GetObject, s3:DeleteObject, s3:AbortMultipartUpload on the keys under the
// prefix; s3:ListBucket and s3:ListBucketMultipartUploads on the bucket for List and Check.
//
// # Memory
//
// Log parts are streamed from the log file through io.SectionReader, so a copy holds no part
// in memory: memory is about the indexes of the segment plus the HTTP buffers of
// WithConcurrency parts in flight, whatever the part or segment size. A fetched index is held
// in memory while it is verified.
package s3
