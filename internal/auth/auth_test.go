package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

var (
	testSecret = []byte("0123456789abcdef0123456789abcdef-test-secret")
	testNow    = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

// Keys are expensive to generate; share them across tests.
var (
	rsaKeyA = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA() })
	rsaKeyB = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA() })
	ecKey   = sync.OnceValue(func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

// rsaWeak is a 1024-bit key the verifier must refuse.
var rsaWeak = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		panic(err)
	}
	return k
})

func mustRSA() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

type testKey struct {
	kid string
	alg jwkset.ALG
	key any // private key
}

// jwksServer serves a JWK Set built with jwkset from the public halves of
// its keys; set replaces the keys (rotation).
type jwksServer struct {
	*httptest.Server
	body atomic.Pointer[[]byte]
	hits atomic.Int32
}

func newJWKSServer(t *testing.T, keys ...testKey) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.set(t, keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(t *testing.T, keys ...testKey) {
	t.Helper()
	store := jwkset.NewMemoryStorage()
	for _, k := range keys {
		jwk, err := jwkset.NewJWKFromKey(k.key, jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{KID: k.kid, ALG: k.alg, USE: jwkset.UseSig},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := store.KeyWrite(t.Context(), jwk); err != nil {
			t.Fatal(err)
		}
	}
	body, err := store.JSONPublic(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b := []byte(body)
	s.body.Store(&b)
}

func claims(extra map[string]any) map[string]any {
	c := map[string]any{
		"sub":   "alice",
		"iat":   testNow.Add(-time.Minute).Unix(),
		"exp":   testNow.Add(time.Hour).Unix(),
		"scope": "tasks:read tasks:list",
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

func sign(t *testing.T, method jwt.SigningMethod, key any, kid string, c map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, jwt.MapClaims(c))
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newVerifier(t *testing.T, cfg Config) *Verifier {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testNow }
	}
	v, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerify(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t,
		testKey{"rsa-a", jwkset.AlgRS256, rsaKeyA()},
		testKey{"ec-1", jwkset.AlgES256, ecKey()},
		testKey{"ec-noalg", "", ecKey()},
		testKey{"rsa-weak", jwkset.AlgRS256, rsaWeak()},
	)
	hs := Config{HS256Secret: testSecret}
	jwks := Config{JWKSURL: srv.URL}
	both := Config{HS256Secret: testSecret, JWKSURL: srv.URL}
	strict := Config{HS256Secret: testSecret, Issuer: "https://issuer.example", Audience: "tasker-api"}
	tight := Config{HS256Secret: testSecret, Leeway: 5 * time.Second}

	pubDER, err := x509.MarshalPKIXPublicKey(&rsaKeyA().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	rsaDER := x509.MarshalPKCS1PublicKey(&rsaKeyA().PublicKey)

	none := func(c map[string]any) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims(c)).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// handmade builds header.claims.signature with an arbitrary header.
	handmade := func(header string, c map[string]any, sig string) string {
		body, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		enc := base64.RawURLEncoding.EncodeToString
		return enc([]byte(header)) + "." + enc(body) + "." + sig
	}
	hsTok := func(c map[string]any) string { return sign(t, jwt.SigningMethodHS256, testSecret, "", c) }
	rsTok := func(c map[string]any) string { return sign(t, jwt.SigningMethodRS256, rsaKeyA(), "rsa-a", c) }

	tests := []struct {
		name      string
		cfg       Config
		token     string
		wantErr   string // substring; "" means valid
		wantIs    error
		wantSub   string
		wantPerms []string
	}{
		{name: "valid HS256", cfg: hs, token: hsTok(claims(nil)),
			wantSub: "alice", wantPerms: []string{TasksRead, TasksList}},
		{name: "valid RS256 from JWKS", cfg: jwks, token: rsTok(claims(nil)),
			wantSub: "alice", wantPerms: []string{TasksRead, TasksList}},
		{name: "valid ES256 from JWKS", cfg: jwks,
			token:   sign(t, jwt.SigningMethodES256, ecKey(), "ec-1", claims(nil)),
			wantSub: "alice", wantPerms: []string{TasksRead, TasksList}},
		{name: "RS256 without kid tries the JWKS keys", cfg: jwks,
			token:   sign(t, jwt.SigningMethodRS256, rsaKeyA(), "", claims(nil)),
			wantSub: "alice", wantPerms: []string{TasksRead, TasksList}},
		{name: "both sources: HS256", cfg: both, token: hsTok(claims(nil)), wantSub: "alice", wantPerms: []string{TasksRead, TasksList}},
		{name: "both sources: RS256", cfg: both, token: rsTok(claims(nil)), wantSub: "alice", wantPerms: []string{TasksRead, TasksList}},
		{name: "valid with issuer and audience", cfg: strict,
			token:   hsTok(claims(map[string]any{"iss": "https://issuer.example", "aud": []string{"other", "tasker-api"}})),
			wantSub: "alice", wantPerms: []string{TasksRead, TasksList}},

		{name: "expired", cfg: hs, token: hsTok(claims(map[string]any{"exp": testNow.Add(-time.Minute).Unix()})),
			wantErr: "expired", wantIs: jwt.ErrTokenExpired},
		{name: "nbf in the future", cfg: hs, token: hsTok(claims(map[string]any{"nbf": testNow.Add(time.Minute).Unix()})),
			wantErr: "not valid yet", wantIs: jwt.ErrTokenNotValidYet},
		{name: "iat in the future", cfg: hs, token: hsTok(claims(map[string]any{"iat": testNow.Add(time.Minute).Unix()})),
			wantErr: "issued in the future", wantIs: jwt.ErrTokenUsedBeforeIssued},
		{name: "leeway: expired 10s ago accepted by default", cfg: hs,
			token: hsTok(claims(map[string]any{"exp": testNow.Add(-10 * time.Second).Unix()})), wantSub: "alice", wantPerms: []string{TasksRead, TasksList}},
		{name: "leeway: nbf 10s ahead accepted by default", cfg: hs,
			token: hsTok(claims(map[string]any{"nbf": testNow.Add(10 * time.Second).Unix(), "iat": testNow.Add(10 * time.Second).Unix()})), wantSub: "alice", wantPerms: []string{TasksRead, TasksList}},
		{name: "leeway: expired 40s ago refused by default", cfg: hs,
			token: hsTok(claims(map[string]any{"exp": testNow.Add(-40 * time.Second).Unix()})), wantErr: "expired"},
		{name: "leeway: custom 5s refuses expired 10s ago", cfg: tight,
			token: hsTok(claims(map[string]any{"exp": testNow.Add(-10 * time.Second).Unix()})), wantErr: "expired"},
		{name: "missing exp", cfg: hs, token: hsTok(claims(map[string]any{"exp": nil})),
			wantErr: "missing exp", wantIs: jwt.ErrTokenRequiredClaimMissing},
		{name: "exp not a number", cfg: hs, token: hsTok(claims(map[string]any{"exp": "tomorrow"})), wantErr: "malformed claim"},

		{name: "wrong signature (other secret)", cfg: hs,
			token: sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-another"), "", claims(nil)), wantErr: "bad signature", wantIs: jwt.ErrTokenSignatureInvalid},
		{name: "wrong signature (other RSA key, same kid)", cfg: jwks,
			token: sign(t, jwt.SigningMethodRS256, rsaKeyB(), "rsa-a", claims(nil)), wantErr: "bad signature"},
		{name: "tampered claims", cfg: hs,
			token: func() string {
				parts := strings.Split(hsTok(claims(nil)), ".")
				other := strings.Split(hsTok(claims(map[string]any{"scope": "*"})), ".")
				return parts[0] + "." + other[1] + "." + parts[2]
			}(), wantErr: "bad signature"},
		{name: "wrong issuer", cfg: strict,
			token: hsTok(claims(map[string]any{"iss": "https://evil.example", "aud": "tasker-api"})), wantErr: "wrong issuer", wantIs: jwt.ErrTokenInvalidIssuer},
		{name: "missing issuer", cfg: strict, token: hsTok(claims(map[string]any{"aud": "tasker-api"})), wantErr: "missing iss"},
		{name: "wrong audience", cfg: strict,
			token: hsTok(claims(map[string]any{"iss": "https://issuer.example", "aud": "someone-else"})), wantErr: "wrong audience", wantIs: jwt.ErrTokenInvalidAudience},
		{name: "missing audience", cfg: strict, token: hsTok(claims(map[string]any{"iss": "https://issuer.example"})), wantErr: "missing aud"},

		{name: "alg none", cfg: hs, token: none(claims(nil)), wantErr: `unsupported alg "none"`},
		{name: "alg none with JWKS", cfg: both, token: none(claims(nil)), wantErr: `unsupported alg "none"`},
		{name: "alg None (unknown spelling)", cfg: hs, token: handmade(`{"alg":"None","typ":"JWT"}`, claims(nil), ""), wantErr: `unsupported alg "None"`},
		{name: "no alg header", cfg: hs, token: handmade(`{"typ":"JWT"}`, claims(nil), "x"), wantErr: "missing alg"},
		{name: "HS512 refused", cfg: hs, token: sign(t, jwt.SigningMethodHS512, testSecret, "", claims(nil)), wantErr: `unsupported alg "HS512"`},
		{name: "RS256 refused without JWKS", cfg: hs, token: rsTok(claims(nil)), wantErr: `unsupported alg "RS256"`},
		{name: "RS384 refused", cfg: jwks, token: sign(t, jwt.SigningMethodRS384, rsaKeyA(), "rsa-a", claims(nil)), wantErr: `unsupported alg "RS384"`},
		{name: "HS256 refused without secret", cfg: jwks, token: hsTok(claims(nil)), wantErr: `unsupported alg "HS256"`},

		{name: "confusion: HS256 signed with RSA public key PEM, JWKS only", cfg: jwks,
			token: sign(t, jwt.SigningMethodHS256, pubPEM, "rsa-a", claims(nil)), wantErr: `unsupported alg "HS256"`},
		{name: "confusion: HS256 signed with RSA public key PKIX DER, JWKS only", cfg: jwks,
			token: sign(t, jwt.SigningMethodHS256, pubDER, "rsa-a", claims(nil)), wantErr: `unsupported alg "HS256"`},
		{name: "confusion: HS256 signed with RSA public key PEM, JWKS and secret", cfg: both,
			token: sign(t, jwt.SigningMethodHS256, pubPEM, "rsa-a", claims(nil)), wantErr: "bad signature"},
		{name: "confusion: HS256 signed with RSA public key PKCS1 DER, JWKS and secret", cfg: both,
			token: sign(t, jwt.SigningMethodHS256, rsaDER, "rsa-a", claims(nil)), wantErr: "bad signature"},
		{name: "key type mismatch: RS256 token naming the EC key", cfg: jwks,
			token: sign(t, jwt.SigningMethodRS256, rsaKeyA(), "ec-1", claims(nil)), wantErr: `key "ec-1" is for ES256`},
		{name: "key type mismatch: RS256 token naming an EC key without alg", cfg: jwks,
			token: sign(t, jwt.SigningMethodRS256, rsaKeyA(), "ec-noalg", claims(nil)), wantErr: "does not match alg RS256"},
		{name: "ES256 with a JWK without alg", cfg: jwks,
			token:   sign(t, jwt.SigningMethodES256, ecKey(), "ec-noalg", claims(nil)),
			wantSub: "alice", wantPerms: []string{TasksRead, TasksList}},
		{name: "RSA key shorter than 2048 bits", cfg: jwks,
			token: sign(t, jwt.SigningMethodRS256, rsaWeak(), "rsa-weak", claims(nil)), wantErr: "shorter than 2048 bits"},
		{name: "unknown kid", cfg: jwks,
			token: sign(t, jwt.SigningMethodRS256, rsaKeyB(), "nope", claims(nil)), wantErr: `unknown key id "nope"`},

		{name: "crit header refused", cfg: hs,
			token: func() string {
				tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims(nil)))
				tok.Header["crit"] = []string{"exp-ext"}
				tok.Header["exp-ext"] = true
				s, err := tok.SignedString(testSecret)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}(), wantErr: "unsupported crit header"},
		{name: "crit header refused (RS256)", cfg: jwks,
			token: func() string {
				tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims(claims(nil)))
				tok.Header["kid"] = "rsa-a"
				tok.Header["crit"] = []string{"b64"}
				tok.Header["b64"] = false
				s, err := tok.SignedString(rsaKeyA())
				if err != nil {
					t.Fatal(err)
				}
				return s
			}(), wantErr: "unsupported crit header"},
		{name: "lifetime: exp 10^18 refused", cfg: hs,
			token: hsTok(claims(map[string]any{"exp": int64(1e18)})), wantErr: "lives longer than 24h0m0s"},
		{name: "lifetime: exp 10^18 without iat refused", cfg: hs,
			token: hsTok(claims(map[string]any{"exp": int64(1e18), "iat": nil})), wantErr: "exp too far ahead"},
		{name: "lifetime: exp - iat over 24h refused", cfg: hs,
			token: hsTok(claims(map[string]any{"iat": testNow.Add(-2 * time.Hour).Unix(), "exp": testNow.Add(23 * time.Hour).Unix()})), wantErr: "exp - iat"},
		{name: "lifetime: exactly 24h accepted", cfg: hs,
			token:   hsTok(claims(map[string]any{"iat": testNow.Unix(), "exp": testNow.Add(24 * time.Hour).Unix()})),
			wantSub: "alice", wantPerms: []string{TasksRead, TasksList}},
		{name: "lifetime: custom 1h refuses 2h", cfg: Config{HS256Secret: testSecret, MaxLifetime: time.Hour},
			token: hsTok(claims(map[string]any{"iat": testNow.Unix(), "exp": testNow.Add(2 * time.Hour).Unix()})), wantErr: "lives longer than 1h0m0s"},
		{name: "lifetime: custom 48h accepts 30h", cfg: Config{HS256Secret: testSecret, MaxLifetime: 48 * time.Hour},
			token:   hsTok(claims(map[string]any{"iat": testNow.Unix(), "exp": testNow.Add(30 * time.Hour).Unix()})),
			wantSub: "alice", wantPerms: []string{TasksRead, TasksList}},

		{name: "malformed", cfg: hs, token: "not.a.jwt", wantErr: "malformed token", wantIs: jwt.ErrTokenMalformed},
		{name: "empty", cfg: hs, token: "", wantErr: "empty token"},

		{name: "permissions array", cfg: hs,
			token:   hsTok(claims(map[string]any{"scope": nil, "permissions": []string{TasksCreate, StepsRead}})),
			wantSub: "alice", wantPerms: []string{TasksCreate, StepsRead}},
		{name: "permissions string", cfg: hs,
			token:   hsTok(claims(map[string]any{"scope": nil, "permissions": "tasks:create  steps:read"})),
			wantSub: "alice", wantPerms: []string{TasksCreate, StepsRead}},
		{name: "scope and permissions: union", cfg: hs,
			token:   hsTok(claims(map[string]any{"scope": "tasks:read steps:read", "permissions": []string{StepsRead, "templates:*"}})),
			wantSub: "alice", wantPerms: []string{TasksRead, StepsRead, "templates:*"}},
		{name: "no permissions", cfg: hs, token: hsTok(claims(map[string]any{"scope": nil})), wantSub: "alice"},
		{name: "permissions of wrong type", cfg: hs, token: hsTok(claims(map[string]any{"permissions": 42})), wantErr: "malformed permissions claim"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := newVerifier(t, tc.cfg)
			p, err := v.Verify(t.Context(), tc.token)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("Verify succeeded (%+v), want error containing %q", p, tc.wantErr)
				}
				if !errors.Is(err, ErrInvalidToken) {
					t.Errorf("error %q does not wrap ErrInvalidToken", err)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error = %q, want it to contain %q", err, tc.wantErr)
				}
				if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
					t.Errorf("error %q does not wrap %v", err, tc.wantIs)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if p.Subject != tc.wantSub {
				t.Errorf("Subject = %q, want %q", p.Subject, tc.wantSub)
			}
			if !slices.Equal(p.Permissions, tc.wantPerms) {
				t.Errorf("Permissions = %q, want %q", p.Permissions, tc.wantPerms)
			}
		})
	}
}

