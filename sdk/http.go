package sdk

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

	"github.com/taskerhq/tasker/sdk/contract"
)

// DefaultHTTPTimeout bounds one tasker.http request unless the step config
// sets timeout_seconds.
const DefaultHTTPTimeout = 30 * time.Second

// MaxHTTPResponseBytes bounds how much of a response body tasker.http
// reads: four times DefaultMaxResultBytes, so pretty-printed JSON that
// compacts under the result limit still fits. A 2xx body over it fails
// the attempt permanently with code result_too_large.
const MaxHTTPResponseBytes = 4 * DefaultMaxResultBytes

// maxErrorBody bounds how much of a non-2xx response body is read.
const maxErrorBody = 64 << 10

// maxRedirects bounds the redirects follow_redirects: same_origin follows.
const maxRedirects = 10

// Error codes of the built-in tasker.http handler; status failures use
// "http_<status>", e.g. "http_503".
const (
	CodeInvalidConfig = "invalid_config"
	CodeConnection    = "connection"
)

// Values of HTTPConfig.FollowRedirects.
const (
	RedirectsNever      = "never"
	RedirectsSameOrigin = "same_origin"
)

// HTTPConfig is the step config of the built-in tasker.http handler.
type HTTPConfig struct {
	// URL is required. "${context.path}" placeholders are replaced by
	// values of the task context, percent-encoded as one path segment or
	// one query component; they may not appear before the path, so the
	// scheme (http or https), host and port come from the template.
	URL string `json:"url"`
	// Method defaults to POST.
	Method string `json:"method"`
	// Headers are sent after the defaults, so they may override them.
	// "${context.path}" placeholders are replaced as in URL (unescaped;
	// control characters are refused).
	Headers map[string]string `json:"headers"`
	// Body is sent as JSON. Absent: the invocation payload without
	// config.headers (for GET and HEAD: no body).
	Body json.RawMessage `json:"body"`
	// TimeoutSeconds bounds the request (default 30; fractions allowed).
	TimeoutSeconds float64 `json:"timeout_seconds"`
	// FollowRedirects is "never" (the default: a 3xx fails permanently)
	// or "same_origin" (follow up to 10 redirects to the same scheme,
	// host and port; a redirect elsewhere fails permanently).
	FollowRedirects string `json:"follow_redirects"`
}

// NewHTTPHandler returns the tasker.http handler using client (nil: a
// client with a clone of the default transport) under policy. NewRegistry
// registers it; use WithHTTPClient and WithHTTPPolicy there.
//
// Outcomes: 2xx ⇒ the response JSON, or {"status":N,"body":"…"} when it is
// not JSON; 429 and 503 ⇒ retryable honouring Retry-After (seconds or HTTP
// date); 3xx not followed, other 4xx (and 1xx) ⇒ permanent; 5xx, timeouts
// and connection errors ⇒ retryable; a host outside the policy's
// allow-list or an address it denies ⇒ permanent. Every request carries
// Content-Type: application/json, Idempotency-Key (unless config.headers
// sets it), X-Tasker-Task-Id, X-Tasker-Step, X-Tasker-Attempt and
// X-Correlation-ID (and traceparent when known).
func NewHTTPHandler(client *http.Client, policy HTTPPolicy) Handler {
	c, err := policyClient(client, policy)
	if err == nil {
		err = policy.Validate()
	}
	if err != nil {
		return func(context.Context, Input) (any, error) {
			return nil, Permanent(WithCode(fmt.Errorf("tasker.http: %w", err), CodeInvalidConfig))
		}
	}
	return func(ctx context.Context, in Input) (any, error) {
		return doHTTP(ctx, c, policy, in)
	}
}

func invalidConfig(format string, args ...any) error {
	return Permanent(WithCode(fmt.Errorf("tasker.http: "+format, args...), CodeInvalidConfig))
}

