package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/taskerhq/tasker/sdk/contract"
)

// CallbackTokenHeader carries the callback token on the notify request of
// the built-in tasker.callback handler (the default body, the invocation
// payload, carries it too, as tasker.callback_token).
const CallbackTokenHeader = "Tasker-Callback-Token"

// defaultCallbackTimeout is tasker.callback's config.timeout_seconds
// default (internal/template checks the config when a template loads).
const defaultCallbackTimeout = contract.DefaultPendingTimeoutSeconds

// CallbackToken is this attempt's callback token: POST it to
// /v1/callbacks/{token}/success, /failure or /heartbeat to complete, fail or
// extend the attempt from elsewhere. Empty when the payload has none.
func (in Input) CallbackToken() string { return in.payload().Tasker.CallbackToken }

// Pending is the result with which a handler hands its step over to a
// later callback: the step waits (holding no in-flight slot) until its
// callback token is used or timeout passes (0: 24 hours; at most 365 days).
func Pending(timeout time.Duration) any {
	secs := int(timeout / time.Second)
	if timeout > 0 && secs == 0 {
		secs = 1
	}
	return map[string]contract.Pending{"tasker_pending": {TimeoutSeconds: secs}}
}

// newCallbackHandler returns the built-in tasker.callback handler, which
// runs only for a step with config.notify (without it the engine parks the
// step itself): it sends the notify request as tasker.http would, under
// the same client and policy, with the callback token in the
// Tasker-Callback-Token header, then answers tasker_pending with
// config.timeout_seconds. A failed request fails the attempt as tasker.http
// would, under the step's retry policy.
func newCallbackHandler(client *http.Client, policy HTTPPolicy) Handler {
	httpHandler := NewHTTPHandler(client, policy)
	return func(ctx context.Context, in Input) (any, error) {
		var cfg struct {
			TimeoutSeconds int            `json:"timeout_seconds"`
			Notify         map[string]any `json:"notify"`
		}
		if err := in.Config(&cfg); err != nil {
			return nil, Permanent(WithCode(fmt.Errorf("tasker.callback: %w", err), CodeInvalidConfig))
		}
		if cfg.TimeoutSeconds <= 0 {
			cfg.TimeoutSeconds = defaultCallbackTimeout
		}
		if cfg.Notify != nil {
			headers, _ := cfg.Notify["headers"].(map[string]any)
			h := make(map[string]any, len(headers)+1)
			for k, v := range headers {
				h[k] = v
			}
			h[CallbackTokenHeader] = in.CallbackToken()
			cfg.Notify["headers"] = h
			notify, err := json.Marshal(cfg.Notify)
			if err != nil {
				return nil, Permanent(WithCode(fmt.Errorf("tasker.callback: config.notify: %w", err), CodeInvalidConfig))
			}
			p := in.Payload()
			p.Config = notify
			if _, err := httpHandler(ctx, NewInput(p)); err != nil {
				return nil, err
			}
		}
		return Pending(time.Duration(cfg.TimeoutSeconds) * time.Second), nil
	}
}
