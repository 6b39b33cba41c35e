#!/usr/bin/env bash
# Runs every test: the README's test command, and what CI runs.
# The S3 tests need a MinIO server binary; this installs it once (a few
# minutes to build) and the tests start and stop it themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$(go env GOPATH)/bin:$PATH"
bash scripts/install-minio.sh

echo "== go vet"
go vet ./...

echo "== go test (race detector on)"
# -p 2: two packages at a time on a 2-core machine; -timeout caps a hang.
go test -race -p 2 -timeout 15m -count=1 "$@" ./...
