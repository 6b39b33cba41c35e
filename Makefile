# A binary without `go run`'s compile at every start. The first build of
# a clean checkout takes a few minutes (the BigQuery, AWS and Arrow
# clients); later ones take seconds.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Release targets: OS/arch pairs.
PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64

.PHONY: build install test release clean

build: ## bin/backfill
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/backfill ./cmd/backfill

install: ## backfill in $(go env GOPATH)/bin
	$(GO) install -ldflags "$(LDFLAGS)" ./cmd/backfill

test: ## every test, as CI runs them
	./scripts/test.sh

release: ## dist/backfill-VERSION-OS-ARCH.tar.gz for each platform, and their SHA-256 sums
	rm -rf dist && mkdir -p dist
	for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; name=backfill-$(VERSION)-$$os-$$arch; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o dist/$$name/backfill ./cmd/backfill || exit 1; \
		cp README.md PLUGINS.md dist/$$name/ && tar -C dist -czf dist/$$name.tar.gz $$name && rm -r dist/$$name; \
	done
	cd dist && sha256sum *.tar.gz > SHA256SUMS

clean:
	rm -rf bin dist
