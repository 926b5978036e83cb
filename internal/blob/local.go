// Package blob holds the stores of large payloads (docs/architecture.md,
// "Large payloads"): S3 on AWS, and Local, which keeps the bytes in a
// Backend (PostgreSQL in tasker dev) and serves them at signed URLs. Both
// implement engine.Blobs; a missing key is fs.ErrNotExist (wrapped).
//
// Import rules: a port adapter; it imports no store, api or wiring.
package blob

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Backend keeps the bytes of a Local store (internal/store in tasker dev).
type Backend interface {
	PutBlob(ctx context.Context, key string, data []byte) error
	GetBlob(ctx context.Context, key string) ([]byte, error)
	BlobSize(ctx context.Context, key string) (int64, error)
}

// LocalPath is where a Local store's URLs point, below its base URL; the
// server mounts Local.Handler there.
const LocalPath = "/v1/blobs/"

// LocalScheme starts the URIs of a Local store's references.
const LocalScheme = "pg:"

// Local is a blob store whose URLs are signed by this process: an HMAC of
// the method, key and expiry with a secret. Handler serves them.
type Local struct {
	backend  Backend
	base     string
	secret   []byte
	maxBytes int64
	now      func() time.Time
}

// NewLocal returns a Local store over backend whose URLs start with
// baseURL (such as http://127.0.0.1:8080), signed with secret (at least 32
// random bytes); uploads over maxBytes are refused (413). now tells the
// time (nil: time.Now).
func NewLocal(backend Backend, baseURL string, secret []byte, maxBytes int64, now func() time.Time) (*Local, error) {
	if backend == nil || len(secret) < 32 || maxBytes <= 0 {
		return nil, errors.New("blob: NewLocal needs a backend, a secret of at least 32 bytes and a positive size limit")
	}
	if _, err := url.Parse(baseURL); err != nil || !strings.HasPrefix(baseURL, "http") {
		return nil, fmt.Errorf("blob: base URL %q: want http(s)://host:port", baseURL)
	}
	if now == nil {
		now = time.Now
	}
	return &Local{backend: backend, base: strings.TrimRight(baseURL, "/"), secret: secret, maxBytes: maxBytes, now: now}, nil
}

// PutBlob stores data under key.
func (l *Local) PutBlob(ctx context.Context, key string, data []byte) error {
	return l.backend.PutBlob(ctx, key, data)
}

// GetBlob returns the bytes under key.
func (l *Local) GetBlob(ctx context.Context, key string) ([]byte, error) {
	return l.backend.GetBlob(ctx, key)
}

// BlobSize returns the length of the bytes under key.
func (l *Local) BlobSize(ctx context.Context, key string) (int64, error) {
	return l.backend.BlobSize(ctx, key)
}

// URI returns pg:key.
func (l *Local) URI(key string) string { return LocalScheme + key }

// Key returns the key of a pg: URI.
func (l *Local) Key(uri string) (string, bool) {
	k, ok := strings.CutPrefix(uri, LocalScheme)
	return k, ok && k != ""
}

// SignGet returns a URL that reads key until ttl has passed.
func (l *Local) SignGet(_ context.Context, key string, ttl time.Duration) (string, error) {
	return l.sign(http.MethodGet, key, ttl), nil
}

// SignPut returns a URL that writes key until ttl has passed.
func (l *Local) SignPut(_ context.Context, key string, ttl time.Duration) (string, error) {
	return l.sign(http.MethodPut, key, ttl), nil
}

func (l *Local) sign(method, key string, ttl time.Duration) string {
	exp := strconv.FormatInt(l.now().Add(ttl).Unix(), 10)
	return l.base + LocalPath + key + "?exp=" + exp + "&sig=" + l.mac(method, key, exp)
}

func (l *Local) mac(method, key, exp string) string {
	m := hmac.New(sha256.New, l.secret)
	m.Write([]byte(method + "\n" + key + "\n" + exp))
	return hex.EncodeToString(m.Sum(nil))
}

// Handler serves the signed URLs: GET returns the bytes (200), PUT stores
// the request body (204; 413 over the size limit). A missing, wrong or
// expired signature is 403, an unknown key 404. The signature is the
// only authorisation, like an S3 presigned URL's.
func (l *Local) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, ok := strings.CutPrefix(r.URL.Path, LocalPath)
		if !ok || key == "" {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodPut {
			w.Header().Set("Allow", "GET, PUT")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		q := r.URL.Query()
		exp, sig := q.Get("exp"), q.Get("sig")
		n, err := strconv.ParseInt(exp, 10, 64)
		if err != nil || !hmac.Equal([]byte(sig), []byte(l.mac(r.Method, key, exp))) {
			http.Error(w, "invalid signature", http.StatusForbidden)
			return
		}
		if l.now().Unix() > n {
			http.Error(w, "expired URL", http.StatusForbidden)
			return
		}
		if r.Method == http.MethodGet {
			data, err := l.backend.GetBlob(r.Context(), key)
			if errors.Is(err, fs.ErrNotExist) {
				http.NotFound(w, r)
				return
			}
			if err != nil {
				http.Error(w, "read blob", http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			_, _ = w.Write(data)
			return
		}
		if r.ContentLength > l.maxBytes {
			http.Error(w, fmt.Sprintf("body over the %d-byte limit", l.maxBytes), http.StatusRequestEntityTooLarge)
			return
		}
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, l.maxBytes))
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, fmt.Sprintf("body over the %d-byte limit", l.maxBytes), http.StatusRequestEntityTooLarge)
			return
		}
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		if err := l.backend.PutBlob(r.Context(), key, data); err != nil {
			http.Error(w, "store blob", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
