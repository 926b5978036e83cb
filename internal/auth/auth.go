// Package auth verifies the bearer JWTs presented to the Tasker API and maps
// their claims to a Principal with permissions (docs/auth.md).
//
// Two key sources are supported and may be combined:
//
//   - an HS256 shared secret (TASKER_AUTH_HS256_SECRET, at least 32 bytes),
//     meant for local use and for tokens minted by `tasker token`;
//   - a JWKS URL (TASKER_AUTH_JWKS_URL) serving RS256/ES256 public keys, for
//     production identity providers. Keys are cached, refreshed every hour
//     and, rate-limited, when a token names an unknown key id.
//
// Every token must carry `exp`; `nbf` and `iat` are checked when present, all
// with a leeway (30s by default). A token may live at most MaxLifetime (24 h
// by default, TASKER_AUTH_MAX_TOKEN_LIFETIME): `exp` may be at most that far
// after `iat` and after now, so a token with an absurd `exp` is refused. A
// token whose header has a `crit` member is refused: Tasker understands no
// JWS extension (RFC 7515 §4.1.11). The issuer and audience are checked when
// configured. Only HS256 (with a secret), RS256 and ES256 (with a JWKS URL)
// are accepted: `alg: none` and algorithm confusion (an HS256 token "signed"
// with an RSA public key) are rejected.
//
// Permissions come from the `scope` claim (space-separated string) and/or a
// `permissions` claim (array of strings or space-separated string); see
// Principal.Allows for wildcard rules.
package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/taskerhq/tasker/internal/config"
)

// Environment variables read by FromEnv (docs/architecture.md, "Configuration").
const (
	EnvHS256Secret = "TASKER_AUTH_HS256_SECRET"
	EnvJWKSURL     = "TASKER_AUTH_JWKS_URL"
	EnvIssuer      = "TASKER_AUTH_ISSUER"
	EnvAudience    = "TASKER_AUTH_AUDIENCE"
	EnvMaxLifetime = "TASKER_AUTH_MAX_TOKEN_LIFETIME"
)

const (
	// MinHS256SecretLen is the minimum length of the HS256 secret (RFC 7518 §3.2:
	// a key of the same size as the hash output).
	MinHS256SecretLen = 32

	// DefaultLeeway is used when Config.Leeway is zero.
	DefaultLeeway = 30 * time.Second

	// DefaultMaxLifetime is used when Config.MaxLifetime is zero.
	DefaultMaxLifetime = 24 * time.Hour
	// MinMaxLifetime and MaxMaxLifetime bound
	// TASKER_AUTH_MAX_TOKEN_LIFETIME.
	MinMaxLifetime = time.Minute
	MaxMaxLifetime = 8760 * time.Hour

	defaultHTTPTimeout = 10 * time.Second
	// jwksRefreshInterval is the background refresh period of the JWKS cache.
	jwksRefreshInterval = time.Hour
	// jwksUnknownKIDInterval is the minimum time between two refreshes
	// triggered by a token naming a key id that is not in the cache.
	jwksUnknownKIDInterval = time.Minute
	// jwksUnknownKIDWait bounds both how long a request may wait for the
	// unknown-kid rate limiter and how long that refresh may take. A request
	// whose refresh slot is further away fails at once instead of waiting.
	jwksUnknownKIDWait = 10 * time.Second
	// maxTokenLen bounds the work done on a presented token.
	maxTokenLen = 64 << 10

	minRSABits = 2048
)

const (
	algHS256 = "HS256"
	algRS256 = "RS256"
	algES256 = "ES256"
)

// ErrInvalidToken is wrapped by every error Verify returns for a token that
// must be refused (401). The error text says why.
var ErrInvalidToken = errors.New("invalid token")

// Config configures a Verifier. At least one of HS256Secret and JWKSURL must
// be set; when both are, HS256 tokens are checked with the secret and
// RS256/ES256 tokens with the JWKS keys.
type Config struct {
	HS256Secret []byte           // local use; at least 32 bytes
	JWKSURL     string           // production: RS256/ES256 keys, cached, refreshed on unknown kid (rate-limited refresh)
	Issuer      string           // checked when set
	Audience    string           // checked when set
	Leeway      time.Duration    // exp/nbf/iat leeway, default 30s
	MaxLifetime time.Duration    // longest exp-iat and exp-now, default 24h
	HTTPClient  *http.Client     // for JWKS; default with timeout
	Now         func() time.Time // for tests; default time.Now
	// Logger receives JWKS refresh failures (default: discarded). Give it
	// the service's JSON logger so they are structured lines like the rest.
	Logger *slog.Logger
}

// Verifier verifies bearer tokens. It is safe for concurrent use.
type Verifier struct {
	secret  []byte
	jwks    jwkset.Storage // nil without a JWKS URL
	methods []string
	parser  *jwt.Parser
	cfg     Config
}

