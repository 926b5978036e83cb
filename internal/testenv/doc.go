// Package testenv builds and starts the external servers that tests run
// against (docs/architecture.md, "Tests"): goaws, an SQS-protocol server, and the AWS Lambda
// Runtime Interface Emulator (RIE).
//
// # Binaries
//
// The servers are Go programs pinned in Tools and built with
//
//	GOBIN=<tmp> go install <package>@<version>
//
// outside this module, so their dependencies never enter our go.mod, then
// renamed into bin/<name> at the repository root (go install names the goaws
// binary "cmd" after its main package directory). A stamp file
// bin/.<name>.version records what was built; a stale or missing binary is
// rebuilt on first use, serialised across parallel test processes by an
// exclusive lock on bin/.lock. `go run ./internal/testenv/cmd/testtools`
// builds them ahead of time. The go command resolves them through the
// environment's GOPROXY, so an empty module cache only costs a download.
// Set TASKER_GOAWS_BIN or TASKER_AWS_LAMBDA_RIE_BIN to use a binary from
// elsewhere as is. A build that fails fails the test (never a skip).
//
// # goaws v0.5.4 quirks
//
// Read from the v0.5.4 source; the SendMessageBatch and AWSTraceHeader
// ones are pinned by tests in internal/queue/sqs, which fail when goaws
// changes:
//
//   - It listens on 0.0.0.0:<Port> whatever the config says: the listen
//     address is hard-coded in its main. The Host setting only shapes queue
//     URLs. StartGoaws therefore picks a free port and sets Host to
//     127.0.0.1, so clients talk to it over loopback, but the port is open
//     on all interfaces while the test runs.
//   - It speaks both the query protocol and the JSON protocol (which the
//     current SDK's SQS client uses), selected by Content-Type.
//   - The config is a YAML map of environments; the port must be a quoted
//     string (the YAML is converted to JSON into a string field). Without
//     a Region, queue URLs are http://<Host>:<Port>/<AccountId>/<name>; with
//     one they become http://<Region>.<Host>:… which does not resolve, so
//     StartGoaws sets none.
//   - SendMessageBatch is broken for the JSON protocol in two ways: its
//     response lists the sent entries under "SendMessageBatchResultEntry"
//     instead of "Successful", so the SDK sees no entry succeed (though all
//     were enqueued), and it ignores the entries' DelaySeconds (SendMessage
//     honours it). Use GoawsConfig, whose HTTP client corrects both, so code
//     under test needs no emulator switches; AWSConfig talks to goaws as is.
//   - MessageSystemAttributes (AWSTraceHeader) are accepted and dropped: a
//     received message never carries AWSTraceHeader. Message attributes
//     round-trip with correct MD5 digests.
//   - Per-message delay has no 900 s validation; ReceiveMessage long polls
//     in 100 ms steps for WaitTimeSeconds (whole seconds only) and always
//     returns every message attribute.
//   - Its queue registry is a global map that several handlers read
//     without a lock, a data race that lets CreateQueue concurrent with
//     other calls crash the server ("concurrent map read and map write").
//     Give each parallel test its own server: StartGoaws is cheap (tens of
//     milliseconds), or create queues through the config
//     (GoawsOptions.Queues).
//   - Visibility timeouts are enforced by a once-a-second sweep, so a
//     message reappears up to a second after its timeout.
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
