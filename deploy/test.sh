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

# The Python environment of the Python-driven tests (interop.rs reads records with confluent-kafka
# and the CloudEvents SDK; http.rs sends CloudEvents with the SDK and runs schemathesis): a venv
# with tests/python/requirements.txt, made again when that file changes or the venv no longer
# works (e.g. python3 was upgraded).
pyenv="${MEKONG_PYENV:-$HOME/.cache/mekong/pyenv}"
requirements=tests/python/requirements.txt
mkdir -p "$(dirname "$pyenv")"
exec 8>"$pyenv.lock"
flock 8  # two test runs at once must not both build it
if ! cmp -s "$requirements" "$pyenv/requirements.txt" \
  || ! "$pyenv/bin/python" -c 'import confluent_kafka, cloudevents.v1.kafka, schemathesis, selenium' 2>/dev/null; then
  if [[ -e "$pyenv" && ! -e "$pyenv/pyvenv.cfg" && -n "$(ls -A "$pyenv")" ]]; then
    echo "MEKONG_PYENV=$pyenv is a non-empty folder but no venv: not touching it" >&2
    exit 1
  fi
  echo "test python: making a venv in $pyenv from $requirements" >&2
  rm -rf "$pyenv"
  python3 -m venv "$pyenv"
  "$pyenv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements" >&2
  cp "$requirements" "$pyenv/requirements.txt"  # written last: marks the venv complete
fi
exec 8>&-
MEKONG_TEST_PYTHON="$pyenv/bin/python"
export MEKONG_TEST_PYTHON

# The browser of the console tests (tests/tests/e2e/console.rs): Debian's chromium and its
# chromedriver, installed when missing (as root, or through sudo). No browser is downloaded
# from anywhere else.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "test browser: installing Debian's chromium and chromium-driver" >&2
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >&2
fi
MEKONG_TEST_CHROMIUM="$(command -v chromium)"
MEKONG_TEST_CHROMEDRIVER="$(command -v chromedriver)"
export MEKONG_TEST_CHROMIUM MEKONG_TEST_CHROMEDRIVER

# Build first, so the broker is not waiting idle through a cold compile.
cargo test --workspace --no-run "$@"

# No topic appears by itself: each one a test finds was created by the hub (or the test), with
# the partitions and replication asked for. Private brokers started by tests inherit this.
export MEKONG_KAFKA_AUTO_CREATE_TOPICS=false
MEKONG_TEST_KAFKA="$(deploy/kafka/kafka.sh start "$state")"
export MEKONG_TEST_KAFKA
echo "test broker: Apache Kafka at $MEKONG_TEST_KAFKA" >&2

# Checks that cannot run here (a tool missing) say so in this file; they count as skipped.
MEKONG_TEST_SKIPS="$state/skips"
: >"$MEKONG_TEST_SKIPS"
export MEKONG_TEST_SKIPS

# Every test binary runs even after a failure; the whole run's tally is the last line.
log="$state/cargo-test.log"
set +e
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
deploy/kafka/kafka.sh stop "$state" >&2 || true
sed 's/^/skipped: /' "$MEKONG_TEST_SKIPS"
skips=$(wc -l <"$MEKONG_TEST_SKIPS")
# A test that skipped a check passed as far as cargo knows: it is counted as skipped instead.
awk -v skips="$skips" '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "summary: %d passed, %d failed, %d skipped\n", p - skips, f, i + skips }' "$log"
exit "$status"
