# Tasker developer tasks. `make test` is what CI runs (.ci/run).

GO           ?= go
TEST_TIMEOUT ?= 15m
# Extra flags for go test, e.g. make test TESTFLAGS='-race -count=1'
TESTFLAGS    ?=
PKGS         ?= ./...

# sqlc compiles sql/queries into typed Go (sqlc.yaml). It is pinned by its
# own module, tools/sqlc, to keep its large dependencies out of go.mod. The
# first run builds it from the module proxy (a few minutes: with cgo it
# compiles PostgreSQL's parser in C, without cgo it uses a WebAssembly build
# of it); later runs reuse the Go build cache.
SQLC ?= $(GO) -C tools/sqlc tool sqlc

.PHONY: build test dev lint soak bench generate fuzz

## build: compile every package and the tasker CLI into bin/tasker
build:
	$(GO) build ./...
	$(GO) build -o bin/tasker ./cmd/tasker

## test: run all tests against one throwaway PostgreSQL shared by every package
# scripts/withpg starts the server from the system's PostgreSQL binaries,
# exports TASKER_TEST_DATABASE_URL (internal/pgtest gives each test its own
# database on it), runs go test, and always stops the server afterwards.
# scripts/install-test-deps first installs what the tests start and is missing
# (PostgreSQL server binaries, Chromium, curl, jq) when run as root with apt-get.
test:
	@scripts/install-test-deps
	@$(GO) build -o bin/withpg ./scripts/withpg
	bin/withpg -- sh -c '$(GO) test -timeout $(TEST_TIMEOUT) $(TESTFLAGS) $(PKGS) && scripts/fuzz'

## fuzz: every fuzz target for FUZZTIME each (default 3s); make test runs it too
fuzz:
	@$(GO) build -o bin/withpg ./scripts/withpg
	bin/withpg -- scripts/fuzz

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

## generate: regenerate internal/store/dbgen from sql/ with sqlc
generate:
	$(SQLC) -f $(CURDIR)/sqlc.yaml generate

## lint: fail on unformatted files, stale generated code or a forbidden import, then go vet
# The generated-code check runs sqlc on a copy of sqlc.yaml and sql/ and
# compares the whole output directory, so a missing, edited or leftover file
# in internal/store/dbgen fails it. internal/importrules fails on an import
# that breaks a rule of docs/architecture.md, "Import rules".
lint:
	@unformatted="$$(find . -name '*.go' -not -path './.*' -not -path './bin/*' -print0 | xargs -0 gofmt -l)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	@tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	cp -R sqlc.yaml sql "$$tmp"/ && $(SQLC) -f "$$tmp/sqlc.yaml" generate && \
	diff -ru internal/store/dbgen "$$tmp/internal/store/dbgen" || \
	{ echo "internal/store/dbgen is stale or sqlc failed: run make generate"; exit 1; }
	$(GO) test -count=1 ./internal/importrules/
	$(GO) vet ./...

include functions/build.mk
