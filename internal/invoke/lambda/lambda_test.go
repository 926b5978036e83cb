package lambda_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/invoke/invoketest"
	"github.com/taskerhq/tasker/internal/invoke/lambda"
	"github.com/taskerhq/tasker/internal/testenv"
)

const handlersFn = "tasker-handlers"

// fakeLambda accepts asynchronous Invoke requests like the Lambda API and
// records them; fail, when set, makes it answer with an error instead.
type fakeLambda struct {
	t *testing.T

	mu       sync.Mutex
	accepted []request
	refused  int
	fail     *failure
}

type request struct {
	Function string
	Header   http.Header
	Body     []byte
}

type failure struct {
	status int
	kind   string // x-amzn-ErrorType
}

const invokePrefix, invokeSuffix = "/2015-03-31/functions/", "/invocations"

func (f *fakeLambda) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, invokePrefix) || !strings.HasSuffix(r.URL.Path, invokeSuffix) {
		f.t.Errorf("fake Lambda: unexpected %s %s", r.Method, r.URL.Path)
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if got := r.Header.Get("X-Amz-Invocation-Type"); got != "Event" {
		f.t.Errorf("X-Amz-Invocation-Type = %q, want Event", got)
	}
	fn := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, invokePrefix), invokeSuffix)
	f.mu.Lock()
	fail := f.fail
	if fail != nil {
		f.refused++
	} else {
		f.accepted = append(f.accepted, request{Function: fn, Header: r.Header.Clone(), Body: body})
	}
	f.mu.Unlock()
	if fail != nil {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Amzn-Errortype", fail.kind)
		w.WriteHeader(fail.status)
		fmt.Fprintf(w, `{"Type":"User","message":"fake %s"}`, fail.kind)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (f *fakeLambda) setFail(fl *failure) {
	f.mu.Lock()
	f.fail = fl
	f.mu.Unlock()
}

func (f *fakeLambda) Accepted() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.accepted...)
}

func (f *fakeLambda) Refused() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refused
}

