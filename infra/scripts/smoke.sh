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
unset AWS_ENDPOINT_URL HOT_RELOAD
# The fuzzer sends thousands of requests from one IP and one user; the
# limits themselves are tested in tests/api/edge.rs.
export RATE_LIMIT_DEFAULT=1000000/60 RATE_LIMIT_LOGIN=1000000/60 RATE_LIMIT_FORGOT_PASSWORD=1000000/60 RATE_LIMIT_LOGIN_FAILURES=1000000/60 RATE_LIMIT_FORGOT_PASSWORD_EMAIL=1000000/60
# make dev's saved data starts empty here, and is checked across a restart below.
export DEV_STATE_DIR="$(mktemp -d)"
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

# Hot reload (infra/python/dev_reload.py): a change to a function's source
# is served within 60 s by a restarted gateway, on the same emulator (a user
# registered before still logs in), and an open WebSocket is closed with
# 1001 and its $disconnect run (its presence gone). The edit is undone by a
# trap whatever happens, and the original served again, so target/debug is
# left built from the committed source.
reload_started=$SECONDS
reload_file=functions/health/src/lib.rs
# One smoke run at a time edits the file: a second one in the same work
# tree would back up the first's edit and "restore" it.
exec {reload_lock}> target/.smoke-hot-reload.lock
flock "$reload_lock"
reload_backup="$(mktemp)"; ws_log="$(mktemp)"; ws_pid=
cp -p "$reload_file" "$reload_backup"
reload_restore() {
  cmp -s "$reload_backup" "$reload_file" || cp "$reload_backup" "$reload_file"
  [[ -z "$ws_pid" ]] || kill "$ws_pid" 2>/dev/null || true
}
trap 'reload_restore; stop' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
health_message() { curl -fsS "$base/health" 2>/dev/null | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["message"])' 2>/dev/null || true; }
# Seconds until /health's message is $1; fails after 60 s.
served_within() {
  local from=${EPOCHREALTIME/./} now
  until [[ "$(health_message)" == "$1" ]]; do
    now=${EPOCHREALTIME/./}
    (( now - from < 60000000 )) || return 1
    sleep 0.2
  done
  now=${EPOCHREALTIME/./}
  printf '%d.%d' $(( (now - from) / 1000000 )) $(( (now - from) / 100000 % 10 ))
}
# The user's connections, and how many of them are in presence.
connections() {
  (source infra/scripts/env.sh; AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" exec ./target/debug/dev-state connections "$1")
}
reload_email="hot-reload-$RANDOM$RANDOM@example.com"
registered="$(curl -sS -H 'content-type: application/json' "$base/api/v1/auth/register" \
  -d "{\"name\":\"Reload\",\"email\":\"$reload_email\",\"password\":\"reload-pass-1\"}")"
read -r reload_user reload_token < <(echo "$registered" | .venv/bin/python -c 'import json,sys; d=json.load(sys.stdin)["data"]; print(d["user"]["id"], d["accessToken"])' || true) || true
check "hot reload: a user registers" "yes" "$([[ -n "$reload_token" ]] && echo yes || echo "no: $registered")"
ws_flag=(); node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' || ws_flag=(--experimental-websocket)
node "${ws_flag[@]}" -e '
const ws = new WebSocket(process.argv[1]);
ws.onopen = () => console.log("open");
ws.onclose = (event) => { console.log(`closed ${event.code}`); process.exit(0); };
ws.onerror = () => {};' "ws://127.0.0.1:$WS_PORT/?token=$reload_token" > "$ws_log" 2>&1 &
ws_pid=$!
for _ in $(seq 1 100); do grep -q '^open' "$ws_log" && break; sleep 0.1; done
check "hot reload: a socket opens" "1 1" "$(connections "$reload_user")"
check "hot reload: health's message is in $reload_file" "1" "$(grep -c '"Service is healthy"' "$reload_file")"
# From the file as it is: a build of another edit may still be under way.
served_within "Service is healthy" > /dev/null || { failed=$((failed+1)); echo "FAIL hot reload: health's message is not served before the edit"; }
sed -i 's/"Service is healthy"/"Service is healthy (hot reload check)"/' "$reload_file"
if took="$(served_within "Service is healthy (hot reload check)")"; then
  passed=$((passed+1)); echo "hot reload: the edit was served after $took s"
else
  failed=$((failed+1)); echo "FAIL hot reload: the edit was not served within 60 s"
fi
for _ in $(seq 1 50); do grep -q '^closed' "$ws_log" && break; sleep 0.1; done
check "hot reload: the socket was closed going away" "closed 1001" "$(grep '^closed' "$ws_log")"
check "hot reload: \$disconnect removed it" "0 0" "$(connections "$reload_user")"
check "hot reload: the emulator kept the user" "200" "$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
  "$base/api/v1/auth/login" -d "{\"email\":\"$reload_email\",\"password\":\"reload-pass-1\"}")"
reload_restore
if took="$(served_within "Service is healthy")"; then
  passed=$((passed+1)); echo "hot reload: the restored source was served after $took s"
else
  failed=$((failed+1)); echo "FAIL hot reload: the restored source was not served within 60 s"
