// Package lambdalocal runs Lambda functions written in Python and Node.js
// on this machine, the way Lambda runs them, for local mode
// (docs/architecture.md, "Local mode"; docs/handlers.md, "Python" and
// "Node.js"). A step whose handler is "lambda:NAME" runs the function NAME
// of lambdas.local.yaml: one subprocess per invocation, started with the
// language's runtime shim (package runtimes), which calls
// handler(event, context) and hands back the result or the error.
//
// Failures map to what Lambda reports, so the engine records them exactly
// as on AWS (docs/handlers.md, "Failures"): an exception is an unhandled
// error of its type, a timeout "Sandbox.Timedout", a crash
// "Runtime.ExitError", a result that is not JSON "Runtime.MarshalError",
// one over Lambda's 6 MiB response limit "Function.ResponseSizeTooLarge".
package lambdalocal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/runtimes"
)

// MaxResponseBytes is Lambda's limit on a function's response (6 MiB).
const MaxResponseBytes = 6 << 20

// Lambda error types the runner reports itself.
const (
	ErrorTimeout      = "Sandbox.Timedout"
	ErrorExit         = "Runtime.ExitError"
	ErrorMarshal      = "Runtime.MarshalError"
	ErrorResponseSize = "Function.ResponseSizeTooLarge"
)

// ErrNoRuntime is wrapped by Check and Run when the language's interpreter
// is not installed.
var ErrNoRuntime = errors.New("runtime not found")

// Option configures New.
type Option func(*Runner)

// WithLogger sets where the functions' stdout and stderr lines are logged
// (at info, with the function and request id).
func WithLogger(l *slog.Logger) Option {
	return func(r *Runner) {
		if l != nil {
			r.log = l
		}
	}
}

// WithPrepare sets a hook that rewrites each event before the function
// sees it (e.g. to resolve payload references); an error fails the
// invocation as an unhandled error of type "Tasker.PrepareError".
func WithPrepare(fn func(ctx context.Context, fn Function, event []byte) ([]byte, error)) Option {
	return func(r *Runner) { r.prepare = fn }
}

// WithInterpreters overrides the commands that run each language (default
// python3 and node, found on PATH).
func WithInterpreters(python, node string) Option {
	return func(r *Runner) {
		if python != "" {
			r.python = python
		}
		if node != "" {
			r.node = node
		}
	}
}

// Runner runs the functions of a local function map. It is safe for
// concurrent use; it starts nothing until Run.
type Runner struct {
	fns     Functions
	log     *slog.Logger
	prepare func(ctx context.Context, fn Function, event []byte) ([]byte, error)
	python  string
	node    string
}

// New returns a runner for fns.
func New(fns Functions, opts ...Option) *Runner {
	r := &Runner{fns: fns, log: slog.New(slog.DiscardHandler), python: "python3", node: "node"}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Lookup returns the function a handler ("lambda:NAME", an ARN) names.
func (r *Runner) Lookup(handler string) (Function, bool) {
	if r == nil {
		return Function{}, false
	}
	f, ok := r.fns[FunctionName(handler)]
	return f, ok
}

// Names lists the functions, sorted.
func (r *Runner) Names() []string {
	var out []string
	for n := range r.fns {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Check reports, in one error, the languages whose interpreter is missing,
// naming the functions that need it, so tasker dev fails at start rather
// than at the first step.
func (r *Runner) Check() error {
	need := map[string][]string{}
	for _, n := range r.Names() {
		f := r.fns[n]
		need[f.Language] = append(need[f.Language], n)
	}
	var errs []error
	for _, lang := range []string{Python, Node} {
		if len(need[lang]) == 0 {
			continue
		}
		cmd := r.interpreter(lang)
		if _, err := exec.LookPath(cmd); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s (for %s) is not installed or not on PATH: install it, or set %s",
				ErrNoRuntime, cmd, strings.Join(need[lang], ", "), interpreterEnv(lang)))
		}
	}
	return errors.Join(errs...)
}

// Environment variables that name the interpreters.
const (
	EnvPython = "TASKER_PYTHON"
	EnvNode   = "TASKER_NODE"
)

