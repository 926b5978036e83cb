// Package testenv builds and starts the external servers that tests run
// against (docs/architecture.md, "Tests"): moto, which emulates SQS, S3,
// EventBridge and Secrets Manager, and the AWS Lambda Runtime Interface
// Emulator (RIE).
//
// # moto
//
// moto_server (moto 5.2.1, a Python program) must be installed: Moto finds
// it on PATH or at $TASKER_MOTO_SERVER and fails the test naming the install
// step when it is missing (scripts/install-test-deps reports it). One
// server serves every test of a test binary: Moto starts it on first use
// on a free 127.0.0.1 port, waits until SQS answers ListQueues, and the
// kernel kills it when the test binary exits (Linux parent-death signal).
// moto keeps everything in memory and shares it between callers, so each
// test creates its own resources under UniqueName names (CreateQueue does).
//
// What moto does as AWS does and goaws, its predecessor, did not: batch
// responses, per-entry DelaySeconds, the AWSTraceHeader system attribute,
// the 0–900 s delay limit, redrive policies (maxReceiveCount), S3 event
// notifications to SQS and EventBridge, EventBridge rules with SQS targets,
// and Secrets Manager. Known differences:
//
//   - It answers a partial SendMessageBatch failure with SenderFault as the
//     string "true" where the SDK expects a boolean, and the SDK fails to
//     decode the response. Tests of batch-failure handling therefore use
//     an in-process fake SQS (internal/queue/sqs).
//   - It drops the system attributes (AWSTraceHeader) of SendMessageBatch
//     entries; SendMessage keeps them.
//   - ARNs and queue URLs name account 123456789012 (MotoAccountID).
//   - It checks no signatures; it picks the service from the credential
//     scope of the Authorization header, so any SDK client works.
//
// # Binaries
//
// The Go servers are pinned in Tools and built with
//
//	GOBIN=<tmp> go install <package>@<version>
//
// outside this module, so their dependencies never enter our go.mod, then
// renamed into bin/<name> at the repository root. A stamp file
// bin/.<name>.version records what was built; a stale or missing binary is
// rebuilt on first use, serialised across parallel test processes by an
// exclusive lock on bin/.lock. `go run ./internal/testenv/cmd/testtools`
// builds them ahead of time. The go command resolves them through the
// environment's GOPROXY, so an empty module cache only costs a download.
// Set TASKER_AWS_LAMBDA_RIE_BIN to use a binary from elsewhere as is. A
// build that fails fails the test (never a skip).
//
// # RIE quirks
//
//   - The emulator serves one invocation at a time on
//     POST /2015-03-31/functions/function/invocations; a concurrent invoke
//     gets 400. It initialises the function lazily on the first invoke.
//   - It defaults to 0.0.0.0:8080 and a runtime API on 127.0.0.1:9001;
//     StartRIE sets both to free loopback ports so tests can run in
//     parallel.
//   - The function process inherits the emulator's environment
//     (AWS_LAMBDA_FUNCTION_NAME etc. default to test values).
package testenv
