#!/usr/bin/env bash
# End-to-end check of `make dev` itself: starts infra/scripts/dev.sh on free
# ports, calls it over HTTP with curl, fuzzes its OpenAPI document with
# schemathesis at full strength (infra/scripts/fuzz.sh), runs the generated
# TypeScript client and the browser checks against it (infra/scripts/web.sh),
# and stops it with SIGINT to its process group, as Ctrl-C in a terminal
# does. Fails loudly.
set -euo pipefail
cd "$(dirname "$0")/../.."

free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export API_PORT="$(free_port)" MOTO_PORT="$(free_port)" WS_PORT="$(free_port)"
# The browser checks' pages: one origin the API allows, one it does not.
export PAGE_PORT="$(free_port)" OTHER_PAGE_PORT="$(free_port)"
export CORS_ALLOWED_ORIGINS="http://127.0.0.1:$PAGE_PORT"
unset AWS_ENDPOINT_URL
# The fuzzer sends thousands of requests from one IP and one user; the
# limits themselves are tested in tests/api/edge.rs.
export RATE_LIMIT_DEFAULT=1000000/60 RATE_LIMIT_LOGIN=1000000/60 RATE_LIMIT_FORGOT_PASSWORD=1000000/60 RATE_LIMIT_LOGIN_FAILURES=1000000/60 RATE_LIMIT_FORGOT_PASSWORD_EMAIL=1000000/60
log="$(mktemp)"
setsid bash infra/scripts/dev.sh > "$log" 2>&1 &
dev_pid=$!
stop() { kill -INT -- "-$dev_pid" 2>/dev/null || true; wait "$dev_pid" 2>/dev/null || true; }
trap stop EXIT

base="http://127.0.0.1:$API_PORT"
# dev.sh builds the local binaries first: on a cold target/ of a busy
# 2-core machine that alone has taken over two minutes.
deadline=$((SECONDS + 600))
until curl -fsS "$base/health" > /dev/null 2>&1; do
  kill -0 "$dev_pid" 2>/dev/null || { cat "$log"; echo "smoke: dev.sh exited early" >&2; exit 1; }
  (( SECONDS < deadline )) || { cat "$log"; echo "smoke: no /health within 600 s" >&2; exit 1; }
  sleep 0.2
done

passed=0; failed=0
check() { # name, expected, actual
  if [[ "$2" == "$3" ]]; then passed=$((passed+1)); else failed=$((failed+1)); echo "FAIL $1: expected [$2] got [$3]"; fi
}
headers="$(mktemp)"
body="$(curl -sS -D "$headers" -H 'X-Request-ID: abc-1' "$base/health")"
check "health status" "200" "$(head -1 "$headers" | awk '{print $2}')"
check "request id header" "abc-1" "$(grep -i '^x-request-id:' "$headers" | tr -d '\r' | awk '{print $2}')"
check "request id in meta" "abc-1" "$(echo "$body" | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["meta"]["requestId"])')"
check "ready" "200" "$(curl -s -o /dev/null -w '%{http_code}' "$base/ready")"
check "unknown route" "404" "$(curl -s -o /dev/null -w '%{http_code}' "$base/nope")"
check "unknown route code" "NOT_FOUND" "$(curl -sS "$base/nope" | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["code"])')"

# Strangers' checks of the contract, each against this running stack.
fuzz_log="$(mktemp)"
fuzz_started=$SECONDS
if AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" bash infra/scripts/fuzz.sh "$base" > "$fuzz_log" 2>&1; then
  passed=$((passed+1))
else
  failed=$((failed+1)); echo "FAIL schemathesis:"; cat "$fuzz_log"
fi
grep -E "generated|API Links|Seed:" "$fuzz_log" | sed 's/^ */schemathesis: /'
echo "schemathesis: $((SECONDS - fuzz_started)) s"
if API_BASE="$base" WS_URL="ws://127.0.0.1:$WS_PORT" bash infra/scripts/web.sh; then
  passed=$((passed+1))
else
  failed=$((failed+1)); echo "FAIL web checks (above)"
fi

stop
trap - EXIT
if pgrep -f "moto_launcher.py $MOTO_PORT" > /dev/null; then
  failed=$((failed+1)); echo "FAIL: the emulator outlived make dev"
else
  passed=$((passed+1))
fi
echo "smoke: $passed passed, $failed failed"
[[ $failed -eq 0 ]] || { cat "$log"; exit 1; }