func interpreterEnv(lang string) string {
	if lang == Python {
		return EnvPython
	}
	return EnvNode
}

func (r *Runner) interpreter(lang string) string {
	if lang == Python {
		return r.python
	}
	return r.node
}

// Result is the outcome of one invocation: Response is the function's
// result (JSON) when Error is nil.
type Result struct {
	RequestID string
	Response  json.RawMessage
	Error     *contract.LambdaError
}

// shimOutput is the line the shim writes to file descriptor 3.
type shimOutput struct {
	Result json.RawMessage       `json:"result"`
	Error  *contract.LambdaError `json:"error"`
}

// Run invokes fn with event and waits for it, at most until deadline (or
// fn's own timeout, if sooner). It returns an error only when the
// invocation never ran to an outcome: ctx ended (the process is killed; no
// record should be sent, as for a crashed local process) or the
// interpreter could not be started.
func (r *Runner) Run(ctx context.Context, fn Function, event []byte, deadline time.Time) (Result, error) {
	res := Result{RequestID: uuid.NewString()}
	start := time.Now()
	if fn.TimeoutSeconds > 0 {
		if d := start.Add(time.Duration(fn.TimeoutSeconds) * time.Second); deadline.IsZero() || d.Before(deadline) {
			deadline = d
		}
	}
	if deadline.IsZero() {
		deadline = start.Add(MaxTimeoutSeconds * time.Second)
	}
	if r.prepare != nil {
		ev, err := r.prepare(ctx, fn, event)
		if err != nil {
			res.Error = &contract.LambdaError{ErrorType: "Tasker.PrepareError", ErrorMessage: err.Error()}
			return res, nil
		}
		event = ev
	}
	shim, interp := runtimes.Python, r.python
	args := []string{"-c", shim}
	if fn.Language == Node {
		shim, interp = runtimes.Node, r.node
		args = []string{"-e", shim}
	}
	runCtx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	cmd := exec.CommandContext(runCtx, interp, args...)
	cmd.Dir = fn.Dir
	cmd.Env = r.environ(fn, res.RequestID, deadline)
	cmd.Stdin = bytes.NewReader(event)
	logs := &lineLogger{log: r.log, fn: fn.Name, req: res.RequestID}
	cmd.Stdout, cmd.Stderr = logs, logs
	setProcessGroup(cmd)
	cmd.WaitDelay = time.Second
	outR, outW, err := os.Pipe()
	if err != nil {
		return res, fmt.Errorf("function %s: %w", fn.Name, err)
	}
	cmd.ExtraFiles = []*os.File{outW} // fd 3 in the child
	if err := cmd.Start(); err != nil {
		outR.Close()
		outW.Close()
		if errors.Is(err, exec.ErrNotFound) {
			return res, fmt.Errorf("function %s: %w: %v", fn.Name, ErrNoRuntime, err)
		}
		return res, fmt.Errorf("function %s: start %s: %w", fn.Name, interp, err)
	}
	outW.Close()
	var out []byte
	var readErr error
	done := make(chan struct{})
	go func() { // drains fd 3 while the process runs; ends with it
		defer close(done)
		out, readErr = io.ReadAll(io.LimitReader(outR, MaxResponseBytes+64<<10))
		_, _ = io.Copy(io.Discard, outR)
	}()
	waitErr := cmd.Wait()
	// Lambda freezes the sandbox when the handler returns; here the
	// handler's leftover children are killed, so none holds fd 3 open.
	killGroup(cmd)
	<-done
	outR.Close()
	logs.flush()
	switch {
	case ctx.Err() != nil:
		return res, fmt.Errorf("function %s: %w", fn.Name, ctx.Err())
	case runCtx.Err() != nil:
		res.Error = &contract.LambdaError{ErrorType: ErrorTimeout, ErrorMessage: fmt.Sprintf(
			"%s %s Task timed out after %.2f seconds", time.Now().UTC().Format(time.RFC3339), res.RequestID, deadline.Sub(start).Seconds())}
		return res, nil
	case readErr != nil:
		res.Error = &contract.LambdaError{ErrorType: ErrorExit, ErrorMessage: "RequestId: " + res.RequestID + " Error: reading the response: " + readErr.Error()}
		return res, nil
	}
	var so shimOutput
	line := bytes.TrimSpace(out)
	switch {
	case len(line) > MaxResponseBytes:
		res.Error = &contract.LambdaError{ErrorType: ErrorResponseSize, ErrorMessage: fmt.Sprintf(
			"Response payload size exceeded maximum allowed payload size (%d bytes).", MaxResponseBytes)}
	case len(line) == 0 || json.Unmarshal(line, &so) != nil || (so.Error == nil && so.Result == nil):
		msg := "RequestId: " + res.RequestID + " Error: Runtime exited"
		if waitErr != nil {
			msg += " with error: " + waitErr.Error()
		} else {
			msg += " without providing a reason"
		}
		if tail := logs.tail(); tail != "" {
			msg += " (last output: " + tail + ")"
		}
		res.Error = &contract.LambdaError{ErrorType: ErrorExit, ErrorMessage: msg}
	case so.Error != nil:
		res.Error = so.Error
	default:
		res.Response = so.Result
	}
	return res, nil
}