func newFake(t *testing.T, cfg lambda.Config) (*lambda.Invoker, *fakeLambda) {
	t.Helper()
	f := &fakeLambda{t: t}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return lambda.New(awslambda.NewFromConfig(testenv.AWSConfig(srv.URL)), cfg), f
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestConformance(t *testing.T) {
	t.Parallel()
	invoketest.Run(t, func(t *testing.T) invoketest.Harness {
		inv, f := newFake(t, lambda.Config{HandlersFunction: handlersFn})
		return invoketest.Harness{
			Invoker: inv,
			Delivered: func(ctx context.Context, n int) ([]invoketest.Delivery, error) {
				for {
					got := f.Accepted()
					if len(got) >= n {
						ds := make([]invoketest.Delivery, len(got))
						for i, r := range got {
							ds[i] = invoketest.Delivery{Payload: r.Body}
						}
						return ds, nil
					}
					select {
					case <-ctx.Done():
						return nil, fmt.Errorf("%d of %d invocations arrived: %w", len(got), n, ctx.Err())
					case <-time.After(5 * time.Millisecond):
					}
				}
			},
			MaxPayloadBytes: lambda.DefaultMaxPayloadBytes,
			Throttle: func(t *testing.T) func() {
				f.setFail(&failure{http.StatusTooManyRequests, "TooManyRequestsException"})
				return func() { f.setFail(nil) }
			},
		}
	})
}

func TestInvokeRequest(t *testing.T) {
	t.Parallel()
	const trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	type traceKey struct{}
	inv, f := newFake(t, lambda.Config{
		HandlersFunction: handlersFn,
		TraceHeader: func(ctx context.Context) string {
			s, _ := ctx.Value(traceKey{}).(string)
			return s
		},
	})
	in := invoketest.NewInvocation(t, "tasker.noop", 0)
	if err := inv.Invoke(context.WithValue(ctx(t), traceKey{}, trace), in); err != nil {
		t.Fatal(err)
	}
	plain := invoketest.NewInvocation(t, "tasker.noop", 0)
	if err := inv.Invoke(ctx(t), plain); err != nil {
		t.Fatal(err)
	}
	got := f.Accepted()
	if len(got) != 2 {
		t.Fatalf("%d requests, want 2", len(got))
	}
	if got[0].Function != handlersFn {
		t.Errorf("function %q, want %q", got[0].Function, handlersFn)
	}
	if !bytes.Equal(got[0].Body, in.Payload) {
		t.Errorf("body differs from the payload")
	}
	if h := got[0].Header.Get("X-Amzn-Trace-Id"); h != trace {
		t.Errorf("X-Amzn-Trace-Id = %q, want %q", h, trace)
	}
	if h := got[1].Header.Get("X-Amzn-Trace-Id"); h != "" {
		t.Errorf("X-Amzn-Trace-Id = %q without a trace in the context", h)
	}
	if h := got[0].Header.Get("X-Amz-Client-Context"); h != "" {
		t.Errorf("unexpected client context %q (async invocations ignore it)", h)
	}
}

func TestRouting(t *testing.T) {
	t.Parallel()
	inv, f := newFake(t, lambda.Config{HandlersFunction: handlersFn})
	const arn = "arn:aws:lambda:us-east-1:123456789012:function:payments"
	cases := map[string]string{
		"tasker.noop":               handlersFn,
		"tasker.http":               handlersFn,
		"ecommerce.process_payment": handlersFn,
		"lambda:charge-card":        "charge-card",
		"lambda:charge-card:live":   "charge-card:live",
		arn:                         arn,
		arn + ":prod":               arn + ":prod",
		"arn:aws-cn:lambda:cn-north-1:123456789012:function:x": "arn:aws-cn:lambda:cn-north-1:123456789012:function:x",
	}
	for handler, want := range cases {
		before := len(f.Accepted())
		if err := inv.Invoke(ctx(t), invoketest.NewInvocation(t, handler, 0)); err != nil {
			t.Errorf("%s: %v", handler, err)
			continue
		}
		got := f.Accepted()
		if len(got) != before+1 || got[before].Function != want {
			t.Errorf("%s: invoked %v, want %s", handler, got[before:], want)
		}
		if fn, _ := inv.Function(handler); fn != want {
			t.Errorf("Function(%s) = %s, want %s", handler, fn, want)
		}
	}
}

func TestRoutingErrors(t *testing.T) {
	t.Parallel()
	inv, f := newFake(t, lambda.Config{HandlersFunction: handlersFn})
	noHandlers, g := newFake(t, lambda.Config{})
	cases := []struct {
		inv     *lambda.Invoker
		handler string
		want    string
	}{
		{inv, "lambda:", "names no function"},
		{inv, "arn:aws:states:us-east-1:123456789012:stateMachine:x", "not of a Lambda function"},
		{inv, "arn:aws:lambda:us-east-1:123456789012:layer:x", "not of a Lambda function"},
		{noHandlers, "ecommerce.process_payment", "TASKER_HANDLERS_FUNCTION is not set"},
	}
	for _, c := range cases {
		err := c.inv.Invoke(ctx(t), invoketest.NewInvocation(t, c.handler, 0))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.handler) {
			t.Errorf("%s: %v, want an error naming the handler and saying %q", c.handler, err, c.want)
		}
		if errors.Is(err, engine.ErrPayloadTooLarge) {
			t.Errorf("%s: a routing error must not be ErrPayloadTooLarge", c.handler)
		}
	}
	if n := len(f.Accepted()) + len(g.Accepted()); n != 0 {
		t.Errorf("%d requests sent, want none", n)
	}
	// lambda: with a function works without TASKER_HANDLERS_FUNCTION.
	if err := noHandlers.Invoke(ctx(t), invoketest.NewInvocation(t, "lambda:fn", 0)); err != nil {
		t.Error(err)
	}
}

func TestOversizedPayloadCallsNothing(t *testing.T) {
	t.Parallel()
	inv, f := newFake(t, lambda.Config{HandlersFunction: handlersFn, MaxPayloadBytes: 4096})
	err := inv.Invoke(ctx(t), invoketest.NewInvocation(t, "tasker.noop", 4097))
	if !errors.Is(err, engine.ErrPayloadTooLarge) || !strings.Contains(err.Error(), "4097 bytes") || !strings.Contains(err.Error(), handlersFn) {
		t.Errorf("Invoke = %v, want ErrPayloadTooLarge naming 4097 bytes and the function", err)
	}
	if err := inv.Invoke(ctx(t), invoketest.NewInvocation(t, "tasker.noop", 4096)); err != nil {
		t.Errorf("payload at the configured limit: %v", err)
	}
	if n := len(f.Accepted()) + f.Refused(); n != 1 {
		t.Errorf("%d requests, want 1 (only the one at the limit)", n)
	}
}