func TestJWKSUnknownKIDRefresh(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t, testKey{"rsa-a", jwkset.AlgRS256, rsaKeyA()})
	v := newVerifier(t, Config{JWKSURL: srv.URL})
	ctx := t.Context()
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("JWKS fetched %d times by New, want 1", got)
	}

	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, rsaKeyA(), "rsa-a", claims(nil))); err != nil {
		t.Fatalf("old key before rotation: %v", err)
	}
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("known kid caused a fetch (%d hits)", got)
	}

	// Rotate: the server now serves only key B.
	srv.set(t, testKey{"rsa-b", jwkset.AlgRS256, rsaKeyB()})
	p, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, rsaKeyB(), "rsa-b", claims(nil)))
	if err != nil {
		t.Fatalf("new key after rotation: %v", err)
	}
	if p.Subject != "alice" {
		t.Errorf("Subject = %q", p.Subject)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (one refresh on unknown kid)", got)
	}

	// The refresh replaced the cache: the retired key is gone.
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, rsaKeyA(), "rsa-a", claims(nil))); err == nil {
		t.Fatal("retired key still accepted")
	}
	// ...and the refresh is rate-limited: that unknown kid did not refetch,
	// nor does a burst of random kids.
	for _, kid := range []string{"x1", "x2", "x3"} {
		_, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, rsaKeyB(), kid, claims(nil)))
		if err == nil || !strings.Contains(err.Error(), "unknown key id") {
			t.Fatalf("kid %s: err = %v, want unknown key id", kid, err)
		}
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (refresh must be rate-limited)", got)
	}
}