fi
trap stop EXIT
exec {reload_lock}>&-
echo "hot reload: $((SECONDS - reload_started)) s"

# Saved state (DEV_STATE_DIR, fresh above): the seed binary (`make seed`)
# fills the stack through its API; then dev.sh is stopped and started
# again on the same state and ports, and the seeded user sees the same
# posts, comments, notifications, avatar (its object fetched from S3) and
# admin, moto holds the same emails (no second notification or email from
# a replayed stream), and a second seed finds everything and adds nothing.
state_started=$SECONDS
moto="http://127.0.0.1:$MOTO_PORT"
seed_log="$(mktemp)"
# With make seed's environment (env.sh: the table's name, for the admin).
run_seed() { (source infra/scripts/env.sh; AWS_ENDPOINT_URL="$moto" exec ./target/debug/seed) > "$seed_log" 2>&1 || { cat "$seed_log"; return 1; }; }
# What a seeded user sees (and the admin's role), and every email moto
# holds; the comment emails are sent by the stream worker, so the first
# look waits for them.
seen() {
  .venv/bin/python - "$base" "$moto" "$seed_log" "${1:-0}" <<'PY'
import json, sys, time, urllib.request
base, moto, seed_log, wait = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
# The logins the seed printed: role, email, password, name.
logins = [line.split()[:3] for line in open(seed_log) if line.split()[:1] in (["admin"], ["user"])]
def call(path, token=None, body=None):
    request = urllib.request.Request(base + path, data=body and json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(request) as response:
        return json.load(response)["data"]
def emails():
    return json.load(urllib.request.urlopen(f"{moto}/moto-api/data.json")).get("ses", {}).get("Message", [])
def comment_emails():
    seeded = [[email] for _, email, _ in logins]
    return sum(1 for m in emails() if m["destinations"]["ToAddresses"] in seeded and m["subject"] == "New comment on your post")
sessions = {}
for role, email, password in logins:  # the first of each role
    sessions.setdefault(role, call("/api/v1/auth/login", body={"email": email, "password": password}))
token, me = sessions["user"]["accessToken"], sessions["user"]["user"]
posts = call(f"/api/v1/posts?authorId={me['id']}&limit=100", token)
comments = sum(len(call(f"/api/v1/posts/{p['id']}/comments?limit=100", token)) for p in posts)
notifications = call("/api/v1/notifications?limit=100", token)
with urllib.request.urlopen(call("/api/v1/users/me", token)["avatarUrl"]) as response:
    avatar = f"{response.headers['Content-Type']}:{len(response.read())}"
deadline = time.time() + wait
while comment_emails() < 4 and time.time() < deadline:
    time.sleep(0.2)
print(f"posts={len(posts)} comments={comments} notifications={len(notifications)} avatar={avatar} "
      f"verified={me['emailVerified']} admin={sessions['admin']['user']['role']} comment-emails={comment_emails()} emails={len(emails())}")
PY
}
if run_seed; then
  passed=$((passed+1))
  before="$(seen 20)"
  check "seed: what its user sees" "posts=2 comments=2 notifications=2 avatar=image/png:3172 verified=True admin=admin comment-emails=4" "${before% emails=*}"
  stop
  check "state: saved on stop" "yes" "$([[ -s "$DEV_STATE_DIR/state.json" ]] && grep -q '^saved ' "$log" && echo yes || echo no)"
  setsid bash infra/scripts/dev.sh >> "$log" 2>&1 &
  dev_pid=$!
  deadline=$((SECONDS + 300))
  until curl -fsS "$base/health" > /dev/null 2>&1; do
    kill -0 "$dev_pid" 2>/dev/null || { cat "$log"; echo "smoke: the restarted dev.sh exited early" >&2; exit 1; }
    (( SECONDS < deadline )) || { cat "$log"; echo "smoke: no /health from the restarted dev.sh within 300 s" >&2; exit 1; }
    sleep 0.2
  done
  check "state: loaded on start" "yes" "$(grep -q '^loaded [1-9][0-9]* items, [1-9][0-9]* objects and [1-9][0-9]* emails' "$log" && echo yes || echo no)"
  # A moment for a replayed stream record to make a notification or an email.
  sleep 2
  check "state: the same after a restart" "$before" "$(seen)"
  if run_seed; then
    check "seed: a second run adds nothing" "users 0 new, 3 there already; verified emails 0 new, 3 there already; avatars 0 new, 3 there already; posts 0 new, 4 there already; comments 0 new, 4 there already" \
      "$(sed -n 's/^seeded [^ ]*: //p' "$seed_log")"
    check "seed: the same after a second run" "$before" "$(seen)"
  else
    failed=$((failed+1)); echo "FAIL seed, second run (above)"
  fi
else
  failed=$((failed+1)); echo "FAIL seed (above)"
fi
echo "saved state: $((SECONDS - state_started)) s"

stop
trap - EXIT
if pgrep -f "moto_launcher.py $MOTO_PORT" > /dev/null; then
  failed=$((failed+1)); echo "FAIL: the emulator outlived make dev"
else
  passed=$((passed+1))
fi
echo "smoke: $passed passed, $failed failed"
[[ $failed -eq 0 ]] || { cat "$log"; exit 1; }
