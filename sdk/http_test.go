package sdk

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskerhq/tasker/sdk/contract"
)

// runHTTP runs tasker.http with the given config against srv's client.
func runHTTP(t *testing.T, client *http.Client, ctxJSON, cfgJSON string) []byte {
	t.Helper()
	reg := NewRegistry(WithHTTPClient(client))
	return Run(context.Background(), reg, testPayload(t, BuiltinHTTP, ctxJSON, cfgJSON, nil))
}

func httpConfig(url string, extra string) string {
	cfg := `{"url":` + mustJSON(url)
	if extra != "" {
		cfg += "," + extra
	}
	return cfg + "}"
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestHTTPOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		wantResult string // exact result JSON on success
		permanent  bool
		code       string
		retryMin   int // bounds on retry_after_seconds
		retryMax   int
	}{
		{name: "200 JSON", status: 200, body: ` {"charge_id":"ch_1","amount":42} `, wantResult: `{"charge_id":"ch_1","amount":42}`},
		{name: "200 not JSON", status: 200, body: "hello", wantResult: `{"status":200,"body":"hello"}`},
		{name: "204 empty", status: 204, wantResult: `{"status":204,"body":""}`},
		{name: "400 permanent", status: 400, body: `{"error":"bad"}`, permanent: true, code: "http_400"},
		{name: "404 permanent", status: 404, permanent: true, code: "http_404"},
		{name: "409 permanent", status: 409, permanent: true, code: "http_409"},
		{name: "429 Retry-After seconds", status: 429, header: map[string]string{"Retry-After": "7"}, code: "http_429", retryMin: 7, retryMax: 7},
		{name: "503 Retry-After date", status: 503,
			header: map[string]string{"Retry-After": time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)},
			code:   "http_503", retryMin: 85, retryMax: 91},
		{name: "503 without Retry-After", status: 503, code: "http_503"},
		{name: "429 Retry-After garbage", status: 429, header: map[string]string{"Retry-After": "soon"}, code: "http_429"},
		{name: "500 retryable", status: 500, body: "oops", code: "http_500"},
		{name: "502 retryable", status: 502, code: "http_502"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			out := runHTTP(t, srv.Client(), "", httpConfig(srv.URL, ""))
			he, isErr := contract.AsHandlerError(out)
			if tt.wantResult != "" {
				if isErr || string(out) != tt.wantResult {
					t.Fatalf("got %s, want result %s", out, tt.wantResult)
				}
				return
			}
			if !isErr {
				t.Fatalf("got result %s, want an error", out)
			}
			if he.Permanent != tt.permanent || he.Code != tt.code ||
				he.RetryAfterSeconds < tt.retryMin || he.RetryAfterSeconds > tt.retryMax {
				t.Errorf("got %+v, want permanent=%v code=%s retry in [%d,%d]", he, tt.permanent, tt.code, tt.retryMin, tt.retryMax)
			}
			if !strings.Contains(he.Message, "POST "+srv.URL) {
				t.Errorf("message should name the request: %q", he.Message)
			}
		})
	}
}

