# Lambda builds for `sam build` (template.yaml: BuildMethod: makefile).
# The root Makefile includes this file:
#
#     include functions/build.mk
#
# SAM runs `make build-<LogicalId>` in the repository root (every function's
# CodeUri is .) with ARTIFACTS_DIR set; each target writes the function's
# bootstrap binary there for the provided.al2023 runtime on arm64.
# Try one by hand:  make build-SchedulerFunction ARTIFACTS_DIR=/tmp/out

GO            ?= go
LAMBDA_GOOS   ?= linux
LAMBDA_GOARCH ?= arm64
# lambda.norpc drops the legacy RPC mode that provided.* runtimes never use.
LAMBDA_FLAGS  ?= -trimpath -buildvcs=false -tags lambda.norpc -ldflags='-s -w'

# lambda-build,<directory under functions/>
define lambda-build
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set (sam build sets it)" >&2; exit 2; }
	CGO_ENABLED=0 GOOS=$(LAMBDA_GOOS) GOARCH=$(LAMBDA_GOARCH) $(GO) build $(LAMBDA_FLAGS) -o "$(ARTIFACTS_DIR)/bootstrap" ./functions/$(1)
endef

.PHONY: build-ApiFunction build-SchedulerFunction build-HandlersFunction build-TriggerFunction build-MigrateFunction

build-ApiFunction:
	$(call lambda-build,api)

build-SchedulerFunction:
	$(call lambda-build,scheduler)

build-HandlersFunction:
	$(call lambda-build,handlers)

build-TriggerFunction:
	$(call lambda-build,trigger)

build-MigrateFunction:
	$(call lambda-build,migrate)
