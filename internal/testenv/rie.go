package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// RIEOptions configures StartRIE.
type RIEOptions struct {
	// Bootstrap is the function's command: for a Go function, the binary
	// built by BuildLambda (required).
	Bootstrap []string
	// Env is added to the environment of the emulator and so of the
	// function (the emulator forwards its environment).
	Env map[string]string
	// Timeout is the function timeout (AWS_LAMBDA_FUNCTION_TIMEOUT;
	// default 30 s).
	Timeout time.Duration
	// FunctionName is AWS_LAMBDA_FUNCTION_NAME (default "test_function").
	FunctionName string
	// LogLevel is the emulator's log level (default "error").
	LogLevel string
}

// RIEInvokePath is the emulator's invoke route. The function name in the
// path is always "function".
const RIEInvokePath = "/2015-03-31/functions/function/invocations"

// StartRIE starts the Lambda Runtime Interface Emulator running
// opts.Bootstrap and returns its endpoint, http://127.0.0.1:<port>; POST
// an event to endpoint+RIEInvokePath to invoke the function synchronously.
// The emulator runs one invocation at a time. It is killed when the test
// ends.
func StartRIE(t testing.TB, opts RIEOptions) (endpoint string) {
	t.Helper()
	if len(opts.Bootstrap) == 0 {
		t.Fatal("testenv: StartRIE needs a Bootstrap command")
	}
	bin := Binary(t, RIE.Name)
	if opts.LogLevel == "" {
		opts.LogLevel = "error"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	var lastErr error
	for range 3 {
		port, apiPort := FreePort(t), FreePort(t)
		if port == apiPort {
			continue
		}
		args := append([]string{
			"--log-level", opts.LogLevel,
			"--runtime-interface-emulator-address", hostPort(port),
			"--runtime-api-address", hostPort(apiPort),
		}, opts.Bootstrap...)
		cmd := exec.Command(bin, args...)
		cmd.Dir = filepath.Dir(opts.Bootstrap[0])
		cmd.Env = append(os.Environ(),
			"AWS_LAMBDA_FUNCTION_TIMEOUT="+strconv.Itoa(int((opts.Timeout+time.Second-1)/time.Second)),
			"AWS_REGION=us-east-1", "AWS_DEFAULT_REGION=us-east-1",
		)
		if opts.FunctionName != "" {
			cmd.Env = append(cmd.Env, "AWS_LAMBDA_FUNCTION_NAME="+opts.FunctionName)
		}
		for k, v := range opts.Env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		// Both listeners must be up: a runtime-API port taken between
		// FreePort and the emulator's bind leaves the function nothing to
		// call, and another pair of ports is tried.
		invoke, api := dialReady(hostPort(port)), dialReady(hostPort(apiPort))
		_, lastErr = start(t, "aws-lambda-rie", cmd, func(ctx context.Context) error {
			if err := invoke(ctx); err != nil {
				return err
			}
			return api(ctx)
		})
		if lastErr == nil {
			return "http://" + hostPort(port)
		}
	}
	t.Fatalf("testenv: %v", lastErr)
	return ""
}

// BuildLambda builds the Go main package pkg (an import path or a
// ./relative path from the test's package directory) as a Lambda bootstrap
// for this platform and returns the binary's path in a temporary
// directory.
func BuildLambda(t testing.TB, pkg string) string {
	t.Helper()
	goBin, err := goCommand()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	out := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.Command(goBin, "build", "-tags", "lambda.norpc", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: go build %s: %v\n%s", pkg, err, b)
	}
	return out
}
