#!/usr/bin/env bash
# Runs every test of Pancake Webhooks: formatting and vet checks, the Go
# suites with the race detector (SQLite always; PostgreSQL too when
# PANCAKE_TEST_POSTGRES_URL is set), and the TypeScript SDK compatibility
# test against a real server.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './compat/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -count=1 -timeout 12m ./...

echo "== TypeScript SDK compatibility"
bash compat/ts/run.sh
