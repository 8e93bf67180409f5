// Package serve offers an rlmm.Manager over gRPC: the service strata.rlmm.v1
// RemoteLogMetadataService (api/rlmm/v1), one RPC per method of Kafka's RemoteLogMetadataManager,
// for the Kafka plugin that runs `strata serve` beside a broker.
//
// Records cross in Kafka's own byte format (package proto's codec here, Kafka's
// RemoteLogMetadataSerde in the plugin), so there is one definition of the record format.
//
// Contracts:
//   - Writes return only once the manager has applied the record (rlmm's read-your-writes);
//     otherwise a status whose code says whether to retry and whose ErrorDetail says why (see
//     Status for the mapping of every rlmm error).
//   - Lists stream in chunks of at most WithListChunk records and about 1 MiB, by start offset.
//   - A server made with NewStarting serves while its manager starts: calls wait, within their
//     deadlines, and none is answered before Started; StartFailed fails them with Unavailable.
//   - Serve owns the gRPC server: it returns once the server has stopped, after a graceful stop
//     bounded by WithGracePeriod. It does not close the manager: the caller does, after Serve.
package serve
