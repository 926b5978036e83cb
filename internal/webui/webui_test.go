package webui_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/internal/graph"
	"github.com/taskerhq/tasker/internal/webui"
)

func get(t *testing.T, h http.Handler, method, path string, hdr ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkSecurityHeaders: every answer, 404s included, carries them.
func checkSecurityHeaders(t *testing.T, res *http.Response) {
	t.Helper()
	if got := res.Header.Get("Content-Security-Policy"); got != webui.ContentSecurityPolicy {
		t.Errorf("CSP = %q", got)
	}
	for k, want := range map[string]string{
		"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
	} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

// assetURLs are the /ui/… URLs the page names.
func assetURLs(t *testing.T, page string) []string {
	t.Helper()
	m := regexp.MustCompile(`(?:href|src)="(/ui/[^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(m) < 3 {
		t.Fatalf("page names %d assets:\n%s", len(m), page)
	}
	var out []string
	for _, x := range m {
		out = append(out, x[1])
	}
	return out
}

func TestIndex(t *testing.T) {
	t.Parallel()
	h := webui.Handler()
	res := get(t, h, "GET", "/")
	page := body(t, res)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET / = %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	checkSecurityHeaders(t, res)
	if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("index Cache-Control = %q, want no-cache (revalidate)", cc)
	}
	if strings.Contains(page, "{{") || !strings.Contains(page, `<script type="module" src="/ui/v-`) {
		t.Errorf("index not expanded:\n%s", page)
	}
	// Nothing inline: the CSP forbids it, so the page must not need it.
	for _, bad := range []string{"<style", "style=", "onclick", "<script>", "javascript:", "http://", "https://"} {
		if strings.Contains(page, bad) {
			t.Errorf("index contains %q", bad)
		}
	}
	// Revalidation.
	etag := res.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if res := get(t, h, "GET", "/", "If-None-Match", etag); res.StatusCode != http.StatusNotModified {
		t.Errorf("conditional GET = %d, want 304", res.StatusCode)
	}
	if res := get(t, h, "HEAD", "/"); res.StatusCode != 200 || body(t, res) != "" {
		t.Errorf("HEAD / = %d", res.StatusCode)
	}
}

func TestAssets(t *testing.T) {
	t.Parallel()
	h := webui.Handler()
	page := body(t, get(t, h, "GET", "/"))
	types := map[string]string{
		".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
	}
	for _, u := range assetURLs(t, page) {
		res := get(t, h, "GET", u)
		b := body(t, res)
		ext := u[strings.LastIndex(u, "."):]
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != types[ext] || len(b) == 0 {
			t.Errorf("GET %s = %d %q (%d bytes)", u, res.StatusCode, res.Header.Get("Content-Type"), len(b))
		}
		if cc := res.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Errorf("%s Cache-Control = %q, want immutable (versioned URL)", u, cc)
		}
		checkSecurityHeaders(t, res)
		// The same file without the version (or with an old one) is
		// served, but revalidated.
		_, rest, _ := strings.Cut(strings.TrimPrefix(u, "/ui/"), "/")
		for _, alt := range []string{"/ui/" + rest, "/ui/v-000000000000/" + rest} {
			res := get(t, h, "GET", alt)
			if body(t, res) != b || res.Header.Get("Cache-Control") != "no-cache" {
				t.Errorf("GET %s = %d %q", alt, res.StatusCode, res.Header.Get("Cache-Control"))
			}
		}
	}
	// Every module the app imports is served.
	app := body(t, get(t, h, "GET", "/ui/app.js"))
	for _, m := range regexp.MustCompile(`from '\./([\w.]+)'`).FindAllStringSubmatch(app, -1) {
		if res := get(t, h, "GET", "/ui/"+m[1]); res.StatusCode != 200 || res.Header.Get("Content-Type") != types[".js"] {
			t.Errorf("module %s: %d", m[1], res.StatusCode)
		}
	}
}

// The client-side code must live within the CSP: no string-to-DOM sinks
// (Trusted Types refuses them), no eval, nothing from other origins.
func TestAssetsKeepToTheCSP(t *testing.T) {
	t.Parallel()
	h := webui.Handler()
	for _, name := range []string{"app.js", "api.js", "dom.js", "graph.js", "style.css"} {
		src := body(t, get(t, h, "GET", "/ui/"+name))
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
			"setAttribute('style'", "@import", "url(http", "https://", "fonts.googleapis"} {
			if strings.Contains(src, bad) {
				t.Errorf("%s uses %q", name, bad)
			}
		}
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	t.Parallel()
	h := webui.Handler()
	for _, p := range []string{"/index.html", "/favicon.ico", "/tasks/123", "/ui/", "/ui/nope.js", "/ui/v-x/nope.js", "/ui/../webui.go", "/uix"} {
		res := get(t, h, "GET", p)
		if res.StatusCode != http.StatusNotFound || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("GET %s = %d %q, want 404", p, res.StatusCode, res.Header.Get("Content-Type"))
		}
		checkSecurityHeaders(t, res)
	}
	for _, p := range []string{"/", "/ui/app.js"} {
		res := get(t, h, "POST", p)
		if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("POST %s = %d Allow %q", p, res.StatusCode, res.Header.Get("Allow"))
		}
	}
}

