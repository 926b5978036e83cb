package reliability

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/taskerhq/tasker/internal/auth"
)

// documentedRoute is one operation of internal/api/openapi.json.
type documentedRoute struct {
	method, path, perm string
	// authenticated: any valid token gets past auth and the route checks
	// permissions itself (x-authenticated; GraphQL checks each field).
	authenticated bool
}

// documentedRoutes reads every operation from the OpenAPI document on disk,
// so a route added there is covered here without editing this test.
func documentedRoutes(t *testing.T) []documentedRoute {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "api", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var out []documentedRoute
	for path, ops := range doc.Paths {
		for method, op := range ops {
			switch method {
			case "get", "post", "put", "patch", "delete":
			default:
				continue
			}
			var o struct {
				Perm          string                `json:"x-permission"`
				Authenticated bool                  `json:"x-authenticated"`
				Security      []map[string][]string `json:"security"`
			}
			if err := json.Unmarshal(op, &o); err != nil {
				t.Fatal(err)
			}
			if o.Perm == "" && o.Security == nil {
				t.Fatalf("%s %s: neither x-permission nor an explicit security: [] in openapi.json", method, path)
			}
			out = append(out, documentedRoute{strings.ToUpper(method), path, o.Perm, o.Authenticated})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path+out[i].method < out[j].path+out[j].method })
	return out
}

const authSecret = "reliability-auth-matrix-secret-0123456789abcdef"

