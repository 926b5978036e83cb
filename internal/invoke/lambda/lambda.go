// Package lambda is the step invoker on AWS (docs/architecture.md, "Flow" and
// "Handler contract"): an
// engine.Invoker that starts one asynchronous Lambda invocation
// (InvocationType Event) per step attempt. The handler Lambda's result
// comes back later as a destination record on the scheduler queue.
//
// Routing. A step's handler selects the function:
//
//   - "lambda:NAME" → function NAME (a name, name:alias, partial or full ARN);
//   - "arn:…:lambda:…:function:…" → that ARN as is;
//   - anything else (a registered Go handler, a built-in tasker.*) → the
//     handlers function, Config.HandlersFunction (TASKER_HANDLERS_FUNCTION),
//     which dispatches on the payload's tasker.handler.
//
// Payload limit. Payloads over Config.MaxPayloadBytes fail with an error
// wrapping engine.ErrPayloadTooLarge without calling AWS, and so does
// Lambda's own RequestTooLargeException (HTTP 413); the engine fails such a
// step for good. The default is 262,144 bytes, the classic asynchronous
// limit. AWS raised the asynchronous Invoke limit to 1 MB in 2025; raise
// the limit (TASKER_INVOKE_MAX_PAYLOAD_BYTES) only if the scheduler queue
// also takes messages that large, since each destination record echoes the
// payload.
//
// Errors. Every other failure is a plain error: the engine releases the
// claim and the step is tried again later, so nothing is lost. They wrap
// ErrThrottled (TooManyRequestsException, EC2 throttling, HTTP 429),
// ErrUnavailable (ServiceException and other 5xx, ENI/subnet/EC2 limits,
// functions not ready or being updated, timeouts, connection errors) or
// ErrFunctionNotFound (ResourceNotFoundException: the message names the
// function, so the misconfiguration is visible while the engine keeps
// retrying; it is not treated as permanent because a deployment may be
// creating the function). Errors always name the function.
//
// Retries. The invoker makes at most Config.MaxAttempts (default 2) SDK
// attempts per Invoke with backoff capped at 200 ms and no client-side
// retry quota, each Invoke bounded by Config.Timeout (default 10 s), so a
// throttled or failing Lambda service never stalls the scheduler: the
// engine's own retry (and the sweep) take over.
//
// Tracing. If Config.TraceHeader returns a non-empty X-Ray trace header
// for the context, it is sent as the X-Amzn-Trace-Id header of the Invoke
// request, which Lambda continues in the invoked function.
package lambda

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/taskerhq/tasker/internal/config"
	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/engine"
)

// Defaults.
const (
	// DefaultMaxPayloadBytes is the classic asynchronous invocation
	// payload limit: the payload limit (domain.MaxPayloadBytes).
	DefaultMaxPayloadBytes = domain.MaxPayloadBytes
	// MaxMaxPayloadBytes bounds TASKER_INVOKE_MAX_PAYLOAD_BYTES: 6 MiB,
	// Lambda's largest request payload.
	MaxMaxPayloadBytes = 6 << 20
	DefaultMaxAttempts = 2
	DefaultTimeout     = 10 * time.Second
	maxBackoff         = 200 * time.Millisecond
)

// Environment variables read by ConfigFromEnv.
const (
	EnvHandlersFunction = "TASKER_HANDLERS_FUNCTION"
	EnvMaxPayloadBytes  = "TASKER_INVOKE_MAX_PAYLOAD_BYTES"
)

// TraceHeaderHTTP is the request header carrying the X-Ray trace header.
const TraceHeaderHTTP = "X-Amzn-Trace-Id"

var (
	// ErrThrottled marks invocations Lambda refused for lack of capacity;
	// it is engine.ErrThrottled.
	ErrThrottled = engine.ErrThrottled
	// ErrUnavailable marks transient service-side failures.
	ErrUnavailable = errors.New("lambda invoke failed transiently")
	// ErrFunctionNotFound marks invocations of a function that does not
	// exist (or that this role may not see).
	ErrFunctionNotFound = errors.New("lambda function not found")
)

// Config configures the invoker.
type Config struct {
	// HandlersFunction is the name or ARN of the function hosting the Go
	// handlers and built-ins (TASKER_HANDLERS_FUNCTION).
	HandlersFunction string
	// MaxPayloadBytes is the largest payload sent (default
	// DefaultMaxPayloadBytes).
	MaxPayloadBytes int
	// MaxAttempts bounds SDK attempts per Invoke (default 2).
	MaxAttempts int
	// Timeout bounds one Invoke, retries included (default 10 s).
	Timeout time.Duration
	// TraceHeader, if set, returns the X-Ray trace header of ctx ("" for
	// none).
	TraceHeader func(ctx context.Context) string
}

// ConfigFromEnv reads TASKER_HANDLERS_FUNCTION and
// TASKER_INVOKE_MAX_PAYLOAD_BYTES.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	cfg := Config{HandlersFunction: strings.TrimSpace(getenv(EnvHandlersFunction))}
	n, err := config.Int(getenv, EnvMaxPayloadBytes, 0, 1, MaxMaxPayloadBytes)
	if err != nil {
		return Config{}, err
	}
	cfg.MaxPayloadBytes = n
	return cfg, nil
}

// API is the part of the Lambda client the invoker uses; *lambda.Client
// has it.
type API interface {
	Invoke(ctx context.Context, in *awslambda.InvokeInput, optFns ...func(*awslambda.Options)) (*awslambda.InvokeOutput, error)
}

var _ API = (*awslambda.Client)(nil)

// Invoker is an engine.Invoker on AWS Lambda. It is safe for concurrent
// use.
type Invoker struct {
	client  API
	cfg     Config
	retryer aws.Retryer
}

