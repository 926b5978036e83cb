// Package webui is Tasker's web view: a small single-page app (plain HTML,
// CSS and ES modules, embedded; no build step, nothing fetched from other
// origins) that reads the HTTP API v1 with fetch and shows tasks, their
// DAGs coloured by state, step details and templates.
//
// Handler serves the page at "/" and its assets under "/ui/"; the app
// routes on the URL fragment (#/tasks/<id>, #/templates/<ns>/<name>…), so
// the server needs no other paths. Mount puts the API and the UI behind
// one handler:
//
//	h := webui.Mount(apiHandler) // /v1/… → API, / and /ui/… → UI, else 404
//
// Assets are served under a content-hashed prefix (/ui/v-<hash>/…) that
// index.html names, so they are cached for a year and index.html is
// revalidated on every load (ETag). Every response carries a strict
// Content-Security-Policy (same origin only, no inline script or style,
// Trusted Types), nosniff, and frame and referrer restrictions.
//
// The state colours and their order (ui/states.css, ui/states.js) are
// generated from internal/graph, so the web view, its legend and the
// API's SVG graphs always agree.
//
// Import rules: webui imports only internal/graph and the standard
// library; devserver and lambdaapp mount it (docs/architecture.md,
// "Import rules").
package webui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/taskerhq/tasker/internal/graph"
)

//go:embed assets
var embedded embed.FS

// ContentSecurityPolicy is sent with every UI response: only same-origin
// scripts, styles, images and API calls; no plugins, no framing, no
// <base> games, and DOM sinks (innerHTML…) refused outright.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; " +
	"frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"

// AssetPrefix is where the UI's files are served.
const AssetPrefix = "/ui/"

// asset is one file ready to serve.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

type ui struct {
	version string            // content hash of every asset
	assets  map[string]*asset // by name relative to assets/ ("app.js")
	index   *asset
}

var build = sync.OnceValues(func() (*ui, error) { return newUI(embedded) })

// Handler returns the web view: GET / is the page, GET /ui/… its assets;
// anything else is 404 (405 for methods other than GET and HEAD).
func Handler() http.Handler {
	u, err := build()
	if err != nil {
		// The assets are embedded at compile time; a failure here is a
		// build defect that tests catch.
		panic("webui: " + err.Error())
	}
	return u
}

// Mount returns one handler for the API and the web view: paths under
// /v1/ (and /v1 itself) go to api; everything else to the UI, which
// answers 404 for paths that are not its own.
func Mount(api http.Handler) http.Handler {
	ui := Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1" || strings.HasPrefix(r.URL.Path, "/v1/") {
			api.ServeHTTP(w, r)
			return
		}
		ui.ServeHTTP(w, r)
	})
}

// contentTypes are set explicitly: the system's MIME table may be absent
// (Lambda, distroless) or wrong.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".json": "application/json",
	".png":  "image/png",
}

func newAsset(name string, body []byte) (*asset, error) {
	ct, ok := contentTypes[path.Ext(name)]
	if !ok {
		return nil, fmt.Errorf("asset %s: no content type for its extension", name)
	}
	sum := sha256.Sum256(body)
	return &asset{body: body, ctype: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}, nil
}

func newUI(fsys fs.FS) (*ui, error) {
	u := &ui{assets: map[string]*asset{}}
	var indexSrc []byte
	err := fs.WalkDir(fsys, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "assets/")
		if name == "index.html" {
			indexSrc = body
			return nil
		}
		a, err := newAsset(name, body)
		if err != nil {
			return err
		}
		u.assets[name] = a
		return nil
	})
	if err != nil {
		return nil, err
	}
	if indexSrc == nil {
		return nil, fmt.Errorf("assets/index.html is missing")
	}
	if u.assets["states.css"], err = newAsset("states.css", StatesCSS()); err != nil {
		return nil, err
	}
	if u.assets["states.js"], err = newAsset("states.js", statesJS()); err != nil {
		return nil, err
	}
	// The version hashes every asset, so a change to any of them moves
	// every URL (modules import each other relatively).
	names := make([]string, 0, len(u.assets))
	for n := range u.assets {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%s\x00%s\x00", n, u.assets[n].etag)
	}
	u.version = "v-" + hex.EncodeToString(h.Sum(nil))[:12]
	page := bytes.ReplaceAll(indexSrc, []byte("{{assets}}"), []byte(AssetPrefix+u.version))
	if u.index, err = newAsset("index.html", page); err != nil {
		return nil, err
	}
	return u, nil
}

