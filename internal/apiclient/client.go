// Package apiclient is a small HTTP client of the Tasker API. It speaks the
// wire types of internal/wire, adds the bearer token, and turns non-2xx
// answers into *Error (with the decoded problem+json document) and
// requests that got no answer into *ConnError.
//
// Import rules: apiclient imports internal/wire and the standard library,
// nothing of the server (cmd/tasker/imports_test.go checks it).
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/taskerhq/tasker/internal/wire"
)

// DefaultURL is where `tasker dev` listens by default.
const DefaultURL = "http://127.0.0.1:8080"

// DefaultTimeout bounds one request unless WithHTTPClient says otherwise.
const DefaultTimeout = 30 * time.Second

// maxBody caps the size of an answer the client reads.
const maxBody = 64 << 20

// Client is a client of one Tasker API. Its zero value is not usable; make
// one with New.
type Client struct {
	base      string
	token     string
	userAgent string
	hc        *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sends requests through hc instead of a client with
// DefaultTimeout.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithTimeout bounds each request (DefaultTimeout when not given).
func WithTimeout(d time.Duration) Option {
	return func(c *Client) { c.hc = &http.Client{Timeout: d} }
}

// WithUserAgent sets the User-Agent header (default "tasker-cli").
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client of the API at base, an http or https URL; a base
// without a scheme ("host:port") is taken as http. token, when not empty,
// is sent as a bearer token.
func New(base, token string, opts ...Option) (*Client, error) {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) URL", base)
	}
	c := &Client{
		base:      strings.TrimRight(u.String(), "/"),
		token:     strings.TrimSpace(token),
		userAgent: "tasker-cli",
		hc:        &http.Client{Timeout: DefaultTimeout},
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// BaseURL is the API's base URL, without a trailing slash.
func (c *Client) BaseURL() string { return c.base }

// Error is a non-2xx answer. Problem is set when the body was a
// problem+json document; Body is the body as received.
type Error struct {
	Status  int
	Problem *wire.Problem
	Body    []byte
}

func (e *Error) Error() string {
	if p := e.Problem; p != nil {
		msg := p.Title
		if msg == "" {
			msg = http.StatusText(e.Status)
		}
		if p.Detail != "" {
			msg += ": " + p.Detail
		}
		return msg
	}
	body := strings.TrimSpace(string(e.Body))
	if len(body) > 200 {
		body = body[:200] + "…"
	}
	if body == "" {
		return fmt.Sprintf("HTTP %d %s", e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, http.StatusText(e.Status), body)
}

// ConnError is a request that got no HTTP answer.
type ConnError struct {
	Base string
	Err  error
}

func (e *ConnError) Error() string {
	return fmt.Sprintf("cannot reach the Tasker API at %s (is `tasker dev` running? set --url or TASKER_URL): %v", e.Base, e.Err)
}

func (e *ConnError) Unwrap() error { return e.Err }

// Do sends one request and returns the body and status of a 2xx answer.
// body, when not nil, is sent as JSON (a json.RawMessage as is). A
// cancelled ctx is returned as ctx.Err().
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body any) ([]byte, int, error) {
	var rd io.Reader
	if body != nil {
		var b []byte
		if raw, ok := body.(json.RawMessage); ok {
			b = raw
		} else {
			var err error
			if b, err = json.Marshal(body); err != nil {
				return nil, 0, err
			}
		}
		rd = bytes.NewReader(b)
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		return nil, 0, &ConnError{Base: c.base, Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, resp.StatusCode, &ConnError{Base: c.base, Err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		ae := &Error{Status: resp.StatusCode, Body: data}
		var p wire.Problem
		if json.Unmarshal(data, &p) == nil && (p.Title != "" || p.Detail != "" || p.Type != "") {
			ae.Problem = &p
		}
		return nil, resp.StatusCode, ae
	}
	return data, resp.StatusCode, nil
}

// Get fetches path and decodes the answer into dst (when not nil); it
// returns the raw body.
func (c *Client) Get(ctx context.Context, path string, query url.Values, dst any) ([]byte, error) {
	data, _, err := c.Do(ctx, http.MethodGet, path, query, nil)
	if err != nil {
		return nil, err
	}
	if dst != nil {
		if err := json.Unmarshal(data, dst); err != nil {
			return nil, fmt.Errorf("GET %s: unexpected response: %w", path, err)
		}
	}
	return data, nil
}

// Post posts body to path and decodes the answer into dst (when not nil);
// it returns the raw answer and the status code.
func (c *Client) Post(ctx context.Context, path string, body, dst any) ([]byte, int, error) {
	data, code, err := c.Do(ctx, http.MethodPost, path, nil, body)
	if err != nil {
		return nil, code, err
	}
	if dst != nil {
		if err := json.Unmarshal(data, dst); err != nil {
			return nil, code, fmt.Errorf("POST %s: unexpected response: %w", path, err)
		}
	}
	return data, code, nil
}