func TestInvalidJSONCallsNothing(t *testing.T) {
	t.Parallel()
	inv, f := newFake(t, lambda.Config{HandlersFunction: handlersFn})
	in := invoketest.NewInvocation(t, "tasker.noop", 0)
	in.Payload = []byte(`{"tasker":`)
	if err := inv.Invoke(ctx(t), in); err == nil || errors.Is(err, engine.ErrPayloadTooLarge) {
		t.Errorf("Invoke(invalid JSON) = %v", err)
	}
	if n := len(f.Accepted()) + f.Refused(); n != 0 {
		t.Errorf("%d requests, want none", n)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		fail     failure
		want     error
		attempts int // HTTP requests made: retried errors get 2
	}{
		{failure{429, "TooManyRequestsException"}, lambda.ErrThrottled, 2},
		{failure{502, "EC2ThrottledException"}, lambda.ErrThrottled, 2},
		{failure{500, "ServiceException"}, lambda.ErrUnavailable, 2},
		{failure{502, "ENILimitReachedException"}, lambda.ErrUnavailable, 2},
		{failure{502, "SubnetIPAddressLimitReachedException"}, lambda.ErrUnavailable, 2},
		{failure{409, "ResourceConflictException"}, lambda.ErrUnavailable, 1},
		{failure{503, ""}, lambda.ErrUnavailable, 2},
		{failure{404, "ResourceNotFoundException"}, lambda.ErrFunctionNotFound, 1},
		{failure{413, "RequestTooLargeException"}, engine.ErrPayloadTooLarge, 1},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.fail.status, c.fail.kind), func(t *testing.T) {
			t.Parallel()
			inv, f := newFake(t, lambda.Config{HandlersFunction: handlersFn})
			f.setFail(&c.fail)
			start := time.Now()
			err := inv.Invoke(ctx(t), invoketest.NewInvocation(t, "tasker.noop", 0))
			if !errors.Is(err, c.want) {
				t.Errorf("Invoke = %v, want %v", err, c.want)
			}
			if c.want != engine.ErrPayloadTooLarge && errors.Is(err, engine.ErrPayloadTooLarge) {
				t.Errorf("%v must not be ErrPayloadTooLarge", err)
			}
			if err != nil && !strings.Contains(err.Error(), handlersFn) {
				t.Errorf("error does not name the function: %v", err)
			}
			if got := f.Refused(); got != c.attempts {
				t.Errorf("%d requests, want %d", got, c.attempts)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Invoke took %v; SDK retries must stay short", d)
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	inv := lambda.New(awslambda.NewFromConfig(testenv.AWSConfig(url)), lambda.Config{HandlersFunction: handlersFn})
	err := inv.Invoke(ctx(t), invoketest.NewInvocation(t, "tasker.noop", 0))
	if !errors.Is(err, lambda.ErrUnavailable) {
		t.Errorf("Invoke against a closed port = %v, want ErrUnavailable", err)
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	t.Cleanup(func() { close(block); srv.Close() })
	inv := lambda.New(awslambda.NewFromConfig(testenv.AWSConfig(srv.URL)), lambda.Config{HandlersFunction: handlersFn, Timeout: 200 * time.Millisecond})
	start := time.Now()
	err := inv.Invoke(ctx(t), invoketest.NewInvocation(t, "tasker.noop", 0))
	if !errors.Is(err, lambda.ErrUnavailable) {
		t.Errorf("Invoke of a hanging endpoint = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Invoke took %v with a 200 ms timeout", d)
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cfg, err := lambda.ConfigFromEnv(env(map[string]string{
		"TASKER_HANDLERS_FUNCTION":        " tasker-handlers ",
		"TASKER_INVOKE_MAX_PAYLOAD_BYTES": "1048576",
	}))
	if err != nil || cfg.HandlersFunction != "tasker-handlers" || cfg.MaxPayloadBytes != 1<<20 {
		t.Errorf("ConfigFromEnv = %+v, %v", cfg, err)
	}
	if _, err := lambda.ConfigFromEnv(env(map[string]string{"TASKER_INVOKE_MAX_PAYLOAD_BYTES": "lots"})); err == nil ||
		!strings.Contains(err.Error(), "TASKER_INVOKE_MAX_PAYLOAD_BYTES") {
		t.Errorf("bad size: %v", err)
	}
	for _, v := range []string{"-1", "0", "7000000"} {
		_, err := lambda.ConfigFromEnv(env(map[string]string{"TASKER_INVOKE_MAX_PAYLOAD_BYTES": v}))
		if want := `TASKER_INVOKE_MAX_PAYLOAD_BYTES="` + v + `": want an integer from 1 to 6291456`; err == nil || err.Error() != want {
			t.Errorf("ConfigFromEnv(%s) = %v, want %q", v, err, want)
		}
	}
	if cfg, err := lambda.ConfigFromEnv(env(nil)); err != nil || cfg.HandlersFunction != "" || cfg.MaxPayloadBytes != 0 {
		t.Errorf("empty env: %+v, %v", cfg, err)
	}
}