func doHTTP(ctx context.Context, client *http.Client, policy HTTPPolicy, in Input) (any, error) {
	var cfg HTTPConfig
	if err := in.Config(&cfg); err != nil {
		return nil, invalidConfig("%v", err)
	}
	if strings.TrimSpace(cfg.URL) == "" {
		return nil, invalidConfig("config.url is required")
	}
	u, err := expandURL(in, cfg.URL)
	if err != nil {
		return nil, invalidConfig("config.url: %v", err)
	}
	method := strings.ToUpper(strings.TrimSpace(cfg.Method))
	if method == "" {
		method = http.MethodPost
	}
	timeout := DefaultHTTPTimeout
	if cfg.TimeoutSeconds > 0 {
		timeout = time.Duration(cfg.TimeoutSeconds * float64(time.Second))
	}
	follow := cfg.FollowRedirects
	switch follow {
	case "", RedirectsNever:
		follow = RedirectsNever
	case RedirectsSameOrigin:
	default:
		return nil, invalidConfig("config.follow_redirects is %q; want %q or %q", follow, RedirectsNever, RedirectsSameOrigin)
	}
	where := method + " " + u.Redacted()
	if !policy.allowsHost(u.Hostname()) {
		return nil, Permanent(WithCode(fmt.Errorf("%s: host %q is not in %s", where, u.Hostname(), EnvHTTPAllowedHosts), CodeHostNotAllowed))
	}

	var body io.Reader
	switch {
	case len(cfg.Body) > 0:
		body = bytes.NewReader(cfg.Body)
	case method == http.MethodGet || method == http.MethodHead:
	default:
		b, err := defaultBody(in.Raw())
		if err != nil {
			return nil, Permanent(WithCode(fmt.Errorf("tasker.http: default body: %w", err), CodeInvalidPayload))
		}
		body = bytes.NewReader(b)
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
	if m.IdempotencyKey != "" {
		req.Header.Set(contract.IdempotencyKeyHeader, m.IdempotencyKey)
	}
	req.Header.Set("X-Tasker-Task-Id", m.TaskID.String())
	req.Header.Set("X-Tasker-Step", m.Step)
	req.Header.Set("X-Tasker-Attempt", strconv.Itoa(m.Attempt))
	req.Header.Set("X-Correlation-ID", m.CorrelationID)
	if m.TraceParent != "" {
		req.Header.Set("traceparent", m.TraceParent)
	}
	for k, v := range cfg.Headers {
		if !validHeaderName(k) {
			return nil, invalidConfig("config.headers: %q is not a valid header name", k)
		}
		v, err := expandContext(in, v)
		if err != nil {
			return nil, invalidConfig("config.headers.%s: %v", k, err)
		}
		if !validHeaderValue(v) {
			return nil, invalidConfig("config.headers.%s: the value holds control characters", k)
		}
		req.Header.Set(k, v)
	}

	// Redirects: never followed unless the step allows same-origin ones,
	// so neither the template's headers nor the body can be forwarded to
	// a host the template did not name.
	var notFollowed string
	c := *client
	c.CheckRedirect = func(next *http.Request, via []*http.Request) error {
		switch {
		case follow != RedirectsSameOrigin:
			notFollowed = "redirect not followed (config.follow_redirects: same_origin follows redirects within the origin)"
		case !sameOrigin(next.URL, via[0].URL):
			notFollowed = "redirect to another origin not followed"
		case len(via) >= maxRedirects:
			notFollowed = fmt.Sprintf("stopped after %d redirects", maxRedirects)
		default:
			return nil
		}
		return http.ErrUseLastResponse
	}

	resp, err := c.Do(req)
	if err != nil {
		if errors.Is(err, errAddressDenied) {
			return nil, Permanent(WithCode(fmt.Errorf("%s: %w", where, err), CodeAddressDenied))
		}
		if rctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
			return nil, WithCode(fmt.Errorf("%s: no response within %s: %w", where, timeout, context.DeadlineExceeded), CodeTimeout)
		}
		return nil, WithCode(fmt.Errorf("%s: %w", where, err), CodeConnection)
	}
	defer resp.Body.Close()
	status := resp.StatusCode
	code := "http_" + strconv.Itoa(status)
	ok := status >= 200 && status < 300
	if ok && resp.ContentLength > MaxHTTPResponseBytes {
		return nil, Permanent(WithCode(fmt.Errorf("%s: response body is %d bytes, over the %d-byte limit", where, resp.ContentLength, MaxHTTPResponseBytes), CodeResultTooLarge))
	}
	limit := int64(MaxHTTPResponseBytes)
	if !ok {
		limit = maxErrorBody // only a snippet makes it into the error
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		if rctx.Err() != nil {
			return nil, WithCode(fmt.Errorf("%s: response not read within %s: %w", where, timeout, context.DeadlineExceeded), CodeTimeout)
		}
		return nil, WithCode(fmt.Errorf("%s: reading response: %w", where, err), CodeConnection)
	}
	switch {
	case ok:
		if len(data) > MaxHTTPResponseBytes {
			return nil, Permanent(WithCode(fmt.Errorf("%s: response body over the %d-byte limit", where, MaxHTTPResponseBytes), CodeResultTooLarge))
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
	case status >= 300 && status < 400:
		if notFollowed == "" {
			notFollowed = "redirect not followed"
		}
		loc := "no Location"
		if l, err := resp.Location(); err == nil {
			loc = "Location " + l.Redacted()
		}
		return nil, Permanent(WithCode(fmt.Errorf("%s: HTTP %s (%s): %s", where, resp.Status, loc, notFollowed), code))
	default: // 4xx, and 1xx the client did not resolve
		return nil, Permanent(WithCode(statusError(where, resp, data), code))
	}
}

// sameOrigin reports whether a and b share scheme, host and port.
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && normalizeHost(a.Hostname()) == normalizeHost(b.Hostname()) &&
		effectivePort(a) == effectivePort(b)
}

