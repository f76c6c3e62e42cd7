#!/usr/bin/env bash
# Starts the local stack: the moto emulator (unless AWS_ENDPOINT_URL is set),
# provisioning from template.yaml, the data saved by the last run (moto's
# only: DEV_STATE_DIR, default .dev/state), and the local gateway in the
# foreground. Ctrl-C (or any exit) stops everything this script started,
# saving the data first.
set -euo pipefail
cd "$(dirname "$0")/../.."

source infra/scripts/env.sh

pids=()
moto_pid=
moto_out=
state_loaded=
# Waits up to $1 seconds in all for the processes after it to exit, then
# kills what is left.
await_exit() {
  local deadline=$((SECONDS + $1)) pid
  shift
  for pid in "$@"; do
    while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
cleanup() {
  trap - EXIT INT TERM HUP
  # In this order: the gateway (or its hot-reload watcher), which closes its
  # WebSockets and runs their $disconnect; then the save, with nothing
  # writing any more; then the emulator, which exits when its stdin closes.
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  await_exit 30 "${pids[@]}"
  if [[ -n "$state_loaded" ]]; then
    ./target/debug/dev-state save ||
      echo "dev: the data was not saved; $DEV_STATE_DIR keeps what the last save wrote" >&2
  fi
  if [[ -n "$moto_pid" ]]; then
    exec 3>&-
    await_exit 10 "$moto_pid"
  fi
  [[ -z "$moto_out" ]] || rm -f "$moto_out"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

echo "building the local gateway..."
cargo build --quiet --locked -p infra --bins

if [[ -z "${AWS_ENDPOINT_URL:-}" ]]; then
  mkdir -p .dev
  DEV_STATE_DIR="${DEV_STATE_DIR:-.dev/state}"
  # Its own, so that the READY of an earlier run, or of another stack of
  # this checkout (the smoke test beside a make dev), is not taken for its.
  moto_out="$(mktemp)"
  # The launcher exits when its stdin closes; keep a pipe open for its life.
  # It holds DEV_STATE_DIR locked while it runs (`make reset` checks).
  exec 3> >(exec .venv/bin/python infra/python/moto_launcher.py "$MOTO_PORT" --state-dir "$DEV_STATE_DIR" > "$moto_out" 2> .dev/moto.log)
  moto_pid=$!
  # Up to 30 s: it imports moto's DynamoDB backend before it answers, which
  # takes seconds when the machine is busy (a test run building beside it).
  for _ in $(seq 1 300); do
    grep -q READY "$moto_out" 2>/dev/null && break
    kill -0 "$moto_pid" 2>/dev/null || break
    sleep 0.1
  done
  grep -q READY "$moto_out" || { echo "moto did not start: $(tail -n 1 .dev/moto.log) (.dev/moto.log)" >&2; exit 1; }
  export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
  echo "moto emulator on $AWS_ENDPOINT_URL, data kept in $DEV_STATE_DIR (make reset deletes it)"
else
  echo "emulator at $AWS_ENDPOINT_URL: starting no moto, so no data is saved or loaded (DEV_STATE_DIR is unused)"
fi

./target/debug/provision
if [[ -n "$moto_pid" ]]; then
  # After provisioning, which makes the table and bucket the data goes into,
  # and before the gateway, whose stream poller starts at LATEST: the loaded
  # items are not streamed again (no second notification or email).
  ./target/debug/dev-state load
  state_loaded=1
fi
if [[ "${HOT_RELOAD:-1}" == 0 ]]; then
  ./target/debug/local-gateway &
else
  # Runs the gateway, and rebuilds and restarts it on every saved source
  # change while the emulator keeps its data (docs/ARCHITECTURE.md, Hot
  # reload). Told to stop, it stops the gateway gracefully first.
  .venv/bin/python infra/python/dev_reload.py &
fi
pids+=($!)
echo "REST API on http://127.0.0.1:$API_PORT (Ctrl-C stops everything)"
wait "${pids[-1]}"
