package auth_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/taskerhq/tasker/internal/auth"
)

var fuzzSecret = []byte("fuzz-secret-fuzz-secret-0123456789abcdef")

// fuzzNow is fixed so that the committed corpus keeps its meaning.
var fuzzNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func fuzzToken(f *testing.F, claims map[string]any) string {
	tok, err := auth.SignHS256(fuzzSecret, claims)
	if err != nil {
		f.Fatal(err)
	}
	return tok
}

// FuzzVerify throws arbitrary tokens at the JWT verifier. It must never
// panic; whatever it accepts must really be an HS256 token signed with the
// secret, unexpired, with permissions taken only from its claims.
func FuzzVerify(f *testing.F) {
	exp := fuzzNow.Add(time.Hour).Unix()
	f.Add(fuzzToken(f, map[string]any{"sub": "alice", "exp": exp, "scope": "tasks:read tasks:*"}))
	f.Add(fuzzToken(f, map[string]any{"sub": "bob", "exp": exp, "permissions": []any{"steps:read", "*"}}))
	f.Add(fuzzToken(f, map[string]any{"sub": "carol", "exp": fuzzNow.Add(-time.Hour).Unix(), "scope": "*"}))
	f.Add(fuzzToken(f, map[string]any{"sub": 5, "exp": exp, "scope": 7}))
	f.Add(fuzzToken(f, map[string]any{"exp": exp, "nbf": fuzzNow.Add(time.Hour).Unix()}))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "eve", "exp": exp, "scope": "*"}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	f.Add(none)
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims{"sub": "eve", "exp": exp}).SignedString(fuzzSecret)
	f.Add(hs512)
	for _, s := range []string{"", ".", "..", "a.b.c", "eyJhbGciOiJIUzI1NiJ9..", "eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.e30.", strings.Repeat("A", 70000)} {
		f.Add(s)
	}
	v, err := auth.New(context.Background(), auth.Config{HS256Secret: fuzzSecret, Now: func() time.Time { return fuzzNow }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, token string) {
		p, err := v.Verify(context.Background(), token)
		if err != nil {
			if p != nil {
				t.Fatal("a principal and an error")
			}
			return
		}
		// Independently: the token must be HS256 and verify with the secret.
		claims := jwt.MapClaims{}
		tok, perr := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(),
			jwt.WithLeeway(auth.DefaultLeeway), jwt.WithTimeFunc(func() time.Time { return fuzzNow })).
			ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return fuzzSecret, nil })
		if perr != nil || !tok.Valid {
			t.Fatalf("accepted a token an independent check refuses: %v", perr)
		}
		granted := strings.Join(slices.Concat(fieldsOf(claims["scope"]), fieldsOf(claims["permissions"])), " ")
		for _, perm := range p.Permissions {
			if !slices.Contains(strings.Fields(granted), perm) {
				t.Fatalf("permission %q not in the token's claims %q", perm, granted)
			}
		}
	})
}

func fieldsOf(v any) []string {
	switch x := v.(type) {
	case string:
		return strings.Fields(x)
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, strings.Fields(s)...)
			}
		}
		return out
	}
	return nil
}

// FuzzBearerToken: the Authorization header parser returns a token only
// for exactly one "Bearer <token>" header, and the token has no spaces.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer abc", "Bearer  abc ", "Bearer", "Bearer a b", "Basic abc", "", "Bearer \t", "BEARER x.y.z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r, _ := http.NewRequest("GET", "/", nil)
		r.Header["Authorization"] = []string{header}
		tok, ok := auth.BearerToken(r)
		if !ok {
			return
		}
		if tok == "" || strings.ContainsAny(tok, " \t") || !strings.Contains(header, tok) {
			t.Fatalf("header %q gave token %q", header, tok)
		}
		if scheme, _, _ := strings.Cut(strings.TrimSpace(header), " "); !strings.EqualFold(scheme, "bearer") {
			t.Fatalf("header %q accepted with scheme %q", header, scheme)
		}
	})
}

// FuzzAllows: a permission is granted only exactly, by "*", or by a
// "resource:*" wildcard of its own resource.
func FuzzAllows(f *testing.F) {
	f.Add("tasks:*", "tasks:read")
	f.Add("tasks:*", "tasksx:read")
	f.Add(":*", "tasks:read")
	f.Add("*", "system:read")
	f.Add("tasks:read", "tasks:readx")
	f.Fuzz(func(t *testing.T, grant, perm string) {
		p := &auth.Principal{Permissions: []string{grant}}
		if !p.Allows(perm) {
			if grant == perm && perm != "" || grant == "*" && perm != "" {
				t.Fatalf("%q does not allow itself / everything: %q", grant, perm)
			}
			return
		}
		switch {
		case perm == "":
			t.Fatalf("%q allows the empty permission", grant)
		case grant == "*", grant == perm:
		case strings.HasSuffix(grant, ":*") && len(grant) > 2 && strings.HasPrefix(perm, strings.TrimSuffix(grant, "*")):
			// A wildcard never crosses its resource.
			gr, _, _ := strings.Cut(grant, ":")
			pr, _, _ := strings.Cut(perm, ":")
			if gr != pr {
				t.Fatalf("%q allows %q of another resource", grant, perm)
			}
		default:
			t.Fatalf("%q allows %q", grant, perm)
		}
	})
}
