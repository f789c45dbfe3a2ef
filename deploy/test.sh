#!/usr/bin/env bash
# The test command: starts a real Apache Kafka broker (from Maven Central jars, see
# deploy/kafka/kafka.sh), runs every test of the workspace against it, and stops it.
# Extra arguments go to `cargo test`, e.g. `./deploy/test.sh -p mekong-core`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

state="$(mktemp -d "${TMPDIR:-/tmp}/mekong-test-kafka.XXXXXX")"
cleanup() {
  deploy/kafka/kafka.sh stop "$state" >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT

# Build first, so the broker is not waiting idle through a cold compile.
cargo test --workspace --no-run "$@"

MEKONG_TEST_KAFKA="$(deploy/kafka/kafka.sh start "$state")"
export MEKONG_TEST_KAFKA
echo "test broker: Apache Kafka at $MEKONG_TEST_KAFKA" >&2

# The whole run's tally as the last line, whatever order cargo ran the test binaries in.
log="$state/cargo-test.log"
set +e
cargo test --workspace "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
deploy/kafka/kafka.sh stop "$state" >&2 || true
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "summary: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
exit "$status"