func effectivePort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// defaultBody is the invocation payload without config.headers, so the
// template's credentials go only where the template sends them. Other
// fields are kept byte for byte.
func defaultBody(raw []byte) ([]byte, error) {
	var p map[string]json.RawMessage
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, err
	}
	cfgRaw := bytes.TrimSpace(p["config"])
	if len(cfgRaw) == 0 || cfgRaw[0] != '{' {
		return raw, nil
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(cfgRaw, &cfg); err != nil {
		return nil, err
	}
	if _, ok := cfg["headers"]; !ok {
		return raw, nil
	}
	delete(cfg, "headers")
	var err error
	if p["config"], err = marshalNoEscape(cfg); err != nil {
		return nil, err
	}
	return marshalNoEscape(p)
}

func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// validHeaderValue refuses control characters other than tab (CR and LF
// would split the header).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
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

// expandContext replaces ${context.path} with context values, unescaped
// (for header values; URLs go through expandURL); a missing value is an
// error.
func expandContext(in Input, s string) (string, error) {
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
		return scalarString(v)
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

// expandURL builds the request URL from the config.url template. The
// scheme, user info, host and port are taken from the template as written:
// a placeholder before the path is refused. Each placeholder value is
// percent-encoded as one path segment (in the path) or one query or
// fragment component, so it cannot add segments, parameters or an
// authority.
func expandURL(in Input, tmpl string) (*url.URL, error) {
	tmpl = strings.TrimSpace(tmpl)
	scheme, rest, ok := strings.Cut(tmpl, "://")
	scheme = strings.ToLower(scheme)
	if !ok || (scheme != "http" && scheme != "https") {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", redactTemplate(tmpl))
	}
	authEnd := strings.IndexAny(rest, "/?#")
	if authEnd < 0 {
		authEnd = len(rest)
	}
	authority := rest[:authEnd]
	if strings.Contains(authority, "${") {
		return nil, fmt.Errorf("%q has a placeholder in its host: the scheme, host and port must be written out in the template, and placeholders may only follow the \"/\" that starts the path", redactTemplate(tmpl))
	}
	base, err := url.Parse(scheme + "://" + authority)
	if err != nil {
		return nil, err
	}
	if base.Host == "" || base.Hostname() == "" {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", base.Redacted())
	}

	tail := rest[authEnd:]
	var b strings.Builder
	b.WriteString(scheme + "://" + authority)
	inPath := true
	last := 0
	var missing string
	for _, m := range placeholder.FindAllStringSubmatchIndex(tail, -1) {
		lit := tail[last:m[0]]
		b.WriteString(lit)
		if strings.ContainsAny(lit, "?#") {
			inPath = false
		}
		path := tail[m[2]:m[3]]
		last = m[1]
		v, ok := in.ContextValue(path)
		if !ok || v == nil {
			if missing == "" {
				missing = path
			}
			continue
		}
		b.WriteString(escapeComponent(scalarString(v), inPath))
	}
	b.WriteString(tail[last:])
	if missing != "" {
		return nil, fmt.Errorf("references ${context.%s}, which the task context lacks", missing)
	}
	u, err := url.Parse(b.String())
	if err != nil {
		return nil, err
	}
	// Defence in depth: the expansion cannot have moved the origin.
	if u.Scheme != scheme || u.Host != base.Host || u.User.String() != base.User.String() || u.Opaque != "" {
		return nil, fmt.Errorf("%q: the expanded URL changes the scheme or host", base.Redacted())
	}
	return u, nil
}

// redactTemplate hides a password in a URL template for error messages.
func redactTemplate(tmpl string) string {
	scheme, rest, ok := strings.Cut(tmpl, "://")
	if !ok {
		return tmpl
	}
	at := strings.IndexByte(rest, '@')
	if end := strings.IndexAny(rest, "/?#"); at < 0 || (end >= 0 && at > end) {
		return tmpl
	}
	if user, _, hasPw := strings.Cut(rest[:at], ":"); hasPw {
		return scheme + "://" + user + ":xxxxx" + rest[at:]
	}
	return tmpl
}

// escapeComponent percent-encodes every byte but RFC 3986 unreserved
// characters. In a path, a value of only dots is encoded too, so it
// cannot become a "." or ".." segment.
func escapeComponent(s string, inPath bool) string {
	const hex = "0123456789ABCDEF"
	onlyDots := inPath && strings.Trim(s, ".") == ""
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '~' || (c == '.' && !onlyDots) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