// New builds a Verifier from cfg.
//
// With a JWKS URL, the key set is fetched once before New returns; if that
// fetch fails New still succeeds (the failure is logged) and the keys are
// fetched again on the first token that names an unknown key id. ctx must
// live as long as the Verifier: it ends the background refresh of the key set.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if len(cfg.HS256Secret) == 0 && cfg.JWKSURL == "" {
		return nil, fmt.Errorf("auth: no key source: set %s and/or %s", EnvHS256Secret, EnvJWKSURL)
	}
	if n := len(cfg.HS256Secret); n > 0 && n < MinHS256SecretLen {
		return nil, fmt.Errorf("auth: %s must be at least %d bytes, got %d", EnvHS256Secret, MinHS256SecretLen, n)
	}
	if cfg.Leeway < 0 {
		return nil, fmt.Errorf("auth: negative leeway %s", cfg.Leeway)
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.MaxLifetime < 0 {
		return nil, fmt.Errorf("auth: negative maximum token lifetime %s", cfg.MaxLifetime)
	}
	if cfg.MaxLifetime == 0 {
		cfg.MaxLifetime = DefaultMaxLifetime
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: defaultHTTPTimeout}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}

	v := &Verifier{cfg: cfg}
	if len(cfg.HS256Secret) > 0 {
		v.secret = slices.Clone(cfg.HS256Secret)
		v.cfg.HS256Secret = nil
		v.methods = append(v.methods, algHS256)
	}
	if cfg.JWKSURL != "" {
		if err := checkJWKSURL(cfg.JWKSURL); err != nil {
			return nil, err
		}
		jwks, err := newJWKS(ctx, cfg.JWKSURL, cfg.HTTPClient, cfg.Logger)
		if err != nil {
			return nil, err
		}
		v.jwks = jwks
		v.methods = append(v.methods, algRS256, algES256)
	}

	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// FromEnv builds a Verifier from TASKER_AUTH_HS256_SECRET,
// TASKER_AUTH_JWKS_URL, TASKER_AUTH_ISSUER, TASKER_AUTH_AUDIENCE and
// TASKER_AUTH_MAX_TOKEN_LIFETIME (a Go duration such as 12h). It
// returns (nil, nil) when neither the secret nor the JWKS URL is set: auth is
// off. Setting only an issuer or audience is an error rather than silently
// running without auth. log receives JWKS refresh failures (Config.Logger).
func FromEnv(ctx context.Context, getenv func(string) string, log *slog.Logger) (*Verifier, error) {
	cfg := Config{
		Logger:      log,
		HS256Secret: []byte(getenv(EnvHS256Secret)),
		JWKSURL:     strings.TrimSpace(getenv(EnvJWKSURL)),
		Issuer:      strings.TrimSpace(getenv(EnvIssuer)),
		Audience:    strings.TrimSpace(getenv(EnvAudience)),
	}
	d, err := config.Duration(getenv, EnvMaxLifetime, 0, MinMaxLifetime, MaxMaxLifetime)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	cfg.MaxLifetime = d
	if len(cfg.HS256Secret) == 0 && cfg.JWKSURL == "" {
		if cfg.Issuer != "" || cfg.Audience != "" {
			return nil, fmt.Errorf("auth: %s or %s is set but neither %s nor %s: refusing to run without auth",
				EnvIssuer, EnvAudience, EnvHS256Secret, EnvJWKSURL)
		}
		return nil, nil
	}
	return New(ctx, cfg)
}

// Verify checks token (without the "Bearer " prefix) and returns the
// principal it names. Errors wrap ErrInvalidToken and say why the token was
// refused; they also wrap the underlying jwt error (e.g. jwt.ErrTokenExpired).
func (v *Verifier) Verify(ctx context.Context, token string) (*Principal, error) {
	if v == nil || v.parser == nil {
		return nil, invalid("verifier not configured", nil)
	}
	if token == "" {
		return nil, invalid("empty token", nil)
	}
	if len(token) > maxTokenLen {
		return nil, invalid("token too large", nil)
	}
	claims := jwt.MapClaims{}
	tok, err := v.parser.ParseWithClaims(token, claims, v.keyfunc(ctx))
	if err != nil {
		return nil, v.explain(tok, claims, err)
	}
	if _, ok := tok.Header["crit"]; ok {
		return nil, invalid("unsupported crit header", nil)
	}
	if err := v.checkLifetime(claims); err != nil {
		return nil, err
	}
	sub, err := claims.GetSubject()
	if err != nil {
		return nil, invalid("malformed sub claim", err)
	}
	perms, err := permissionsFrom(claims)
	if err != nil {
		return nil, invalid(err.Error(), err)
	}
	return &Principal{Subject: sub, Permissions: perms}, nil
}

