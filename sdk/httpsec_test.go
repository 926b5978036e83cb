package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/taskerhq/tasker/sdk/contract"
)

// recorder is a real HTTP server on 127.0.0.1 that records what reaches it.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	method, uri string
	header      http.Header
	body        []byte
}

// newRecorder starts a recorder answering with h (nil: 200 {"ok":true}).
func newRecorder(t *testing.T, h http.HandlerFunc) *recorder {
	t.Helper()
	r := &recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, recorded{req.Method, req.URL.RequestURI(), req.Header.Clone(), b})
		r.mu.Unlock()
		if h != nil {
			h(w, req)
			return
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

// runHTTPPolicy runs tasker.http under policy with the default client.
func runHTTPPolicy(t *testing.T, policy HTTPPolicy, ctxJSON, cfgJSON string) []byte {
	t.Helper()
	reg := NewRegistry(WithHTTPPolicy(policy))
	return Run(context.Background(), reg, testPayload(t, BuiltinHTTP, ctxJSON, cfgJSON, nil))
}

// wantHandlerError checks out is a handler error with code and a message
// containing msg.
func wantHandlerError(t *testing.T, out []byte, permanent bool, code, msg string) {
	t.Helper()
	he, ok := contract.AsHandlerError(out)
	if !ok {
		t.Fatalf("got result %s, want error %s", out, code)
	}
	if he.Permanent != permanent || he.Code != code || !strings.Contains(he.Message, msg) {
		t.Errorf("got %+v, want permanent=%v code=%s message containing %q", he, permanent, code, msg)
	}
}

// TestHTTPURLPlaceholders: the task context fills path segments and query
// components, never the scheme, host or port (issue 15, finding 2).
func TestHTTPURLPlaceholders(t *testing.T) {
	t.Parallel()
	target := newRecorder(t, nil)
	other := newRecorder(t, nil)
	otherHostPort := strings.TrimPrefix(other.URL, "http://")
	tests := []struct {
		name    string
		ctx     string
		url     string
		wantURI string // request URI at target; "" = refused as invalid_config
		msg     string
	}{
		{name: "context chooses the host after the host (the report)", ctx: `{"path":"@` + otherHostPort + `"}`,
			url: "http://api.partner.example${context.path}", msg: "placeholder in its host"},
		{name: "same against the test host", ctx: `{"path":"@` + otherHostPort + `"}`,
			url: target.URL + "${context.path}", msg: "placeholder in its host"},
		{name: "placeholder as host", ctx: `{"h":"` + otherHostPort + `"}`, url: "http://${context.h}/x", msg: "placeholder in its host"},
		{name: "placeholder in user info", ctx: `{"u":"x"}`, url: "http://${context.u}@" + otherHostPort + "/", msg: "placeholder in its host"},
		{name: "placeholder as scheme", ctx: `{"s":"http"}`, url: "${context.s}://" + otherHostPort + "/", msg: "not an absolute http(s) URL"},
		{name: "file scheme", url: "file:///etc/passwd", msg: "not an absolute http(s) URL"},
		{name: "gopher scheme", url: "gopher://" + otherHostPort + "/", msg: "not an absolute http(s) URL"},
		{name: "injection becomes one escaped path segment", ctx: `{"path":"@` + otherHostPort + `"}`,
			url: target.URL + "/${context.path}", wantURI: "/%40" + strings.ReplaceAll(otherHostPort, ":", "%3A")},
		{name: "slashes and dot segments stay in one segment", ctx: `{"p":"../../admin","d":".."}`,
			url: target.URL + "/files/${context.p}/${context.d}", wantURI: "/files/..%2F..%2Fadmin/%2E%2E"},
		{name: "query component cannot add parameters", ctx: `{"q":"a b&admin=true#x","n":7}`,
			url: target.URL + "/search?q=${context.q}&n=${context.n}", wantURI: "/search?q=a%20b%26admin%3Dtrue%23x&n=7"},
		{name: "query separator in a path value", ctx: `{"id":"1?admin=true"}`,
			url: target.URL + "/orders/${context.id}", wantURI: "/orders/1%3Fadmin%3Dtrue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(target.requests())
			out := runHTTP(t, nil, tt.ctx, httpConfig(tt.url, `"headers":{"Authorization":"Bearer template-secret"}`))
			if tt.wantURI == "" {
				wantHandlerError(t, out, true, CodeInvalidConfig, tt.msg)
				if n := len(target.requests()); n != before {
					t.Errorf("a refused request reached the template host")
				}
			} else {
				if _, isErr := contract.AsHandlerError(out); isErr {
					t.Fatalf("got %s", out)
				}
				reqs := target.requests()
				if len(reqs) != before+1 || reqs[len(reqs)-1].uri != tt.wantURI {
					t.Fatalf("template host saw %+v, want one request for %s", reqs[before:], tt.wantURI)
				}
			}
		})
	}
	if n := len(other.requests()); n != 0 {
		t.Errorf("the host named by the context received %d requests", n)
	}
}

