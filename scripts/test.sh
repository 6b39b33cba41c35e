#!/usr/bin/env bash
# Runs every test: the README's test command, and what CI runs.
# The S3 tests need a MinIO server binary; this installs it once (a few
# minutes to build) and the tests start and stop it themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$(go env GOPATH)/bin:$PATH"
# Tests talk only to servers on this machine. Should a test ever fall back
# to a cloud credential chain, its metadata lookups go nowhere instead of
# to a link-local address.
export AWS_EC2_METADATA_DISABLED=true
export GCE_METADATA_HOST=127.0.0.1:9
bash scripts/install-minio.sh

echo "== go vet"
go vet ./...

echo "== go test, race detector on"
# -short leaves out the few slow end-to-end tests, run next without the
# race detector (which would make them minutes long).
go test -race -short -p 2 -timeout 15m -count=1 "$@" ./...

echo "== go test, slow end-to-end tests"
go test -p 1 -timeout 20m -count=1 -run 'TestLarge|TestKilled|KilledResumed|TestExitPaths|TestNDJSONHugeLine|TestWideInputs|TestLedgerKilled|TestLedgerMillion|TestSyncSendsOnlyChanges|TestSyncKilled' "$@" \
	./cmd/backfill ./configs ./sources/s3 ./sources/format