func TestJWKSUnavailableAtStart(t *testing.T) {
	t.Parallel()
	var up atomic.Bool
	srv := newJWKSServer(t, testKey{"rsa-a", jwkset.AlgRS256, rsaKeyA()})
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	v := newVerifier(t, Config{JWKSURL: front.URL})
	up.Store(true)
	if _, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodRS256, rsaKeyA(), "rsa-a", claims(nil))); err != nil {
		t.Fatalf("Verify after the JWKS came up: %v", err)
	}
}

func TestAllows(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		perms []string
		allow []string
		deny  []string
	}{
		{name: "exact", perms: []string{TasksCreate},
			allow: []string{TasksCreate}, deny: []string{TasksRead, StepsRead, "tasks:*", "*", ""}},
		{name: "resource wildcard", perms: []string{"tasks:*"},
			allow: []string{TasksCreate, TasksRead, TasksList, TasksCancel, TasksRetry, "tasks:*"},
			deny:  []string{StepsRead, StepsResolve, TemplatesRead, SystemRead, "tasksx:create", "tasks", ""}},
		{name: "star allows all", perms: []string{"*"}, allow: AllPermissions, deny: []string{""}},
		{name: "none", perms: nil, deny: AllPermissions},
		{name: "bare colon-star is no wildcard", perms: []string{":*"}, deny: AllPermissions},
		{name: "case-sensitive", perms: []string{"TASKS:*", "Steps:read"}, deny: []string{TasksCreate, StepsRead}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := &Principal{Subject: "s", Permissions: tc.perms}
			for _, perm := range tc.allow {
				if !p.Allows(perm) {
					t.Errorf("%q does not allow %q", tc.perms, perm)
				}
			}
			for _, perm := range tc.deny {
				if p.Allows(perm) {
					t.Errorf("%q allows %q", tc.perms, perm)
				}
			}
		})
	}
	var nilP *Principal
	if nilP.Allows(TasksRead) {
		t.Error("nil principal allows")
	}
}

