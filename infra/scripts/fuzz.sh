#!/usr/bin/env bash
# schemathesis at full strength (infra/fuzz/schemathesis.toml: every check,
# every phase, stateful included) against a running local stack.
# Usage: fuzz.sh BASE_URL [SEED]. It needs the stack's emulator
# (AWS_ENDPOINT_URL) to promote the fuzzing user to admin, so that the
# admin routes are exercised too.
#
# The users: an admin whose token drives the run; one each for logout and
# account deletion (their tokens end with their first success); a target
# for the admin routes that change a user; and a commenter, so that the
# admin has a notification to read and delete.
set -euo pipefail
cd "$(dirname "$0")/../.."
source infra/scripts/env.sh
base="$1"; seed="${2:-${FUZZ_SEED:-42}}"
[[ -n "${AWS_ENDPOINT_URL:-}" ]] || { echo "fuzz: AWS_ENDPOINT_URL must name the stack's emulator (to promote the admin)" >&2; exit 2; }
json() { .venv/bin/python -c "import json,sys; print(json.load(sys.stdin)$1)"; }
register() { # email [field of data] -> that field (default: the access token)
  curl -fsS -X POST "$base/api/v1/auth/register" -H 'content-type: application/json' \
    -d "{\"name\":\"Fuzz $1\",\"email\":\"$1@example.com\",\"password\":\"fuzzing-password-1\"}" \
    | json "${2:-[\"data\"][\"accessToken\"]}"
}
run="$(date +%s%N)"
admin_email="fuzz-admin-$run"
register "$admin_email" > /dev/null
./target/debug/admin promote "$admin_email@example.com" > /dev/null
FUZZ_ADMIN_TOKEN="$(curl -fsS -X POST "$base/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"$admin_email@example.com\",\"password\":\"fuzzing-password-1\"}" | json '["data"]["accessToken"]')"
FUZZ_LOGOUT_TOKEN="$(register "fuzz-logout-$run")"
FUZZ_DELETE_TOKEN="$(register "fuzz-delete-$run")"
# The one account the admin routes that change a user act on
# (schemathesis.toml says why).
FUZZ_TARGET_USER_ID="$(register "fuzz-target-$run" '["data"]["user"]["id"]')"
export FUZZ_ADMIN_TOKEN FUZZ_LOGOUT_TOKEN FUZZ_DELETE_TOKEN FUZZ_TARGET_USER_ID
commenter="$(register "fuzz-commenter-$run")"
post="$(curl -fsS -X POST "$base/api/v1/posts" -H "authorization: Bearer $FUZZ_ADMIN_TOKEN" \
  -H 'content-type: application/json' -d '{"title":"Fuzzing","body":"A post to comment on","tags":["fuzz"]}' \
  | json '["data"]["id"]')"
for n in 1 2 3; do
  curl -fsS -o /dev/null -X POST "$base/api/v1/posts/$post/comments" -H "authorization: Bearer $commenter" \
    -H 'content-type: application/json' -d "{\"body\":\"Comment $n\"}"
done
# The stream worker writes the notifications a moment after the comments.
for _ in $(seq 1 100); do
  count="$(curl -fsS "$base/api/v1/notifications/unread-count" -H "authorization: Bearer $FUZZ_ADMIN_TOKEN" | json '["data"]["count"]')"
  [[ "$count" -ge 3 ]] && break
  sleep 0.1
done
[[ "$count" -ge 3 ]] || { echo "fuzz: the admin has $count notifications, expected 3" >&2; exit 1; }

exec .venv/bin/schemathesis --config-file infra/fuzz/schemathesis.toml run "$base/openapi.json" \
  --phases examples,coverage,fuzzing,stateful --seed "$seed" --no-color