// environ is the function's environment: the server's (PATH, HOME, …),
// the Lambda variables a handler may read, the function's own, and the
// shim's.
func (r *Runner) environ(fn Function, requestID string, deadline time.Time) []string {
	env := os.Environ()
	set := func(k, v string) { env = append(env, k+"="+v) }
	set("AWS_LAMBDA_FUNCTION_NAME", fn.Name)
	set("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
	set("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", strconv.Itoa(fn.MemoryMB))
	set("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/"+fn.Name)
	set("AWS_LAMBDA_LOG_STREAM_NAME", "local")
	set("AWS_EXECUTION_ENV", "tasker-dev")
	set("LAMBDA_TASK_ROOT", fn.Dir)
	set("_HANDLER", fn.Handler)
	for k, v := range fn.Environment {
		set(k, v)
	}
	set("TASKER_SHIM_HANDLER", fn.Handler)
	set("TASKER_SHIM_REQUEST_ID", requestID)
	set("TASKER_SHIM_DEADLINE_MS", strconv.FormatInt(deadline.UnixMilli(), 10))
	set("TASKER_SHIM_FUNCTION_ARN", "arn:aws:lambda:local:000000000000:function:"+fn.Name)
	if fn.Language == Python {
		set("PYTHONUNBUFFERED", "1")
		set("PYTHONDONTWRITEBYTECODE", "1")
	}
	return env
}

// lineLogger logs a function's output line by line and keeps the last
// bytes for a crash report.
type lineLogger struct {
	log     *slog.Logger
	fn, req string
	mu      sync.Mutex
	buf     []byte
	last    []byte
}

const maxTail = 500

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.emit(l.buf[:i])
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 64<<10 { // a very long line: log it in parts
		l.emit(l.buf)
		l.buf = nil
	}
	return len(p), nil
}

func (l *lineLogger) emit(line []byte) {
	line = bytes.TrimRight(line, "\r")
	if len(line) == 0 {
		return
	}
	l.last = append(l.last[:0], line[max(0, len(line)-maxTail):]...)
	l.log.Info(string(line), "function", l.fn, "request_id", l.req)
}

func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emit(l.buf)
		l.buf = nil
	}
}

func (l *lineLogger) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.last)
}

// RunHandler runs the function a step handler names, for the local
// invoker: found is false when no function of the map has that name.
func (r *Runner) RunHandler(ctx context.Context, handler string, payload []byte, deadline time.Time) (resp json.RawMessage, unhandled *contract.LambdaError, found bool, err error) {
	fn, ok := r.Lookup(handler)
	if !ok {
		return nil, nil, false, nil
	}
	res, err := r.Run(ctx, fn, payload, deadline)
	if err != nil {
		return nil, nil, true, err
	}
	return res.Response, res.Error, true, nil
}