// TestHTTPRedirects: redirects are not followed unless the step allows
// same-origin ones; another origin never sees the template's headers or the
// payload (issue 15, finding 3).
func TestHTTPRedirects(t *testing.T) {
	t.Parallel()
	other := newRecorder(t, nil)
	var target *recorder
	target = newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, other.URL+"/stolen", http.StatusFound)
		case "/away-307":
			http.Redirect(w, r, other.URL+"/stolen", http.StatusTemporaryRedirect)
		case "/here":
			http.Redirect(w, r, "/final", http.StatusTemporaryRedirect)
		case "/here-then-away":
			http.Redirect(w, r, "/away-307", http.StatusTemporaryRedirect)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/final":
			_, _ = io.WriteString(w, `{"final":true}`)
		}
	})
	secret := `"headers":{"X-Api-Key":"template-secret"}`
	tests := []struct {
		name   string
		path   string
		follow string
		result string // "" = want a permanent error with code and msg
		code   string
		msg    string
	}{
		{name: "cross-origin by default", path: "/away", code: "http_302", msg: "redirect not followed"},
		{name: "same-origin by default", path: "/here", code: "http_307", msg: "Location " + target.URL + "/final"},
		{name: "explicit never", path: "/here", follow: `"never"`, code: "http_307", msg: "same_origin follows"},
		{name: "cross-origin with same_origin", path: "/away-307", follow: `"same_origin"`, code: "http_307", msg: "another origin not followed"},
		{name: "same-origin hop then cross-origin", path: "/here-then-away", follow: `"same_origin"`, code: "http_307", msg: "another origin not followed"},
		{name: "same-origin followed", path: "/here", follow: `"same_origin"`, result: `{"final":true}`},
		{name: "loop stops", path: "/loop", follow: `"same_origin"`, code: "http_302", msg: "stopped after 10 redirects"},
		{name: "bad value", path: "/here", follow: `"always"`, code: CodeInvalidConfig, msg: "config.follow_redirects"},
		{name: "bool value", path: "/here", follow: `true`, code: CodeInvalidConfig, msg: "decode step config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			extra := secret
			if tt.follow != "" {
				extra += `,"follow_redirects":` + tt.follow
			}
			out := runHTTP(t, nil, `{"n":1}`, httpConfig(target.URL+tt.path, extra))
			if tt.result != "" {
				if string(out) != tt.result {
					t.Fatalf("got %s, want %s", out, tt.result)
				}
				return
			}
			wantHandlerError(t, out, true, tt.code, tt.msg)
		})
	}
	// The followed same-origin 307 re-sent headers and body to /final.
	var sawFinal bool
	for _, r := range target.requests() {
		if r.uri == "/final" {
			sawFinal = true
			if r.header.Get("X-Api-Key") != "template-secret" || !strings.Contains(string(r.body), `"n":1`) {
				t.Errorf("same-origin 307 lost headers or body: %v %s", r.header, r.body)
			}
		}
	}
	if !sawFinal {
		t.Error("same-origin redirect never reached /final")
	}
	if reqs := other.requests(); len(reqs) != 0 {
		t.Errorf("another origin received %d requests, first with headers %v", len(reqs), reqs[0].header)
	}
}