var (
	_ engine.Invoker        = (*Invoker)(nil)
	_ engine.PayloadLimiter = (*Invoker)(nil)
)

// New returns an invoker calling Lambda through client.
func New(client API, cfg Config) *Invoker {
	if cfg.MaxPayloadBytes <= 0 {
		cfg.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	cfg.HandlersFunction = strings.TrimSpace(cfg.HandlersFunction)
	r := retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = cfg.MaxAttempts
		o.MaxBackoff = maxBackoff
		o.RateLimiter = ratelimit.None
	})
	return &Invoker{client: client, cfg: cfg, retryer: r}
}

// Function returns the function that runs handler (see the package doc).
func (i *Invoker) Function(handler string) (string, error) {
	switch {
	case strings.HasPrefix(handler, "lambda:"):
		name := strings.TrimSpace(strings.TrimPrefix(handler, "lambda:"))
		if name == "" {
			return "", fmt.Errorf("handler %q names no function after \"lambda:\"", handler)
		}
		return name, nil
	case strings.HasPrefix(handler, "arn:"):
		// arn:partition:lambda:region:account:function:name[:qualifier]
		parts := strings.SplitN(handler, ":", 7)
		if len(parts) < 7 || parts[2] != "lambda" || parts[5] != "function" || parts[6] == "" {
			return "", fmt.Errorf("handler %q is an ARN but not of a Lambda function (want arn:aws:lambda:REGION:ACCOUNT:function:NAME)", handler)
		}
		return handler, nil
	case i.cfg.HandlersFunction == "":
		return "", fmt.Errorf("handler %q runs in the handlers function, but %s is not set", handler, EnvHandlersFunction)
	default:
		return i.cfg.HandlersFunction, nil
	}
}

// MaxPayloadBytes reports the payload limit (engine.PayloadLimiter), so
// the engine refuses at creation a context that cannot fit in a payload.
func (i *Invoker) MaxPayloadBytes() int { return i.cfg.MaxPayloadBytes }

// Invoke starts one asynchronous invocation of the step's function.
func (i *Invoker) Invoke(ctx context.Context, inv engine.Invocation) error {
	fn, err := i.Function(inv.Handler)
	if err != nil {
		return fmt.Errorf("invoke step %q: %w", inv.Step, err)
	}
	if n := len(inv.Payload); n > i.cfg.MaxPayloadBytes {
		return fmt.Errorf("invoke %s for step %q: %w: %d bytes, over the %d-byte limit of asynchronous invocations",
			fn, inv.Step, engine.ErrPayloadTooLarge, n, i.cfg.MaxPayloadBytes)
	}
	if !json.Valid(inv.Payload) {
		return fmt.Errorf("invoke %s for step %q: payload is not valid JSON", fn, inv.Step)
	}
	ctx, cancel := context.WithTimeout(ctx, i.cfg.Timeout)
	defer cancel()
	var trace string
	if i.cfg.TraceHeader != nil {
		trace = i.cfg.TraceHeader(ctx)
	}
	out, err := i.client.Invoke(ctx, &awslambda.InvokeInput{
		FunctionName:   aws.String(fn),
		InvocationType: types.InvocationTypeEvent,
		Payload:        inv.Payload,
	}, func(o *awslambda.Options) {
		o.Retryer = i.retryer
		if trace != "" {
			o.APIOptions = append(o.APIOptions, smithyhttp.SetHeaderValue(TraceHeaderHTTP, trace))
		}
	})
	if err != nil {
		return classify(fn, inv, err)
	}
	if out.StatusCode != 0 && (out.StatusCode < 200 || out.StatusCode > 299) {
		return fmt.Errorf("invoke %s for step %q: %w: unexpected status %d", fn, inv.Step, ErrUnavailable, out.StatusCode)
	}
	return nil
}

var (
	throttleCodes = map[string]bool{
		"TooManyRequestsException": true, "EC2ThrottledException": true, "ThrottlingException": true,
		"Throttling": true, "RequestLimitExceeded": true,
	}
	transientCodes = map[string]bool{
		"ServiceException": true, "EC2UnexpectedException": true, "ENILimitReachedException": true,
		"SubnetIPAddressLimitReachedException": true, "ENINotReadyException": true,
		"ResourceNotReadyException": true, "ResourceConflictException": true,
		"SnapStartNotReadyException": true, "SnapStartTimeoutException": true,
		"EFSMountTimeoutException": true, "EFSMountConnectivityException": true, "EFSIOException": true,
	}
	tooLargeCodes = map[string]bool{"RequestTooLargeException": true, "SerializedRequestEntityTooLargeException": true}
)

// classify wraps an Invoke error with the sentinel that describes it.
func classify(fn string, inv engine.Invocation, err error) error {
	var (
		apiErr smithy.APIError
		code   string
		status int
	)
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var kind error
	switch {
	case tooLargeCodes[code] || status == http.StatusRequestEntityTooLarge:
		return fmt.Errorf("invoke %s for step %q: %w: Lambda refused %d bytes: %w", fn, inv.Step, engine.ErrPayloadTooLarge, len(inv.Payload), err)
	case throttleCodes[code] || status == http.StatusTooManyRequests:
		kind = ErrThrottled
	case code == "ResourceNotFoundException" || (status == http.StatusNotFound && code == ""):
		kind = ErrFunctionNotFound
	case transientCodes[code] || status >= 500 || code == "" || isTimeout(err):
		// No code: the request never got an AWS answer (connection
		// error, timeout, cancelled context).
		kind = ErrUnavailable
	default:
		return fmt.Errorf("invoke %s for step %q: %w", fn, inv.Step, err)
	}
	return fmt.Errorf("invoke %s for step %q: %w: %w", fn, inv.Step, kind, err)
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &t) && t.Timeout())
}
