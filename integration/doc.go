// Package integration tests Strata against a real Apache Kafka broker, with tiered storage and
// Kafka's own remote-log metadata manager, and against a real S3 server.
//
// The tests carry the build tag "integration" and read where the servers are from the
// environment (see env_test.go). integration/run.sh installs and starts both servers and sets
// that environment:
//
//	integration/run.sh go test -race -tags integration -count=1 ./integration/...
//
// docker-compose.yml at the repository root runs the same tests against Kafka's and versitygw's
// container images. Without the environment the tests skip, or fail when CI=true.
package integration