// TestHTTPPolicyEnforced: the allow-list and deny-private refuse before any
// byte reaches the server; otherwise loopback servers are reachable.
func TestHTTPPolicyEnforced(t *testing.T) {
	t.Parallel()
	srv := newRecorder(t, nil)
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	guardable := &http.Client{Transport: &http.Transport{}}
	custom := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{}).DialContext}}
	tests := []struct {
		name    string
		policy  HTTPPolicy
		client  *http.Client
		url     string
		code    string // "" = want success
		msg     string
		reaches bool
	}{
		{name: "no policy", url: srv.URL, reaches: true},
		{name: "allowed exact IP", policy: HTTPPolicy{AllowedHosts: []string{"api.example.com", "127.0.0.1"}}, url: srv.URL, reaches: true},
		{name: "allowed name", policy: HTTPPolicy{AllowedHosts: []string{"*.example.com", "LOCALHOST"}}, url: "http://localhost:" + port, reaches: true},
		{name: "not in allow-list", policy: HTTPPolicy{AllowedHosts: []string{"*.example.com"}}, url: srv.URL,
			code: CodeHostNotAllowed, msg: `host "127.0.0.1" is not in TASKER_HTTP_ALLOWED_HOSTS`},
		{name: "wildcard does not match the apex or a suffix trick", policy: HTTPPolicy{AllowedHosts: []string{"*.localhost"}}, url: "http://localhost:" + port,
			code: CodeHostNotAllowed, msg: "not in TASKER_HTTP_ALLOWED_HOSTS"},
		{name: "deny-private refuses loopback IP", policy: HTTPPolicy{DenyPrivate: true}, url: srv.URL,
			code: CodeAddressDenied, msg: "127.0.0.1 is a loopback, private"},
		{name: "deny-private refuses a name resolving to loopback", policy: HTTPPolicy{DenyPrivate: true}, url: "http://localhost:" + port,
			code: CodeAddressDenied, msg: "TASKER_HTTP_DENY_PRIVATE is on"},
		{name: "deny-private guards an injected transport", policy: HTTPPolicy{DenyPrivate: true}, client: guardable, url: srv.URL,
			code: CodeAddressDenied, msg: "TASKER_HTTP_DENY_PRIVATE is on"},
		{name: "deny-private refuses an unguardable transport", policy: HTTPPolicy{DenyPrivate: true}, client: custom, url: srv.URL,
			code: CodeInvalidConfig, msg: "cannot be guarded"},
		{name: "deny-private off", policy: HTTPPolicy{DenyPrivate: false}, client: guardable, url: srv.URL, reaches: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(srv.requests())
			reg := NewRegistry(WithHTTPClient(tt.client), WithHTTPPolicy(tt.policy))
			out := Run(context.Background(), reg, testPayload(t, BuiltinHTTP, "", httpConfig(tt.url, `"timeout_seconds":5`), nil))
			if tt.code == "" {
				if string(out) != `{"ok":true}` {
					t.Fatalf("got %s", out)
				}
			} else {
				wantHandlerError(t, out, true, tt.code, tt.msg)
			}
			if got := len(srv.requests()) > before; got != tt.reaches {
				t.Errorf("request reached the server: %v, want %v", got, tt.reaches)
			}
		})
	}
}

func TestHTTPPolicyFromEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		env         map[string]string
		def         bool
		wantDeny    bool
		wantAllowed []string
		errVar      string // the variable an error must name
	}{
		{name: "unset, Lambda default", def: true, wantDeny: true},
		{name: "unset, local default", def: false, wantDeny: false},
		{name: "off in Lambda", env: map[string]string{EnvHTTPDenyPrivate: "false"}, def: true, wantDeny: false},
		{name: "on locally", env: map[string]string{EnvHTTPDenyPrivate: " 1 "}, wantDeny: true},
		{name: "bad switch", env: map[string]string{EnvHTTPDenyPrivate: "maybe"}, errVar: EnvHTTPDenyPrivate},
		{name: "hosts", env: map[string]string{EnvHTTPAllowedHosts: " api.example.com, *.partner.example ,10.1.2.3,[::1],"},
			wantAllowed: []string{"api.example.com", "*.partner.example", "10.1.2.3", "[::1]"}},
		{name: "host with scheme", env: map[string]string{EnvHTTPAllowedHosts: "https://api.example.com"}, errVar: EnvHTTPAllowedHosts},
		{name: "host with port", env: map[string]string{EnvHTTPAllowedHosts: "api.example.com:443"}, errVar: EnvHTTPAllowedHosts},
		{name: "inner wildcard", env: map[string]string{EnvHTTPAllowedHosts: "api.*.example.com"}, errVar: EnvHTTPAllowedHosts},
		{name: "bare wildcard", env: map[string]string{EnvHTTPAllowedHosts: "*"}, errVar: EnvHTTPAllowedHosts},
		{name: "wildcard IP", env: map[string]string{EnvHTTPAllowedHosts: "*.10.0.0.1"}, errVar: EnvHTTPAllowedHosts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := HTTPPolicyFromEnv(func(k string) string { return tt.env[k] }, tt.def)
			if tt.errVar != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errVar) {
					t.Fatalf("got %+v, %v; want an error naming %s", p, err, tt.errVar)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.DenyPrivate != tt.wantDeny || strings.Join(p.AllowedHosts, "|") != strings.Join(tt.wantAllowed, "|") {
				t.Errorf("got %+v", p)
			}
		})
	}
}