func (u *ui) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")

	var a *asset
	immutable := false
	switch p := r.URL.Path; {
	case p == "/":
		a = u.index
	case strings.HasPrefix(p, AssetPrefix):
		name := strings.TrimPrefix(p, AssetPrefix)
		if v, rest, ok := strings.Cut(name, "/"); ok && strings.HasPrefix(v, "v-") {
			// A page from an older deployment may ask for an older
			// version: it gets today's file, but not cached for long.
			name, immutable = rest, v == u.version
		}
		a = u.assets[name]
	}
	if a == nil {
		notFound(w)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusMethodNotAllowed)
		_, _ = w.Write([]byte("405 method not allowed\n"))
		return
	}
	h.Set("Content-Type", a.ctype)
	h.Set("ETag", a.etag)
	if immutable {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	// ServeContent answers If-None-Match (304), HEAD and ranges.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

func notFound(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte("404 page not found\n"))
}

// StatesCSS is ui/states.css: one class per state (st-<state>, plus
// st-none for template nodes) colouring graph nodes, badges, legend
// swatches and progress segments exactly as internal/graph colours its
// SVG, Mermaid and DOT.
func StatesCSS() []byte {
	var b bytes.Buffer
	b.WriteString("/* Generated by internal/webui from internal/graph's state styles. Do not edit. */\n")
	rule := func(class string, s graph.Style) {
		dash := ""
		if s.Dashed {
			dash = " stroke-dasharray: 5 3;"
		}
		fmt.Fprintf(&b, ".node.%[1]s rect { fill: %[2]s; stroke: %[3]s;%[5]s }\n"+
			".node.%[1]s text { fill: %[4]s; }\n"+
			".badge.%[1]s, .swatch.%[1]s { background: %[2]s; border-color: %[3]s; color: %[4]s; }\n"+
			".seg.%[1]s { background: %[3]s; }\n"+
			".node.%[1]s .kind { stroke: %[4]s; }\n",
			class, s.Fill, s.Stroke, s.Text, dash)
		if s.Dashed {
			fmt.Fprintf(&b, ".badge.%[1]s, .swatch.%[1]s { border-style: dashed; }\n", class)
		}
	}
	rule("st-none", graph.StyleOf(""))
	for _, st := range graph.States {
		rule("st-"+st, graph.StyleOf(st))
	}
	// Edges into a step whose trigger rule is not the default.
	for _, r := range edgeRules {
		es := graph.EdgeStyleOf(r)
		fmt.Fprintf(&b, "svg.dag .edge.rule-%[1]s { stroke: %[2]s; stroke-dasharray: %[3]s; }\n"+
			"svg.dag .edge-label.rule-%[1]s { fill: %[2]s; }\n", r, es.Stroke, es.Dash)
	}
	return b.Bytes()
}

// edgeRules are the trigger rules whose edges are drawn apart.
var edgeRules = []string{graph.RuleOneFailed, graph.RuleAllDone}

// statesJS is ui/states.js: the step states in lifecycle order, as
// internal/graph lists them in its legends, and the labels of edges into
// steps with a trigger rule.
func statesJS() []byte {
	var b bytes.Buffer
	b.WriteString("// Generated by internal/webui from internal/graph. Do not edit.\n")
	b.WriteString("export const STEP_STATES = Object.freeze([")
	for i, st := range graph.States {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", st)
	}
	b.WriteString("]);\n")
	b.WriteString("export const EDGE_LABELS = Object.freeze({")
	for i, r := range edgeRules {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: %q", r, graph.EdgeStyleOf(r).Label)
	}
	b.WriteString("});\n")
	return b.Bytes()
}
