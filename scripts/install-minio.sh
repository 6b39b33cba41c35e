#!/usr/bin/env bash
# Installs the MinIO server the S3 tests run against (internal/s3test).
# Idempotent: does nothing when $(go env GOPATH)/bin/minio exists.
# Building it from source takes several minutes on 2 cores; CI should cache
# $(go env GOPATH)/bin/minio (and the module cache) between runs.
set -euo pipefail

# Pinned so CI builds the same server every time.
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"

bin="$(go env GOPATH)/bin/minio"
if [ -x "$bin" ]; then
	echo "minio already installed: $bin"
	exit 0
fi

echo "building minio@${MINIO_VERSION} (slow: several minutes)..."
start=$(date +%s)
# -buildvcs=false: the build runs outside any repository of minio's own.
# Run from a temp dir so the project's go.mod is never touched.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && GOFLAGS=-buildvcs=false GO111MODULE=on go install "github.com/minio/minio@${MINIO_VERSION}")
echo "installed $bin in $(( $(date +%s) - start ))s"
