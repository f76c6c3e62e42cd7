#!/usr/bin/env bash
# Starts the local stack: the moto emulator (unless AWS_ENDPOINT_URL is set),
# provisioning from template.yaml, and the local gateway in the foreground.
# Ctrl-C (or any exit) stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/../.."

source infra/scripts/env.sh

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "building the local gateway..."
cargo build --quiet --locked -p infra --bins

if [[ -z "${AWS_ENDPOINT_URL:-}" ]]; then
  mkdir -p .dev
  # The launcher exits when its stdin closes; keep a pipe open for its life.
  exec 3> >(exec .venv/bin/python infra/python/moto_launcher.py "$MOTO_PORT" > .dev/moto.out 2> .dev/moto.log)
  pids+=($!)
  # Up to 30 s: it imports moto's DynamoDB backend before it answers, which
  # takes seconds when the machine is busy (a test run building beside it).
  for _ in $(seq 1 300); do
    grep -q READY .dev/moto.out 2>/dev/null && break
    sleep 0.1
  done
  grep -q READY .dev/moto.out || { echo "moto did not start, see .dev/moto.log" >&2; exit 1; }
  export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
  echo "moto emulator on $AWS_ENDPOINT_URL"
fi

./target/debug/provision
./target/debug/local-gateway &
pids+=($!)
echo "REST API on http://127.0.0.1:$API_PORT (Ctrl-C stops everything)"
wait "${pids[-1]}"