// The auth matrix: every documented route without a token, with a
// malformed, expired, not-yet-valid, wrongly signed, alg=none or
// HS256-with-empty-key token, and with a valid token holding every
// permission except the one the route needs. Protected routes answer 401
// or 403 before doing anything; no refused response carries task or
// template data; nothing changes in the database.
func TestAuthMatrix(t *testing.T) {
	t.Parallel()
	v, err := auth.New(t.Context(), auth.Config{HS256Secret: []byte(authSecret)})
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, rigOptions{templates: []string{noopYAML}, auth: v})
	id := r.create("rel", "noop", map[string]any{"secret": "s3cr3t-marker"})
	waitFinished(t, r.pool, 20*time.Second)
	before := snapshot(t, r.pool)

	now := time.Now()
	sign := func(secret string, claims jwt.MapClaims) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	all := strings.Join(auth.AllPermissions, " ")
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "eve", "exp": now.Add(time.Hour).Unix(), "scope": "*"}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]string{
		"no token":        "",
		"not a JWT":       "Bearer not.a.jwt",
		"basic scheme":    "Basic YWxpY2U6c2VjcmV0",
		"empty bearer":    "Bearer ",
		"expired":         "Bearer " + sign(authSecret, jwt.MapClaims{"sub": "eve", "exp": now.Add(-time.Hour).Unix(), "scope": all}),
		"not yet valid":   "Bearer " + sign(authSecret, jwt.MapClaims{"sub": "eve", "exp": now.Add(2 * time.Hour).Unix(), "nbf": now.Add(time.Hour).Unix(), "scope": all}),
		"no exp":          "Bearer " + sign(authSecret, jwt.MapClaims{"sub": "eve", "scope": all}),
		"wrong secret":    "Bearer " + sign("another-secret-another-secret-0123456789", jwt.MapClaims{"sub": "eve", "exp": now.Add(time.Hour).Unix(), "scope": all}),
		"alg none":        "Bearer " + none,
		"tampered claims": "Bearer " + tamper(t, sign(authSecret, jwt.MapClaims{"sub": "eve", "exp": now.Add(time.Hour).Unix(), "scope": "tasks:read"}), all),
	}
	valid := func(perms ...string) string {
		tok, err := auth.SignHS256([]byte(authSecret), map[string]any{"sub": "bob", "exp": now.Add(time.Hour).Unix(), "scope": strings.Join(perms, " ")})
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + tok
	}
	routes := documentedRoutes(t)
	if len(routes) < 15 {
		t.Fatalf("only %d routes documented", len(routes))
	}
	requests := 0
	for _, rt := range routes {
		path := strings.NewReplacer("{id}", id.String(), "{step}", "a", "{namespace}", "rel", "{name}", "noop").Replace(rt.path)
		body := func() *bytes.Reader {
			if rt.method == "POST" {
				return bytes.NewReader([]byte(`{"namespace":"rel","name":"noop","context":{}}`))
			}
			return nil
		}
		send := func(authz string) httpResp {
			requests++
			b := body()
			if b == nil {
				return call(r.h, rt.method, path, nil, map[string]string{"Authorization": authz})
			}
			return call(r.h, rt.method, path, b, map[string]string{"Authorization": authz})
		}
		name := rt.method + " " + rt.path
		if rt.authenticated {
			for what, authz := range bad {
				res := send(authz)
				if res.code != 401 || !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer ") {
					t.Errorf("%s, %s: %d (WWW-Authenticate %q), want 401", name, what, res.code, res.header.Get("WWW-Authenticate"))
				}
				checkRefusal(t, name+", "+what, res, id.String())
			}
			// A valid token without permissions gets past auth; the route
			// refuses what it selects (covered by its own tests).
			if res := send(valid()); res.code == 401 {
				t.Errorf("%s with a valid token: 401", name)
			}
			continue
		}
		if rt.perm == "" {
			// Public: answers without a token and leaks no task data.
			res := send("")
			if strings.Contains(rt.path, "{token}") && (res.code == 404 || res.code == 422) {
				// A callback route: the (unknown) token authorises it; this
				// body is not one it takes.
				continue
			}
			if res.code >= 400 && res.code != 503 {
				t.Errorf("%s (public): %d", name, res.code)
			}
			if bytes.Contains(res.body, []byte("s3cr3t-marker")) || bytes.Contains(res.body, []byte(id.String())) {
				t.Errorf("%s (public) leaks task data", name)
			}
			continue
		}
		for what, authz := range bad {
			res := send(authz)
			if res.code != 401 || !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("%s, %s: %d (WWW-Authenticate %q), want 401", name, what, res.code, res.header.Get("WWW-Authenticate"))
			}
			checkRefusal(t, name+", "+what, res, id.String())
		}
		var others []string
		for _, p := range auth.AllPermissions {
			if p != rt.perm {
				others = append(others, p)
			}
		}
		// Every permission but the needed one, and look-alike wildcards.
		for _, perms := range [][]string{others, {strings.SplitN(rt.perm, ":", 2)[0] + "s:*"}, {rt.perm + "x"}, {":*"}} {
			res := send(valid(perms...))
			if res.code != 403 {
				t.Errorf("%s with %v: %d, want 403", name, perms, res.code)
			}
			checkRefusal(t, fmt.Sprintf("%s with %v", name, perms), res, id.String())
		}
		// The needed permission alone gets past auth.
		if res := send(valid(rt.perm)); res.code == 401 || res.code == 403 {
			t.Errorf("%s with %s: %d", name, rt.perm, res.code)
		}
	}
	// The allowed requests above (cancel, retry, resolve on a finished task)
	// were refused on state (409), and creations made tasks: nothing else.
	var extra int
	if err := r.pool.QueryRow(t.Context(), `SELECT count(*) FROM tasker_tasks WHERE id <> $1`, id).Scan(&extra); err != nil {
		t.Fatal(err)
	}
	if extra != 1 {
		t.Fatalf("%d tasks created, want 1 (the one allowed POST /v1/tasks)", extra)
	}
	waitFinished(t, r.pool, 20*time.Second)
	if _, err := r.pool.Exec(t.Context(), `DELETE FROM tasker_tasks WHERE id <> $1`, id); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, r.pool); after != before {
		t.Fatalf("refused requests changed the database:\nbefore %s\nafter  %s", before, after)
	}
	t.Logf("RESULT auth matrix: %d documented routes, %d requests; every protected route refused %d bad-token kinds with 401 and 4 insufficient grants with 403; no refusal leaked data",
		len(routes), requests, len(bad))
}

// tamper replaces the payload of a signed token, keeping its signature.
func tamper(t *testing.T, tok, scope string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	payload, err := json.Marshal(map[string]any{"sub": "eve", "exp": time.Now().Add(time.Hour).Unix(), "scope": scope})
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

// checkRefusal asserts a 401/403 problem that carries no task data.
func checkRefusal(t *testing.T, what string, res httpResp, taskID string) {
	t.Helper()
	checkProblem(t, what, res)
	// "instance" echoes the caller's own request path; everything else
	// must be free of task and template data.
	var p map[string]any
	if err := json.Unmarshal(res.body, &p); err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	delete(p, "instance")
	rest, _ := json.Marshal(p)
	for _, leak := range []string{taskID, `"steps"`, `"context"`, `"templates"`, `noop`, "s3cr3t"} {
		if bytes.Contains(rest, []byte(leak)) {
			t.Errorf("%s: refusal leaks %q: %s", what, leak, res.body)
		}
	}
}
