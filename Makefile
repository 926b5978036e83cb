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

# gqlgen compiles internal/graphql/schema.graphqls into exec_gen.go and
# models_gen.go. Like sqlc it is pinned by its own module, tools/gqlgen, so
# its code generator's dependencies stay out of go.mod (go.mod has only its
# small runtime). It must run from internal/graphql, in the main module,
# so it is built into bin/ first.
GQLGEN ?= bin/gqlgen
GQLGEN_FILES = internal/graphql/exec_gen.go internal/graphql/models_gen.go

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

## generate: regenerate internal/store/dbgen from sql/ with sqlc and internal/graphql with gqlgen
generate: bin/gqlgen
	$(SQLC) -f $(CURDIR)/sqlc.yaml generate
	cd internal/graphql && $(CURDIR)/$(GQLGEN) generate --config gqlgen.yml

.PHONY: bin/gqlgen
bin/gqlgen:
	@$(GO) -C tools/gqlgen build -o $(CURDIR)/bin/gqlgen github.com/99designs/gqlgen

## lint: fail on unformatted files, stale generated code or a forbidden import, then go vet,
## cfn-lint on template.yaml, infra/database.yaml and template.yaml's SAM translation
# The generated-code check runs sqlc on a copy of sqlc.yaml and sql/ and
# compares the whole output directory, so a missing, edited or leftover file
# in internal/store/dbgen fails it. internal/importrules fails on an import
# that breaks a rule of docs/architecture.md, "Import rules". The SAM
# translation is what CloudFormation deploys (scripts/sam-translate, offline);
# functions/transformed_test.go asserts its resources. cfn-lint and the SAM
# translator are Python tools (pip install cfn-lint aws-sam-translator).
# W1031 is ignored on the translation for the reason template.yaml ignores
# it on the functions: cfn-lint resolves DatabaseSecretArn to its empty
# default, which the conditions around the generated policies rule out.
# W2001 (unused parameter) too: with its default, Disabled, the translator
# resolves Tracing away.
lint:
	@unformatted="$$(find . -name '*.go' -not -path './.*' -not -path './bin/*' -print0 | xargs -0 gofmt -l)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	@tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	cp -R sqlc.yaml sql "$$tmp"/ && $(SQLC) -f "$$tmp/sqlc.yaml" generate && \
	diff -ru internal/store/dbgen "$$tmp/internal/store/dbgen" || \
	{ echo "internal/store/dbgen is stale or sqlc failed: run make generate"; exit 1; }
	@$(MAKE) --no-print-directory bin/gqlgen
	@# gqlgen writes in place: keep the committed files, regenerate, compare,
	@# and put the committed ones back whatever the outcome.
	@tmp="$$(mktemp -d)"; trap 'cp "$$tmp"/*.go internal/graphql/ && rm -rf "$$tmp"' EXIT; \
	cp $(GQLGEN_FILES) "$$tmp"/ && mkdir "$$tmp/new" && \
	(cd internal/graphql && $(CURDIR)/$(GQLGEN) generate --config gqlgen.yml) && \
	cp $(GQLGEN_FILES) "$$tmp/new"/ && diff -u "$$tmp/exec_gen.go" "$$tmp/new/exec_gen.go" && \
	diff -u "$$tmp/models_gen.go" "$$tmp/new/models_gen.go" || \
	{ echo "internal/graphql is stale or gqlgen failed: run make generate"; exit 1; }
	$(GO) test -count=1 ./internal/importrules/
	$(GO) vet ./...
	@command -v cfn-lint >/dev/null 2>&1 || { echo "cfn-lint is not installed: pip install cfn-lint"; exit 1; }
	@python3 -c 'import samtranslator' 2>/dev/null || { echo "the SAM translator is not installed: pip install aws-sam-translator"; exit 1; }
	cfn-lint template.yaml infra/database.yaml
	@tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	python3 scripts/sam-translate/sam-translate.py template.yaml > "$$tmp/template.json" && \
	cfn-lint --ignore-checks W1031 W2001 -- "$$tmp/template.json" || { echo "the SAM translation of template.yaml fails cfn-lint"; exit 1; }
	$(GO) test -count=1 -run 'TestTransformedTemplate|TestTemplate$$' ./functions/

include functions/build.mk