// checkLifetime refuses a token that may live longer than MaxLifetime:
// exp more than MaxLifetime after iat (when present) or after now (plus
// the leeway, for clock skew). The parser has already checked that exp is
// present and in the future.
func (v *Verifier) checkLifetime(claims jwt.MapClaims) error {
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return invalid("malformed claim", err)
	}
	limit := v.cfg.MaxLifetime
	if exp.Sub(v.cfg.Now()) > limit+v.cfg.Leeway { // Sub saturates, so exp = 10^18 s cannot wrap
		return invalid(fmt.Sprintf("lives longer than %s (exp too far ahead)", limit), nil)
	}
	iat, err := claims.GetIssuedAt()
	if err != nil {
		return invalid("malformed claim", err)
	}
	if iat != nil && exp.Sub(iat.Time) > limit {
		return invalid(fmt.Sprintf("lives longer than %s (exp - iat)", limit), nil)
	}
	return nil
}

// keyfunc returns the verification key for tok. The HMAC secret is returned
// only for HS256 tokens when a secret is configured; JWKS keys only for
// RS256/ES256 tokens, and only keys whose type matches the alg. The parser's
// WithValidMethods already refused other algs; this is the second line.
func (v *Verifier) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(tok *jwt.Token) (any, error) {
		alg := tok.Method.Alg()
		switch alg {
		case algHS256:
			if _, ok := tok.Method.(*jwt.SigningMethodHMAC); !ok || v.secret == nil {
				return nil, &keyError{fmt.Sprintf("unsupported alg %q", alg)}
			}
			return v.secret, nil
		case algRS256, algES256:
			if v.jwks == nil {
				return nil, &keyError{fmt.Sprintf("unsupported alg %q", alg)}
			}
			return v.jwksKey(ctx, tok, alg)
		default:
			return nil, &keyError{fmt.Sprintf("unsupported alg %q", alg)}
		}
	}
}

func (v *Verifier) jwksKey(ctx context.Context, tok *jwt.Token, alg string) (any, error) {
	if kidv, hasKID := tok.Header[jwkset.HeaderKID]; hasKID {
		kid, ok := kidv.(string)
		if !ok {
			return nil, &keyError{"malformed kid header"}
		}
		// Reads the cache; on a miss, refreshes the key set (rate-limited).
		jwk, err := v.jwks.KeyRead(ctx, kid)
		if err != nil {
			if ctx.Err() != nil {
				return nil, &keyError{"signing key lookup interrupted: " + ctx.Err().Error()}
			}
			return nil, &keyError{fmt.Sprintf("unknown key id %q", kid)}
		}
		return usableKey(jwk, alg)
	}
	// No kid: try every cached key that fits the alg.
	all, err := v.jwks.KeyReadAll(ctx)
	if err != nil {
		return nil, &keyError{"reading the JWKS cache failed"}
	}
	var set jwt.VerificationKeySet
	for _, jwk := range all {
		if key, err := usableKey(jwk, alg); err == nil {
			set.Keys = append(set.Keys, key)
		}
	}
	if len(set.Keys) == 0 {
		return nil, &keyError{fmt.Sprintf("no kid and no %s key in the JWKS", alg)}
	}
	return set, nil
}

// usableKey returns the public key of jwk if it may verify an alg signature:
// its "alg" (when present) is alg, its "use" (when present) is "sig", and its
// type fits alg.
func usableKey(jwk jwkset.JWK, alg string) (any, error) {
	m := jwk.Marshal()
	if m.ALG != "" && m.ALG.String() != alg {
		return nil, &keyError{fmt.Sprintf("key %q is for %s, token uses %s", m.KID, m.ALG, alg)}
	}
	if m.USE != "" && m.USE != jwkset.UseSig {
		return nil, &keyError{fmt.Sprintf("key %q is not a signing key (use %q)", m.KID, m.USE)}
	}
	key := publicOf(jwk.Key())
	if err := keyMatchesAlg(key, alg); err != nil {
		return nil, err
	}
	return key, nil
}

// keyMatchesAlg checks that key is the kind of public key alg needs.
func keyMatchesAlg(key any, alg string) error {
	switch alg {
	case algRS256:
		k, ok := key.(*rsa.PublicKey)
		if !ok {
			return &keyError{fmt.Sprintf("key type %T does not match alg %s", key, alg)}
		}
		if k.N == nil || k.N.BitLen() < minRSABits {
			return &keyError{fmt.Sprintf("RSA key shorter than %d bits", minRSABits)}
		}
		return nil
	case algES256:
		k, ok := key.(*ecdsa.PublicKey)
		if !ok {
			return &keyError{fmt.Sprintf("key type %T does not match alg %s", key, alg)}
		}
		if k.Curve != elliptic.P256() {
			return &keyError{"ES256 needs a P-256 key"}
		}
		return nil
	}
	return &keyError{fmt.Sprintf("unsupported alg %q", alg)}
}

