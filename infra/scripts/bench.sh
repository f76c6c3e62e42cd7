#!/usr/bin/env bash
# `make bench` after the builds: starts moto on a free port, provisions it
# from template.yaml, runs the benchmark (infra/src/bin/bench.rs) over the
# release bootstraps in $1, and stops moto. Extra arguments go to the
# benchmark (--warm N, --cold N, --out FILE, --arm64 DIR, --only f,g), but
# --sam-build DIR, which stands for --arm64 with the bootstraps `sam build`
# wrote there (`make bench` gives .aws-sam/build).
set -euo pipefail
cd "$(dirname "$0")/../.."

source infra/scripts/env.sh
free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOTO_PORT="$(free_port)"
# Each measured route runs a thousand times from one user (and, for the
# WebSocket function, one connection) as fast as it answers.
export RATE_LIMIT_DEFAULT=1000000/60 RATE_LIMIT_WS_FRAMES=1000000/1
# As on Lambda, where the function's logs go to CloudWatch: info level.
export LOG_LEVEL="${BENCH_LOG_LEVEL:-info}"
export TABLE_NAME="bench-$MOTO_PORT" BUCKET_NAME="bench-$MOTO_PORT-uploads"

bins="$1"; shift
work="$(mktemp -d)"
# The launcher exits when its stdin closes: fd 3 keeps it open while this
# script lives, and is closed for the benchmark and the bootstraps below so
# that a leaked process cannot keep the emulator alive.
exec 3> >(exec .venv/bin/python infra/python/moto_launcher.py "$MOTO_PORT" > "$work/moto.out" 2> "$work/moto.log")
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  grep -q READY "$work/moto.out" 2>/dev/null && break
  sleep 0.1
done
grep -q READY "$work/moto.out" || { cat "$work/moto.log" >&2; echo "bench: moto did not start" >&2; exit 1; }

# The benchmark knows a function by its crate (DIR/<crate>/bootstrap), sam
# build puts it under its logical id: the template SAM wrote beside the
# bootstraps (plain YAML, no short tags) names each one's crate as its
# Metadata's Binary, the bin cargo-lambda built.
args=()
while [ $# -gt 0 ]; do
  if [ "$1" = --sam-build ]; then
    [ $# -ge 2 ] || { echo "bench: --sam-build needs a directory" >&2; exit 2; }
    .venv/bin/python - "$2" "$work/arm64" <<'PY'
import os, sys, yaml
build, out = sys.argv[1:]
with open(os.path.join(build, "template.yaml")) as f:
    resources = yaml.safe_load(f)["Resources"]
for logical_id, resource in resources.items():
    if resource["Type"] != "AWS::Serverless::Function":
        continue
    crate = resource["Metadata"]["BuildProperties"]["Binary"]
    bootstrap = os.path.abspath(os.path.join(build, resource["Properties"]["CodeUri"], "bootstrap"))
    if not os.path.isfile(bootstrap):
        sys.exit(f"bench: {logical_id} has no bootstrap at {bootstrap}")
    os.makedirs(os.path.join(out, crate))
    os.symlink(bootstrap, os.path.join(out, crate, "bootstrap"))
PY
    args+=(--arm64 "$work/arm64")
    shift 2
  else
    args+=("$1")
    shift
  fi
done
export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"

./target/debug/provision > /dev/null
rm -rf "$bins/bench-logs"
./target/debug/bench "$bins" "${args[@]}" 3>&-