func TestHTTPPolicyAllowsHost(t *testing.T) {
	t.Parallel()
	p := HTTPPolicy{AllowedHosts: []string{"API.example.com", "*.partner.example", "::1"}}
	tests := []struct {
		host string
		want bool
	}{
		{"api.example.com", true},
		{"Api.Example.Com.", true},
		{"x.api.example.com", false},
		{"example.com", false},
		{"a.partner.example", true},
		{"a.b.partner.example", true},
		{"partner.example", false},
		{"evilpartner.example", false},
		{"partner.example.evil.com", false},
		{"::1", true},
		{"0:0:0:0:0:0:0:1", true},
	}
	for _, tt := range tests {
		if got := p.allowsHost(tt.host); got != tt.want {
			t.Errorf("allowsHost(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

func TestIsNonPublicAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.1.2.3", true},
		{"10.0.0.1", true},
		{"172.16.5.4", true},
		{"192.168.1.1", true},
		{"169.254.169.254", true}, // instance metadata
		{"100.64.0.1", true},
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"255.255.255.255", true},
		{"224.0.0.1", true},
		{"::", true},
		{"::1", true},
		{"::ffff:127.0.0.1", true},
		{"::ffff:10.0.0.1", true},
		{"fe80::1", true},
		{"fd00:ec2::254", true}, // instance metadata over IPv6
		{"64:ff9b::a9fe:a9fe", true},
		{"8.8.8.8", false},
		{"1.1.1.1", false},
		{"2606:4700:4700::1111", false},
		{"::ffff:8.8.8.8", false},
	}
	for _, tt := range tests {
		if got := IsNonPublicAddr(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("IsNonPublicAddr(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	// The dial guard fails closed on an address it cannot read.
	if err := denyPrivateControl("tcp", "not-an-address", nil); !errors.Is(err, errAddressDenied) {
		t.Errorf("unparseable dial address: %v", err)
	}
}

// TestHTTPDefaultBody: without config.body the payload is sent without the
// step's headers (issue 15, finding 4), and Idempotency-Key is set unless
// the template sets its own.
func TestHTTPDefaultBody(t *testing.T) {
	t.Parallel()
	srv := newRecorder(t, nil)
	tests := []struct {
		name    string
		headers string
		wantKey string
	}{
		{name: "secret headers", headers: `{"Authorization":"Bearer template-secret","X-Api-Key":"template-secret"}`,
			wantKey: testTaskID.String() + "/process_payment/2"},
		{name: "template idempotency key wins", headers: `{"Idempotency-Key":"k-${context.order_id}","X-Api-Key":"template-secret"}`,
			wantKey: "k-o1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(srv.requests())
			out := runHTTP(t, nil, `{"order_id":"o1","note":"<&>"}`, httpConfig(srv.URL+"/hook", `"headers":`+tt.headers+`,"timeout_seconds":5`))
			if string(out) != `{"ok":true}` {
				t.Fatalf("got %s", out)
			}
			r := srv.requests()[before]
			if strings.Contains(string(r.body), "template-secret") || strings.Contains(string(r.body), `"headers"`) {
				t.Errorf("body carries the step's headers: %s", r.body)
			}
			if r.header.Get("X-Api-Key") != "template-secret" {
				t.Errorf("headers not sent: %v", r.header)
			}
			if got := r.header.Get("Idempotency-Key"); got != tt.wantKey {
				t.Errorf("Idempotency-Key %q, want %q", got, tt.wantKey)
			}
			var p contract.Payload
			var taskContext map[string]string
			if err := json.Unmarshal(r.body, &p); err != nil || p.Tasker.TaskID != testTaskID ||
				json.Unmarshal(p.Context, &taskContext) != nil || taskContext["note"] != "<&>" {
				t.Errorf("body is not the payload: %s (%v)", r.body, err)
			}
			var cfg HTTPConfig
			if err := json.Unmarshal(p.Config, &cfg); err != nil || cfg.URL != srv.URL+"/hook" || cfg.TimeoutSeconds != 5 || cfg.Headers != nil {
				t.Errorf("config in body: %s (%v)", p.Config, err)
			}
		})
	}
}

// TestHTTPHeaderInjection: a context value cannot add header lines.
func TestHTTPHeaderInjection(t *testing.T) {
	t.Parallel()
	srv := newRecorder(t, nil)
	tests := []struct {
		name, headers, msg string
	}{
		{"CRLF from the context", `{"X-Tenant":"${context.t}"}`, "control characters"},
		{"bad header name", `{"X Tenant":"a"}`, "not a valid header name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := runHTTP(t, nil, `{"t":"a\r\nX-Admin: true"}`, httpConfig(srv.URL, `"headers":`+tt.headers))
			wantHandlerError(t, out, true, CodeInvalidConfig, tt.msg)
		})
	}
	if n := len(srv.requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

// TestHTTPResponseBound: a 2xx body over MaxHTTPResponseBytes fails
// permanently, with or without Content-Length, and is not read whole.
func TestHTTPResponseBound(t *testing.T) {
	t.Parallel()
	var (
		mu      sync.Mutex
		written = map[string]int{}
	)
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		size := MaxHTTPResponseBytes + 1
		if r.URL.Path == "/fits" {
			size = 100 << 10
		}
		if r.URL.Path == "/length" {
			w.Header().Set("Content-Length", "1073741824") // claims 1 GiB
		}
		if r.URL.Path == "/endless" {
			size = 64 << 20
		}
		w.Header().Set("Content-Type", "application/json")
		chunk := []byte(strings.Repeat(" ", 32<<10))
		n := 0
		for n < size && r.URL.Path != "/length" {
			k := min(len(chunk), size-n)
			if _, err := w.Write(chunk[:k]); err != nil {
				break
			}
			n += k
			if f, ok := w.(http.Flusher); ok {
				f.Flush() // chunked: no Content-Length
			}
		}
		mu.Lock()
		written[r.URL.Path] = n
		mu.Unlock()
	})
	tests := []struct {
		path string
		ok   bool
	}{
		{"/over", false},
		{"/length", false},
		{"/endless", false},
		{"/fits", true},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			out := runHTTP(t, nil, "", httpConfig(srv.URL+tt.path, `"method":"GET","timeout_seconds":10`))
			if tt.ok {
				if _, isErr := contract.AsHandlerError(out); isErr {
					t.Fatalf("got %s", out)
				}
				return
			}
			wantHandlerError(t, out, true, CodeResultTooLarge, "byte limit")
		})
	}
}
