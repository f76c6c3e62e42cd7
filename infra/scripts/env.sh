# Local defaults shared by `make dev`, `make admin` and the smoke test.
# Anything already set in the environment wins.
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export TABLE_NAME="${TABLE_NAME:-social-local}"
export BUCKET_NAME="${BUCKET_NAME:-social-local-uploads}"
export S3_FORCE_PATH_STYLE="${S3_FORCE_PATH_STYLE:-true}"
export API_PORT="${API_PORT:-3000}"
export WS_PORT="${WS_PORT:-3001}"
export LOG_LEVEL="${LOG_LEVEL:-info}"
# A development-only secret; deployed stacks get theirs from Secrets Manager
# (template.yaml resolves the secret named by its JwtSecretName parameter).
export JWT_SECRET="${JWT_SECRET:-local-development-secret-not-for-production-use}"
export EMAIL_FROM="${EMAIL_FROM:-no-reply@social.local}"
export APP_URL="${APP_URL:-http://127.0.0.1:$API_PORT}"
MOTO_PORT="${MOTO_PORT:-4566}"
# The functions reach the local gateway's @connections API here.
export WS_MANAGEMENT_ENDPOINT="${WS_MANAGEMENT_ENDPOINT:-http://127.0.0.1:$WS_PORT/local}"
# /docs loads its pinned renderer from the local gateway's stand-in for
# jsDelivr (infra/src/cdn.rs) rather than from the internet.
export DOCS_ASSETS_URL="${DOCS_ASSETS_URL:-/_cdn/npm}"
