package auth

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// SignHS256 signs claims as an HS256 JWT with secret, for tests and
// `tasker token`. It adds no claim: set "sub", "exp", "scope" or
// "permissions" (and "iss"/"aud" when the verifier checks them) yourself.
// The secret must be at least 32 bytes, as for New.
func SignHS256(secret []byte, claims map[string]any) (string, error) {
	if len(secret) < MinHS256SecretLen {
		return "", fmt.Errorf("auth: HS256 secret must be at least %d bytes, got %d", MinHS256SecretLen, len(secret))
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString(secret)
}

// BearerToken returns the token of an "Authorization: Bearer <token>" header
// (scheme case-insensitive). It reports false when the header is absent,
// repeated, uses another scheme, or carries no token or a token with spaces.
func BearerToken(r *http.Request) (string, bool) {
	vals := r.Header.Values("Authorization")
	if len(vals) != 1 {
		return "", false
	}
	scheme, rest, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok := strings.TrimSpace(rest)
	if tok == "" || strings.ContainsAny(tok, " \t") {
		return "", false
	}
	return tok, true
}