func TestMount(t *testing.T) {
	t.Parallel()
	var apiPaths []string
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apiPaths = append(apiPaths, r.URL.Path)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"api":true}`))
	})
	h := webui.Mount(api)
	for _, p := range []string{"/v1/tasks", "/v1/health/live", "/v1", "/v1/nope"} {
		if res := get(t, h, "GET", p); body(t, res) != `{"api":true}` {
			t.Errorf("GET %s did not reach the API", p)
		}
	}
	if res := get(t, h, "POST", "/v1/tasks"); body(t, res) != `{"api":true}` {
		t.Error("POST /v1/tasks did not reach the API")
	}
	if res := get(t, h, "GET", "/"); res.StatusCode != 200 || !strings.Contains(body(t, res), "<title>Tasker</title>") {
		t.Errorf("GET / = %d", res.StatusCode)
	}
	if res := get(t, h, "GET", "/ui/app.js"); res.StatusCode != 200 {
		t.Errorf("GET /ui/app.js = %d", res.StatusCode)
	}
	for _, p := range []string{"/v2/tasks", "/v1x", "/metrics", "/api/v1/tasks"} {
		if res := get(t, h, "GET", p); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, res.StatusCode)
		}
	}
	if len(apiPaths) != 5 {
		t.Errorf("API saw %v", apiPaths)
	}
}

// states.css and states.js are generated from internal/graph: the web
// view colours and orders states exactly as the API's SVG does.
func TestStatesMatchGraph(t *testing.T) {
	t.Parallel()
	h := webui.Handler()
	css := body(t, get(t, h, "GET", "/ui/states.css"))
	for _, st := range append([]string{""}, graph.States...) {
		s := graph.StyleOf(st)
		class := "st-" + st
		if st == "" {
			class = "st-none"
		}
		want := ".node." + class + " rect { fill: " + s.Fill + "; stroke: " + s.Stroke + ";"
		if !strings.Contains(css, want) || !strings.Contains(css, ".node."+class+" text { fill: "+s.Text+"; }") {
			t.Errorf("states.css lacks the style of %q (%s)", st, want)
		}
	}
	js := body(t, get(t, h, "GET", "/ui/states.js"))
	if want := `["` + strings.Join(graph.States, `", "`) + `"]`; !strings.Contains(js, want) {
		t.Errorf("states.js = %s, want %s", js, want)
	}
	// Edges into trigger-rule steps: styled and labelled as the SVG draws them.
	for _, r := range []string{graph.RuleOneFailed, graph.RuleAllDone} {
		es := graph.EdgeStyleOf(r)
		if want := ".edge.rule-" + r + " { stroke: " + es.Stroke + "; stroke-dasharray: " + es.Dash + "; }"; !strings.Contains(css, want) {
			t.Errorf("states.css lacks %q", want)
		}
		if want := r + ": \"" + es.Label + "\""; !strings.Contains(js, want) {
			t.Errorf("states.js lacks %q: %s", want, js)
		}
	}
}