func TestAllowsFromToken(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, Config{HS256Secret: testSecret})
	tok := sign(t, jwt.SigningMethodHS256, testSecret, "", claims(map[string]any{"scope": "tasks:*"}))
	p, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Allows(TasksCreate) || p.Allows(StepsRead) {
		t.Errorf("tasks:* => create %v (want true), steps:read %v (want false)", p.Allows(TasksCreate), p.Allows(StepsRead))
	}
}

func TestNewAndFromEnv(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t, testKey{"rsa-a", jwkset.AlgRS256, rsaKeyA()})
	env := func(m map[string]string) func(string) string {
		return func(k string) string { return m[k] }
	}
	tests := []struct {
		name    string
		env     map[string]string
		wantNil bool
		wantErr string
	}{
		{name: "off when unset", env: nil, wantNil: true},
		{name: "off when empty", env: map[string]string{EnvHS256Secret: "", EnvJWKSURL: "  "}, wantNil: true},
		{name: "issuer without key source is an error", env: map[string]string{EnvIssuer: "https://issuer.example"}, wantErr: EnvHS256Secret},
		{name: "short secret rejected", env: map[string]string{EnvHS256Secret: "too-short"}, wantErr: "TASKER_AUTH_HS256_SECRET must be at least 32 bytes"},
		{name: "secret", env: map[string]string{EnvHS256Secret: string(testSecret)}},
		{name: "JWKS", env: map[string]string{EnvJWKSURL: srv.URL, EnvIssuer: "https://issuer.example", EnvAudience: "tasker-api"}},
		{name: "both", env: map[string]string{EnvHS256Secret: string(testSecret), EnvJWKSURL: srv.URL}},
		{name: "JWKS over plain http to a remote host", env: map[string]string{EnvJWKSURL: "http://idp.example/jwks.json"}, wantErr: "must use https"},
		{name: "max lifetime", env: map[string]string{EnvHS256Secret: string(testSecret), EnvMaxLifetime: "12h"}},
		{name: "max lifetime not a duration", env: map[string]string{EnvHS256Secret: string(testSecret), EnvMaxLifetime: "a day"}, wantErr: EnvMaxLifetime},
		{name: "max lifetime not positive", env: map[string]string{EnvHS256Secret: string(testSecret), EnvMaxLifetime: "-1h"}, wantErr: EnvMaxLifetime},
		{name: "max lifetime too short", env: map[string]string{EnvHS256Secret: string(testSecret), EnvMaxLifetime: "1s"},
			wantErr: `TASKER_AUTH_MAX_TOKEN_LIFETIME="1s": want a duration (such as 30s or 5m) from 1m to 8760h`},
		{name: "JWKS URL not absolute", env: map[string]string{EnvJWKSURL: "/jwks.json"}, wantErr: "not an absolute URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v, err := FromEnv(t.Context(), env(tc.env), nil)
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				if v != nil {
					t.Error("verifier returned with an error")
				}
			case err != nil:
				t.Fatalf("FromEnv: %v", err)
			case tc.wantNil != (v == nil):
				t.Fatalf("verifier = %v, want nil: %v", v, tc.wantNil)
			}
		})
	}

	t.Run("New without key source", func(t *testing.T) {
		t.Parallel()
		if _, err := New(t.Context(), Config{Issuer: "x"}); err == nil {
			t.Fatal("New without secret or JWKS URL succeeded")
		}
	})
	t.Run("New with short secret", func(t *testing.T) {
		t.Parallel()
		_, err := New(t.Context(), Config{HS256Secret: make([]byte, 31)})
		if err == nil || !strings.Contains(err.Error(), EnvHS256Secret) {
			t.Fatalf("err = %v, want one naming %s", err, EnvHS256Secret)
		}
	})
	t.Run("New with negative leeway", func(t *testing.T) {
		t.Parallel()
		if _, err := New(t.Context(), Config{HS256Secret: testSecret, Leeway: -time.Second}); err == nil {
			t.Fatal("negative leeway accepted")
		}
	})
	t.Run("New with negative max lifetime", func(t *testing.T) {
		_, err := New(t.Context(), Config{HS256Secret: testSecret, MaxLifetime: -time.Hour})
		if err == nil || !strings.Contains(err.Error(), "maximum token lifetime") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("secret copied", func(t *testing.T) {
		t.Parallel()
		secret := slices.Clone(testSecret)
		v := newVerifier(t, Config{HS256Secret: secret})
		secret[0] ^= 0xff
		if _, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodHS256, testSecret, "", claims(nil))); err != nil {
			t.Fatalf("caller mutating its secret changed the verifier: %v", err)
		}
	})
	t.Run("nil verifier", func(t *testing.T) {
		t.Parallel()
		var v *Verifier
		if _, err := v.Verify(context.Background(), "x"); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("nil verifier: err = %v", err)
		}
	})
}

