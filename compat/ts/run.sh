#!/usr/bin/env bash
# Compatibility test: the published TypeScript SDK pancake-client-sdk@1.0.2
# (its webhooks module, unchanged but for client.baseUrl) against a real
# Pancake Webhooks server built from this tree.
#
#   bash compat/ts/run.sh
#
# Needs Go, Node 20+ and npm, and the npm registry. It builds the server,
# starts it on a free port with a throw-away SQLite database, waits for
# /readyz, creates a shop through the admin API, installs the SDK with
# `npm ci` (and the standardwebhooks reference library, which checks every
# delivery's signature beside the test's own), and runs
# compat/ts/webhooks.test.mjs with node's test runner.
# Everything it starts or writes outside compat/ts/{node_modules,.sdk} is
# removed on exit. Exits non-zero on any failure.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ready_timeout=${PANCAKE_COMPAT_READY_TIMEOUT:-30}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pancake-compat.XXXXXX")
server_pid=""
cleanup() {
  status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    # Graceful shutdown first; then no more waiting.
    for _ in $(seq 1 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

print_server_log() {
  echo "---- server log (last 80 lines) ----" >&2
  tail -n 80 "$tmp/server.log" >&2 || true
  echo "---- end of server log ----" >&2
}

command -v node >/dev/null || { echo "compat: node is required (Node 20+)" >&2; exit 1; }
command -v npm >/dev/null || { echo "compat: npm is required" >&2; exit 1; }
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "compat: Node 20+ is required, found $(node --version)" >&2
  exit 1
fi

echo "== compat: npm ci (pancake-client-sdk@1.0.2, standardwebhooks@1.1.1)"
(cd "$here" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)

# The package declares "type": "module" over CommonJS files, so Node loads
# it only from a copy of dist/ whose nearest package.json says commonjs.
sdk="$here/.sdk/dist"
rm -rf "$here/.sdk"
mkdir -p "$here/.sdk"
cp -R "$here/node_modules/pancake-client-sdk/dist" "$sdk"
printf '{"type":"commonjs"}\n' >"$sdk/package.json"

echo "== compat: go build ./cmd/pancake-webhooks"
if ! (cd "$root" && go build -o "$tmp/pancake-webhooks" ./cmd/pancake-webhooks); then
  echo "compat: go build ./cmd/pancake-webhooks failed" >&2
  exit 1
fi

port=$(node -e '
const s = require("net").createServer();
s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });')
origin="http://127.0.0.1:$port"
admin_token=$(node -p 'require("crypto").randomBytes(24).toString("hex")')
shop_id=compat

echo "== compat: starting the server on $origin"
"$tmp/pancake-webhooks" serve \
  --addr "127.0.0.1:$port" \
  --db "sqlite:$tmp/compat.db" \
  --admin-token "$admin_token" \
  --allow-private-networks \
  --allow-http \
  >"$tmp/server.log" 2>&1 &
server_pid=$!

if ! api_key=$(node "$here/bootstrap.mjs" "$origin" "$admin_token" "$shop_id" "$server_pid" "$ready_timeout"); then
  print_server_log
  exit 1
fi

echo "== compat: node --test webhooks.test.mjs"
test_status=0
PANCAKE_COMPAT_BASE_URL="$origin/api/v1" \
PANCAKE_COMPAT_API_KEY="$api_key" \
PANCAKE_COMPAT_SHOP_ID="$shop_id" \
PANCAKE_COMPAT_ADMIN_TOKEN="$admin_token" \
PANCAKE_COMPAT_SDK_DIR="$sdk" \
  node --test --test-reporter=spec "$here/webhooks.test.mjs" || test_status=$?

if [ "$test_status" -ne 0 ]; then
  echo "compat: FAILED (node --test exited $test_status)" >&2
  print_server_log
  exit 1
fi
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "compat: the server exited during the test" >&2
  print_server_log
  exit 1
fi
echo "compat: OK"
