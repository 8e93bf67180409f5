// Package faults is Strata's fault suite: publishers, tiering to S3 and the partition remover
// run against a real 3-node KRaft Kafka cluster and a real S3 server while the suite kills,
// stops and rolls brokers, SIGKILLs a Strata process mid-copy and mid-remove, and injects S3
// errors and stalls through a proxy of its own. After each scenario it checks that every
// acknowledged write is in __remote_log_metadata exactly as acknowledged, that no call outlived
// its deadline, that every partition marked for deletion was finished exactly once, and that
// `strata verify` finds nothing after `strata repair --execute`; then it prints a table.
//
// The tests carry the build tag "faults", so the normal integration run leaves them out.
// integration/faults.sh starts the cluster and the S3 server and runs them:
//
//	make faults                    # or: integration/faults.sh
//
// Everything listens on 127.0.0.1; every process the suite starts it stops.
package faults