func TestSignHS256(t *testing.T) {
	t.Parallel()
	tok, err := SignHS256(testSecret, map[string]any{"sub": "bob"})
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return testSecret, nil }, jwt.WithValidMethods([]string{"HS256"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := parsed.Claims.(jwt.MapClaims); len(got) != 1 || got["sub"] != "bob" {
		t.Errorf("claims = %v, want only sub (nothing implicit)", got)
	}
	// Without exp, the verifier refuses it.
	v := newVerifier(t, Config{HS256Secret: testSecret})
	if _, err := v.Verify(t.Context(), tok); err == nil || !strings.Contains(err.Error(), "missing exp") {
		t.Errorf("err = %v, want missing exp", err)
	}
	if _, err := SignHS256([]byte("short"), map[string]any{}); err == nil {
		t.Error("short secret accepted")
	}
}

func TestBearerToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		header []string
		want   string
		ok     bool
	}{
		{"bearer", []string{"Bearer abc.def.ghi"}, "abc.def.ghi", true},
		{"lower-case scheme", []string{"bearer abc"}, "abc", true},
		{"upper-case scheme", []string{"BEARER abc"}, "abc", true},
		{"extra spaces", []string{"Bearer   abc  "}, "abc", true},
		{"missing", nil, "", false},
		{"basic", []string{"Basic dXNlcjpwYXNz"}, "", false},
		{"no token", []string{"Bearer"}, "", false},
		{"blank token", []string{"Bearer   "}, "", false},
		{"two tokens", []string{"Bearer a b"}, "", false},
		{"no space", []string{"Bearerabc"}, "", false},
		{"repeated header", []string{"Bearer a", "Bearer b"}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/v1/tasks", nil)
			for _, h := range tc.header {
				r.Header.Add("Authorization", h)
			}
			got, ok := BearerToken(r)
			if got != tc.want || ok != tc.ok {
				t.Errorf("BearerToken = (%q, %v), want (%q, %v)", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// A JWKS refresh failure is logged through Config.Logger, so with the
// service's JSON logger it is one structured line, not plain text.
func TestJWKSRefreshFailureLogsJSON(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	var buf lockedBuffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	if _, err := New(t.Context(), Config{JWKSURL: srv.URL, Logger: log}); err != nil {
		t.Fatalf("New: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) == 0 || lines[0] == "" {
		t.Fatal("no log line for the failed JWKS fetch")
	}
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q (%v)", l, err)
		}
		if rec["level"] != "WARN" || rec["msg"] != "auth: JWKS refresh failed" || rec["url"] != srv.URL || rec["error"] == "" {
			t.Errorf("log line %v", rec)
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
