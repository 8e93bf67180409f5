// Package integration tests Strata against a real Apache Kafka broker, with tiered storage and
// Kafka's own remote-log metadata manager, and against a real S3 server.
//
// The tests carry the build tag "integration" and read where the servers are from the
// environment (see env_test.go). integration/run.sh installs and starts both servers and sets
// that environment:
//
//	integration/run.sh go test -race -tags integration -count=1 ./integration/...
//
// docker-compose.yml at the repository root runs the same tests in containers built from
// integration/docker/, against the same servers; `make test-compose` (integration/compose.sh)
// runs it end to end. Without the environment the tests skip, or fail when CI=true.
//
// What they cover, both ways between Strata and Kafka:
//   - Kafka writes, Strata reads (tiering_test.go): Kafka tiers a topic with its own manager and
//     LocalTieredStorage; Strata decodes every record, places it as Kafka's partitioner does,
//     and lists exactly the segments whose files Kafka wrote.
//   - Strata writes, Kafka reads (strata_to_kafka_test.go): Strata's manager publishes every
//     record type, state and edge case; Kafka's RemoteLogMetadataFormatter prints each as
//     `strata decode` does.
//   - Strata's manager on the broker's own __remote_log_metadata (manager_test.go): the
//     lifecycle, readiness, restart without replay, remote size by epoch.
//   - Strata's S3 store with real SigV4 (s3_test.go), and the partition remover deleting from
//     it (remover_test.go).
//   - The strata command against Kafka's tiered data (tiered_cli_test.go), built with go build
//     and run as a user runs it.
//
// Strata's tests share the broker's metadata topic with Kafka and with each other. Each invents
// its user partitions with fresh topic ids, and deletes them (DELETE_PARTITION_FINISHED) when it
// ends, so that what one test leaves never shows in another's view of the whole topic.
//
// STRATA_IT_REMOVER_SEGMENTS sets how many segments TestRemover deletes (default 200); it logs
// the deletion rate:
//
//	STRATA_IT_REMOVER_SEGMENTS=10000 integration/run.sh go test -tags integration -count=1 -run TestRemover -v ./integration/
package integration