func TestHTTPRequestShape(t *testing.T) {
	t.Parallel()
	type seen struct {
		method, path string
		header       http.Header
		body         []byte
	}
	var (
		mu   sync.Mutex
		last seen
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		last = seen{r.Method, r.URL.RequestURI(), r.Header.Clone(), b}
		mu.Unlock()
		_, _ = io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	get := func() seen { mu.Lock(); defer mu.Unlock(); return last }

	t.Run("defaults send the whole payload", func(t *testing.T) {
		ctxJSON := `{"order_id":"o 1/2"}`
		out := runHTTP(t, srv.Client(), ctxJSON, httpConfig(srv.URL+"/hook", ""))
		if string(out) != `{}` {
			t.Fatalf("got %s", out)
		}
		s := get()
		if s.method != "POST" || s.path != "/hook" {
			t.Errorf("got %s %s", s.method, s.path)
		}
		want := map[string]string{
			"Content-Type":     "application/json",
			"Idempotency-Key":  testTaskID.String() + "/process_payment/2",
			"X-Tasker-Task-Id": testTaskID.String(),
			"X-Correlation-Id": "corr-1",
			"X-Tasker-Attempt": "2",
		}
		for k, v := range want {
			if got := s.header.Get(k); got != v {
				t.Errorf("header %s = %q, want %q", k, got, v)
			}
		}
		var p contract.Payload
		if err := json.Unmarshal(s.body, &p); err != nil || p.Tasker.TaskID != testTaskID || string(p.Context) != ctxJSON {
			t.Errorf("body is not the invocation payload: %s (%v)", s.body, err)
		}
	})
	t.Run("method headers body and context placeholders", func(t *testing.T) {
		out := runHTTP(t, srv.Client(), `{"order_id":"o 1/2&x","tenant":"acme"}`, httpConfig(srv.URL+"/orders/${context.order_id}",
			`"method":"put","headers":{"X-Tenant":"${context.tenant}","Content-Type":"application/vnd+json"},"body":{"status":"paid"}`))
		if string(out) != `{}` {
			t.Fatalf("got %s", out)
		}
		s := get()
		if s.method != "PUT" || s.path != "/orders/o%201%2F2%26x" {
			t.Errorf("got %s %s", s.method, s.path)
		}
		if s.header.Get("X-Tenant") != "acme" || s.header.Get("Content-Type") != "application/vnd+json" {
			t.Errorf("headers %v", s.header)
		}
		if string(s.body) != `{"status":"paid"}` {
			t.Errorf("body %s", s.body)
		}
	})
	t.Run("GET sends no body", func(t *testing.T) {
		runHTTP(t, srv.Client(), "", httpConfig(srv.URL, `"method":"GET"`))
		if s := get(); s.method != "GET" || len(s.body) != 0 {
			t.Errorf("got %s with body %q", s.method, s.body)
		}
	})
}

func TestHTTPFailures(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()

	tests := []struct {
		name      string
		ctx       string
		cfg       string
		permanent bool
		code      string
		msg       string
	}{
		{"timeout", "", httpConfig(slow.URL, `"timeout_seconds":0.1`), false, CodeTimeout, "no response within 100ms"},
		{"connection refused", "", httpConfig(refused, ""), false, CodeConnection, "POST " + refused},
		{"missing url", "", `{"method":"POST"}`, true, CodeInvalidConfig, "config.url is required"},
		{"no config at all", "", "", true, CodeInvalidConfig, "config.url is required"},
		{"relative url", "", httpConfig("/just/a/path", ""), true, CodeInvalidConfig, "not an absolute http(s) URL"},
		{"bad scheme", "", httpConfig("ftp://example.com/x", ""), true, CodeInvalidConfig, "not an absolute http(s) URL"},
		{"missing placeholder value", `{}`, httpConfig("http://example.com/${context.order_id}", ""), true, CodeInvalidConfig, "${context.order_id}"},
		{"config not an object", "", `[1]`, true, CodeInvalidConfig, "decode step config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out := runHTTP(t, slow.Client(), tt.ctx, tt.cfg)
			he, ok := contract.AsHandlerError(out)
			if !ok {
				t.Fatalf("got result %s, want error", out)
			}
			if he.Permanent != tt.permanent || he.Code != tt.code || !strings.Contains(he.Message, tt.msg) {
				t.Errorf("got %+v, want permanent=%v code=%s message containing %q", he, tt.permanent, tt.code, tt.msg)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-3", 0},
		{" 12 ", 12 * time.Second},
		{now.Add(time.Minute).Format(http.TimeFormat), time.Minute},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"Thu, 02 Jan 2025 03:06:05 GMT", 2 * time.Minute},
		{"later", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
