#!/usr/bin/env bash
# Usage: kafka-suite.sh [--ci] SIDE...   (SIDE: kafka, strata)
#
# Runs Apache Kafka's own tiered-storage integration tests (integration/kafka-suite): `kafka`
# runs the classes as Kafka ships them, with TopicBasedRemoteLogMetadataManager; `strata` runs
# the same classes with Strata's plugin (bin/strata-kafka.jar, bin/strata) as the metadata
# manager. Prints a table of each class's result on each side. With --ci, only the classes of
# KAFKA_SUITE_CI_TESTS, which fit CI's time. SUITE_TESTS narrows a run (Surefire's -Dtest).
#
# Exits 1 when a class fails with Strata's manager that passed with Kafka's in the same run
# (or, with Strata's side alone, when any class fails).
set -euo pipefail
scripts=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$scripts/common.sh"
root=$(cd "$scripts/../.." && pwd)
suite=$root/integration/kafka-suite

# The classes `make test` runs (about 4 minutes with Strata's manager on a 2-core machine): one
# broker offloading segments, the active one included, and serving reads from remote storage;
# two brokers deleting a topic's remote segments through the manager.
KAFKA_SUITE_CI_TESTS=${KAFKA_SUITE_CI_TESTS:-RollAndOffloadActiveSegmentTest,DeleteTopicTest}

ci=0
if [ "${1:-}" = --ci ]; then
  ci=1
  shift
fi
[ $# -gt 0 ] || set -- kafka strata
"$scripts/need-java.sh"
[ -f "$root/bin/strata-kafka.jar" ] || strata_die "bin/strata-kafka.jar is missing: run make kafka-plugin"
[ -x "$root/bin/strata" ] || strata_die "bin/strata is missing: run make build"

# tests SIDE: the -Dtest pattern of a run.
tests() {
  local side=$1 list=${SUITE_TESTS:-}
  if [ -z "$list" ] && [ "$ci" = 1 ]; then
    list=$KAFKA_SUITE_CI_TESTS
  fi
  if [ -z "$list" ]; then
    [ "$side" = kafka ] && echo 'org.apache.kafka.tiered.storage.integration.*Test' ||
      echo 'io.github.stratalog.strata.kafka.suite.Strata*Test'
    return
  fi
  local out=() c
  IFS=, read -ra cs <<<"$list"
  for c in "${cs[@]}"; do
    c=${c#Strata}
    [ "$side" = kafka ] && out+=("org.apache.kafka.tiered.storage.integration.$c") ||
      out+=("io.github.stratalog.strata.kafka.suite.Strata$c")
  done
  (IFS=,; echo "${out[*]}")
}

status=0
for side in "$@"; do
  case $side in kafka | strata) ;; *) strata_die "unknown side $side: want kafka or strata" ;; esac
  strata_log "Kafka's tiered-storage tests, $side's metadata manager: $(tests "$side")"
  t0=$SECONDS
  rm -rf "$suite/target/surefire-reports" "$suite/target/tmp"
  # Failures are read from the reports below, so that every class runs and is reported.
  mvn -B -q -Dstyle.color=never -f "$suite/pom.xml" -P "suite-$side" test \
    -Dtest="$(tests "$side")" -Dsurefire.failIfNoSpecifiedTests=false -Dmaven.test.failure.ignore=true \
    -Dstrata.plugin.jar="$root/bin/strata-kafka.jar" -Dstrata.binary="$root/bin/strata" >&2 || status=2
  rm -rf "$suite/target/reports-$side"
  cp -r "$suite/target/surefire-reports" "$suite/target/reports-$side" 2>/dev/null || true
  rm -rf "$suite/target/tmp"
  strata_log "$side's side took $((SECONDS - t0))s; reports in $suite/target/reports-$side"
done

# The table: class, then tests/failures/errors/skipped, seconds, and the brokers' delayed
# remote fetches that expired (RemoteFetchExpiries: each makes the consumer read a remote segment
# again) on each side run.
python3 - "$suite/target" "$@" <<'PY' || status=$(( status > 1 ? status : 1 ))
import glob, os, re, sys, xml.etree.ElementTree as ET
target, sides = sys.argv[1], sys.argv[2:]
expired = re.compile(r"^\[strata-suite\] delayed remote fetches expired: (\d+) ", re.M)
res = {}
for side in sides:
    for f in glob.glob(os.path.join(target, "reports-" + side, "TEST-*.xml")):
        s = ET.parse(f).getroot()
        full = s.get("name")
        name = full.rsplit(".", 1)[-1]
        if side == "strata" and name.startswith("Strata"):
            name = name[len("Strata"):]
        n, fl, er, sk = (int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
        ok = "PASS" if fl == 0 and er == 0 and n > sk else "FAIL"
        try:
            with open(os.path.join(target, "reports-" + side, full + "-output.txt"), errors="replace") as out:
                exp = sum(int(m) for m in expired.findall(out.read()))
        except OSError:
            exp = -1
        res.setdefault(name, {})[side] = (ok, n, fl, er, sk, float(s.get("time", 0)), exp)
print("%-46s" % "class" + "".join("%-40s" % (s + ": tests/fail/err/skip time expired") for s in sides))
bad = False
for name in sorted(res):
    row = "%-46s" % name
    for side in sides:
        r = res[name].get(side)
        row += "%-40s" % ("not run" if r is None else "%s %d/%d/%d/%d %.0fs %d" % r)
    print(row)
    s, k = res[name].get("strata"), res[name].get("kafka")
    if "strata" in sides and (s is None or s[0] != "PASS") and ("kafka" not in sides or (k and k[0] == "PASS")):
        bad = True
if not res:
    print("no test reports: nothing ran")
    bad = True
sys.exit(1 if bad else 0)
PY
exit "$status"
