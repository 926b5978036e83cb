package sdk

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Handler runs one attempt of a step. Its result becomes the step's result
// (any JSON-marshalable value); an error fails the attempt — retryable
// unless wrapped with Permanent.
type Handler func(ctx context.Context, in Input) (any, error)

// Built-in handler names every registry has.
const (
	BuiltinNoop = "tasker.noop"
	BuiltinHTTP = "tasker.http"
	// BuiltinCallback notifies (config.notify) and answers tasker_pending;
	// tasker.wait never reaches a handler (the engine parks it).
	BuiltinCallback = "tasker.callback"
)

// ReservedPrefix is the name prefix of built-in handlers; Register refuses it.
const ReservedPrefix = "tasker."

var validName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,199}$`)

// IsLambdaName reports whether a handler name designates a Lambda function
// by ARN ("arn:…") or explicit "lambda:" prefix rather than a registered Go
// handler.
func IsLambdaName(name string) bool {
	return strings.HasPrefix(name, "arn:") || strings.HasPrefix(name, "lambda:")
}

// Registry maps handler names to Handlers. It is safe for concurrent use.
type Registry struct {
	mu       sync.RWMutex
	handlers map[string]Handler
}

// RegistryOption configures NewRegistry.
type RegistryOption func(*registryConfig)

type registryConfig struct {
	httpClient *http.Client
	httpPolicy HTTPPolicy
}

// WithHTTPClient sets the client of the built-in tasker.http handler
// (default: a client without a global timeout; each request is bounded by
// the step's timeout_seconds). Its CheckRedirect is replaced by the step's
// follow_redirects policy; under HTTPPolicy.DenyPrivate its transport must
// be an *http.Transport without its own dialer, which is cloned with a
// guarded one (otherwise every tasker.http attempt fails permanently).
func WithHTTPClient(c *http.Client) RegistryOption {
	return func(rc *registryConfig) { rc.httpClient = c }
}

// WithHTTPPolicy restricts the hosts and addresses the built-in
// tasker.http handler may reach (default: no restriction). Read it with
// HTTPPolicyFromEnv where the process starts.
func WithHTTPPolicy(p HTTPPolicy) RegistryOption {
	return func(rc *registryConfig) { rc.httpPolicy = p }
}

// NewRegistry returns a registry holding the built-ins tasker.noop,
// tasker.http and tasker.callback.
func NewRegistry(opts ...RegistryOption) *Registry {
	var rc registryConfig
	for _, o := range opts {
		o(&rc)
	}
	r := &Registry{handlers: map[string]Handler{}}
	r.handlers[BuiltinNoop] = noop
	r.handlers[BuiltinHTTP] = NewHTTPHandler(rc.httpClient, rc.httpPolicy)
	r.handlers[BuiltinCallback] = newCallbackHandler(rc.httpClient, rc.httpPolicy)
	return r
}

func noop(context.Context, Input) (any, error) { return struct{}{}, nil }

// Register adds a handler. Names are 1–200 characters of letters, digits
// and "_.:/-", start with a letter, digit or "_", and are conventionally
// "<namespace>.<step>". It fails for a nil handler, an invalid, duplicate,
// reserved ("tasker.") or Lambda-looking ("arn:", "lambda:") name.
func (r *Registry) Register(name string, h Handler) error {
	switch {
	case h == nil:
		return fmt.Errorf("register handler %q: nil handler", name)
	case !validName.MatchString(name):
		return fmt.Errorf("register handler %q: invalid name (want 1-200 characters of letters, digits, and _.:/-)", name)
	case strings.HasPrefix(name, ReservedPrefix):
		return fmt.Errorf("register handler %q: the %q prefix is reserved for built-ins", name, ReservedPrefix)
	case IsLambdaName(name):
		return fmt.Errorf("register handler %q: names starting with arn: or lambda: designate Lambda functions", name)
	}
	return r.add(name, h)
}

// FunctionPrefix starts the handler name of a step that runs in a Lambda
// function of its own: "lambda:<function name>".
const FunctionPrefix = "lambda:"

var validFunction = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// RegisterFunction adds a handler under a "lambda:<function name>" name:
// a Go handler deployed as a Lambda function of its own (HandlerFunction;
// `tasker new --function`), which template steps name that way. On AWS the
// scheduler invokes that function, so the shared handlers function never
// sees the name; registering it lets `tasker dev` run the handler in
// process. It fails for a nil handler, a name without the prefix, a
// function name that is not 1-64 letters, digits, "-" and "_", or a
// duplicate.
func (r *Registry) RegisterFunction(name string, h Handler) error {
	fn, ok := strings.CutPrefix(name, FunctionPrefix)
	switch {
	case h == nil:
		return fmt.Errorf("register function handler %q: nil handler", name)
	case !ok || !validFunction.MatchString(fn):
		return fmt.Errorf("register function handler %q: want %q and a Lambda function name of 1-64 letters, digits, - and _", name, FunctionPrefix)
	}
	return r.add(name, h)
}

func (r *Registry) add(name string, h Handler) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.handlers[name]; dup {
		return fmt.Errorf("register handler %q: already registered", name)
	}
	r.handlers[name] = h
	return nil
}

// Has reports whether name is registered (built-ins included).
func (r *Registry) Has(name string) bool {
	_, ok := r.Lookup(name)
	return ok
}

// Lookup returns the handler registered under name.
func (r *Registry) Lookup(name string) (Handler, bool) {
	if r == nil {
		return nil, false
	}
	r.mu.RLock()
	h, ok := r.handlers[name]
	r.mu.RUnlock()
	return h, ok
}

// Names lists the registered names, sorted, built-ins included.
func (r *Registry) Names() []string {
	r.mu.RLock()
	names := make([]string, 0, len(r.handlers))
	for n := range r.handlers {
		names = append(names, n)
	}
	r.mu.RUnlock()
	sort.Strings(names)
	return names
}