func publicOf(key any) any {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k.Public()
	case *ecdsa.PrivateKey:
		return k.Public()
	}
	return key
}

// newJWKS returns the JWKS cache: fetched now, refreshed every hour and, at
// most once per jwksUnknownKIDInterval, when a token names an unknown kid.
func newJWKS(ctx context.Context, jwksURL string, client *http.Client, log *slog.Logger) (jwkset.Storage, error) {
	onError := func(ctx context.Context, err error) {
		log.WarnContext(ctx, "auth: JWKS refresh failed", "url", jwksURL, "error", err)
	}
	remote, err := jwkset.NewStorageFromHTTP(jwksURL, jwkset.HTTPClientStorageOptions{
		Client:                    client,
		Ctx:                       ctx,
		HTTPTimeout:               defaultHTTPTimeout,
		NoErrorReturnFirstHTTPReq: true,
		RefreshErrorHandler:       onError,
		RefreshInterval:           jwksRefreshInterval,
	})
	if err != nil {
		return nil, fmt.Errorf("auth: %s: %w", EnvJWKSURL, err)
	}
	storage, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{jwksURL: remote},
		RateLimitWaitMax:  jwksUnknownKIDWait,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(jwksUnknownKIDInterval), 1),
	})
	if err != nil {
		return nil, fmt.Errorf("auth: %s: %w", EnvJWKSURL, err)
	}
	return storage, nil
}

// checkJWKSURL requires an absolute https URL; plain http is accepted only
// for loopback hosts (local identity providers, tests).
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("auth: %s %q is not an absolute URL", EnvJWKSURL, raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if host == "localhost" {
			return nil
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("auth: %s must use https (plain http only for loopback hosts), got %q", EnvJWKSURL, raw)
	default:
		return fmt.Errorf("auth: %s must use https, got %q", EnvJWKSURL, raw)
	}
}

// keyError is returned by the keyfunc; its text is the refusal reason.
type keyError struct{ reason string }

func (e *keyError) Error() string { return e.reason }

// tokenError is what Verify returns: "invalid token: <reason>", wrapping
// ErrInvalidToken and the underlying cause.
type tokenError struct {
	reason string
	cause  error
}

func (e *tokenError) Error() string { return ErrInvalidToken.Error() + ": " + e.reason }

func (e *tokenError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrInvalidToken}
	}
	return []error{ErrInvalidToken, e.cause}
}

func invalid(reason string, cause error) error { return &tokenError{reason: reason, cause: cause} }

// explain turns a jwt parse error into a short, safe reason.
func (v *Verifier) explain(tok *jwt.Token, claims jwt.MapClaims, err error) error {
	if errors.Is(err, jwt.ErrTokenMalformed) {
		return invalid("malformed token", err)
	}
	if tok != nil {
		alg, ok := tok.Header["alg"].(string)
		if !ok {
			return invalid("missing alg header", err)
		}
		if !slices.Contains(v.methods, alg) {
			return invalid(fmt.Sprintf("unsupported alg %q", alg), err)
		}
	}
	if ke := (*keyError)(nil); errors.As(err, &ke) {
		return invalid(ke.reason, err)
	}
	if errors.Is(err, jwt.ErrTokenUnverifiable) {
		return invalid("unverifiable token", err)
	}
	if errors.Is(err, jwt.ErrTokenSignatureInvalid) {
		return invalid("bad signature", err)
	}

	var reasons []string
	if errors.Is(err, jwt.ErrTokenRequiredClaimMissing) {
		for _, c := range []struct {
			name string
			need bool
		}{{"exp", true}, {"iss", v.cfg.Issuer != ""}, {"aud", v.cfg.Audience != ""}} {
			if _, ok := claims[c.name]; c.need && !ok {
				reasons = append(reasons, "missing "+c.name)
			}
		}
		if len(reasons) == 0 {
			reasons = append(reasons, "missing required claim")
		}
	}
	for _, c := range []struct {
		err    error
		reason string
	}{
		{jwt.ErrTokenExpired, "expired"},
		{jwt.ErrTokenNotValidYet, "not valid yet (nbf)"},
		{jwt.ErrTokenUsedBeforeIssued, "issued in the future (iat)"},
		{jwt.ErrTokenInvalidIssuer, "wrong issuer"},
		{jwt.ErrTokenInvalidAudience, "wrong audience"},
		{jwt.ErrInvalidType, "malformed claim"},
	} {
		if errors.Is(err, c.err) {
			reasons = append(reasons, c.reason)
		}
	}
	if len(reasons) == 0 {
		reasons = append(reasons, "invalid claims")
	}
	return invalid(strings.Join(reasons, ", "), err)
}
