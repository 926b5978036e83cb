# Tasker developer tasks. `make test` is what CI runs (.ci/run).

GO           ?= go
TEST_TIMEOUT ?= 15m
# Extra flags for go test, e.g. make test TESTFLAGS='-race -count=1'
TESTFLAGS    ?=
PKGS         ?= ./...

.PHONY: build test dev lint soak bench

## build: compile every package and the tasker CLI into bin/tasker
build:
	$(GO) build ./...
	$(GO) build -o bin/tasker ./cmd/tasker

## test: run all tests against one throwaway PostgreSQL shared by every package
# scripts/withpg starts the server from the system's PostgreSQL binaries,
# exports TASKER_TEST_DATABASE_URL (internal/pgtest gives each test its own
# database on it), runs go test, and always stops the server afterwards.
# scripts/install-test-deps installs Chromium for the browser test when missing.
test:
	@scripts/install-test-deps
	@$(GO) build -o bin/withpg ./scripts/withpg
	bin/withpg -- $(GO) test -timeout $(TEST_TIMEOUT) $(TESTFLAGS) $(PKGS)

## soak: crash, database-outage and 10,000-task overload scenarios (docs/reliability.md)
soak:
	@$(GO) build -o bin/withpg ./scripts/withpg
	bin/withpg -- $(GO) test -tags soak -run Soak -timeout 30m -v ./internal/reliability/...

## bench: engine benchmark matrix (history x live tasks) on an embedded Postgres (docs/benchmarks.md)
bench:
	$(GO) run ./cmd/tasker bench

## dev: run Tasker locally (API, scheduler, handlers; embedded Postgres)
dev:
	$(GO) run ./cmd/tasker dev

## lint: fail on unformatted files, then go vet
lint:
	@unformatted="$$(find . -name '*.go' -not -path './.*' -not -path './bin/*' -print0 | xargs -0 gofmt -l)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

include functions/build.mk
