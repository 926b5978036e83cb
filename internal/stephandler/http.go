package stephandler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultHTTPTimeout bounds one tasker.http request unless the step config
// sets timeout_seconds.
const DefaultHTTPTimeout = 30 * time.Second

// maxHTTPResponse bounds how much of a response tasker.http reads.
const maxHTTPResponse = 8 << 20

// Error codes of the built-in tasker.http handler; status failures use
// "http_<status>", e.g. "http_503".
const (
	CodeInvalidConfig = "invalid_config"
	CodeConnection    = "connection"
)

// HTTPConfig is the step config of the built-in tasker.http handler.
type HTTPConfig struct {
	// URL is required. "${context.path}" placeholders are replaced by
	// values of the task context (path-escaped).
	URL string `json:"url"`
	// Method defaults to POST.
	Method string `json:"method"`
	// Headers are sent after the defaults, so they may override them.
	// "${context.path}" placeholders are replaced as in URL (unescaped).
	Headers map[string]string `json:"headers"`
	// Body is sent as JSON. Absent: the whole invocation payload (for GET
	// and HEAD: no body).
	Body json.RawMessage `json:"body"`
	// TimeoutSeconds bounds the request (default 30; fractions allowed).
	TimeoutSeconds float64 `json:"timeout_seconds"`
}

// NewHTTPHandler returns the tasker.http handler using client (nil: a
// default client). NewRegistry registers it; use WithHTTPClient there to
// inject a client.
//
// Outcomes: 2xx ⇒ the response JSON, or {"status":N,"body":"…"} when it is
// not JSON; 429 and 503 ⇒ retryable honouring Retry-After (seconds or HTTP
// date); other 4xx (and 1xx/3xx that reach it) ⇒ permanent; 5xx, timeouts
// and connection errors ⇒ retryable. Every request carries Content-Type:
// application/json, Idempotency-Key, X-Tasker-Task-Id, X-Tasker-Step,
// X-Tasker-Attempt and X-Correlation-ID (and traceparent when known).
func NewHTTPHandler(client *http.Client) Handler {
	if client == nil {
		client = &http.Client{}
	}
	return func(ctx context.Context, in Input) (any, error) {
		return doHTTP(ctx, client, in)
	}
}

func invalidConfig(format string, args ...any) error {
	return Permanent(WithCode(fmt.Errorf("tasker.http: "+format, args...), CodeInvalidConfig))
}

func doHTTP(ctx context.Context, client *http.Client, in Input) (any, error) {
	var cfg HTTPConfig
	if err := in.Config(&cfg); err != nil {
		return nil, invalidConfig("%v", err)
	}
	if strings.TrimSpace(cfg.URL) == "" {
		return nil, invalidConfig("config.url is required")
	}
	rawURL, err := expandContext(in, cfg.URL, escapeURLValue)
	if err != nil {
		return nil, invalidConfig("config.url: %v", err)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, invalidConfig("config.url: %v", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, invalidConfig("config.url %q is not an absolute http(s) URL", u.Redacted())
	}
	method := strings.ToUpper(strings.TrimSpace(cfg.Method))
	if method == "" {
		method = http.MethodPost
	}
	timeout := DefaultHTTPTimeout
	if cfg.TimeoutSeconds > 0 {
		timeout = time.Duration(cfg.TimeoutSeconds * float64(time.Second))
	}

	var body io.Reader
	switch {
	case len(cfg.Body) > 0:
		body = bytes.NewReader(cfg.Body)
	case method == http.MethodGet || method == http.MethodHead:
	default:
		body = bytes.NewReader(in.Raw())
	}

	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, u.String(), body)
	if err != nil {
		return nil, invalidConfig("%v", err)
	}
	m := in.Meta()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "tasker-http/1")
	req.Header.Set("Idempotency-Key", m.IdempotencyKey)
	req.Header.Set("X-Tasker-Task-Id", m.TaskID.String())
	req.Header.Set("X-Tasker-Step", m.Step)
	req.Header.Set("X-Tasker-Attempt", strconv.Itoa(m.Attempt))
	req.Header.Set("X-Correlation-ID", m.CorrelationID)
	if m.TraceParent != "" {
		req.Header.Set("traceparent", m.TraceParent)
	}
	for k, v := range cfg.Headers {
		v, err := expandContext(in, v, func(s string) string { return s })
		if err != nil {
			return nil, invalidConfig("config.headers.%s: %v", k, err)
		}
		req.Header.Set(k, v)
	}

	where := method + " " + u.Redacted()
	resp, err := client.Do(req)
	if err != nil {
		if rctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
			return nil, WithCode(fmt.Errorf("%s: no response within %s: %w", where, timeout, context.DeadlineExceeded), CodeTimeout)
		}
		return nil, WithCode(fmt.Errorf("%s: %w", where, err), CodeConnection)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxHTTPResponse+1))
	if err != nil {
		if rctx.Err() != nil {
			return nil, WithCode(fmt.Errorf("%s: response not read within %s: %w", where, timeout, context.DeadlineExceeded), CodeTimeout)
		}
		return nil, WithCode(fmt.Errorf("%s: reading response: %w", where, err), CodeConnection)
	}
	code := "http_" + strconv.Itoa(resp.StatusCode)
	status := resp.StatusCode
	switch {
	case status >= 200 && status < 300:
		if len(data) > maxHTTPResponse {
			return nil, Permanent(WithCode(fmt.Errorf("%s: response body over %d bytes", where, maxHTTPResponse), CodeResultTooLarge))
		}
		if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && json.Valid(trimmed) {
			return json.RawMessage(trimmed), nil
		}
		return struct {
			Status int    `json:"status"`
			Body   string `json:"body"`
		}{status, string(data)}, nil
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		err := WithCode(statusError(where, resp, data), code)
		if d := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); d > 0 {
			err = RetryAfter(err, d)
		}
		return nil, err
	case status >= 500:
		return nil, WithCode(statusError(where, resp, data), code)
	default: // 4xx, and 1xx/3xx the client did not resolve
		return nil, Permanent(WithCode(statusError(where, resp, data), code))
	}
}

func statusError(where string, resp *http.Response, data []byte) error {
	const max = 512
	snippet := strings.TrimSpace(string(data))
	if len(snippet) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(snippet[cut]) {
			cut--
		}
		snippet = snippet[:cut] + "…"
	}
	if snippet == "" {
		return fmt.Errorf("%s: HTTP %s", where, resp.Status)
	}
	return fmt.Errorf("%s: HTTP %s: %s", where, resp.Status, snippet)
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n > 0 {
			return time.Duration(n) * time.Second
		}
		return 0
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

var placeholder = regexp.MustCompile(`\$\{context\.([^}]+)\}`)

// expandContext replaces ${context.path} with context values; a missing
// value is an error.
func expandContext(in Input, s string, escape func(string) string) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var missing string
	out := placeholder.ReplaceAllStringFunc(s, func(m string) string {
		path := placeholder.FindStringSubmatch(m)[1]
		v, ok := in.ContextValue(path)
		if !ok || v == nil {
			if missing == "" {
				missing = path
			}
			return m
		}
		return escape(scalarString(v))
	})
	if missing != "" {
		return "", fmt.Errorf("references ${context.%s}, which the task context lacks", missing)
	}
	return out, nil
}

func scalarString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// escapeURLValue escapes a value for a path segment or a query value.
func escapeURLValue(s string) string {
	return strings.NewReplacer("&", "%26", "=", "%3D", "+", "%2B").Replace(url.PathEscape(s))
}
