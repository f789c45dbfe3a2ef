#!/usr/bin/env bash
# Benchmark the Mekong gateway against a private, real Apache Kafka broker.
#
#   deploy/bench.sh [mekong-bench flags...]
#
# Builds the release binaries (mekong, mekong-bench), starts a single-node Kafka
# broker in a temporary folder (deploy/kafka/kafka.sh), runs mekong-bench (which
# starts `mekong serve` as a child process and measures a raw rdkafka baseline,
# unary Publish and PublishStream; then the delivery engine against a local HTTP
# target, mekong-bench-deliver), stops the broker, and prints a Markdown report
# on stdout. Progress and build output go to stderr. Flags are passed to
# mekong-bench, e.g. `--duration 20s --warmup 5s --streams 2` (see
# `target/release/mekong-bench --help`). Exit status 1 when any request failed.
#
# Environment: MEKONG_KAFKA_VERSION, MEKONG_KAFKA_HEAP (see kafka.sh);
# MEKONG_BENCH_KEEP=1 keeps the temporary folder (broker and gateway logs).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
KAFKA_SH="$ROOT/deploy/kafka/kafka.sh"

log() { echo "bench.sh: $*" >&2; }

log "building release binaries"
cargo build --release -p mekong -p mekong-bench --bins >&2

tmp="$(mktemp -d "${TMPDIR:-/tmp}/mekong-bench.XXXXXX")"
cleanup() {
  local rc=$?
  "$KAFKA_SH" stop "$tmp/kafka" >/dev/null 2>&1 || true
  if [[ "${MEKONG_BENCH_KEEP:-0}" == 1 || $rc -ne 0 ]]; then
    log "logs kept in $tmp (gateway.log, kafka/broker.log)"
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting a private Kafka broker in $tmp/kafka"
addr="$("$KAFKA_SH" start "$tmp/kafka")"
log "broker at $addr"

# The gateway seals its audit events and runs a notary, as a city deployment does.
target/release/mekong notary keygen "$tmp/keys" >&2

rc=0
# Relative paths (we are in the repository root): the report names the sample as in the repo.
target/release/mekong-bench \
  --kafka "$addr" \
  --gateway target/release/mekong \
  --resources examples/hcmc \
  --sample examples/hcmc/samples/dossier-sync.json \
  --gateway-log "$tmp/gateway.log" \
  --evidence-dir "$tmp/keys" \
  --broker-pid "$(cat "$tmp/kafka/broker.pid")" \
  --kafka-version "${MEKONG_KAFKA_VERSION:-4.4.0}" \
  "$@" || rc=$?
echo
log "delivery engine against a local HTTP target"
target/release/mekong-bench-deliver --kafka "$addr" || rc=$?
exit "$rc"
