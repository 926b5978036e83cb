package sdk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/taskerhq/tasker/sdk/contract"
)

// blobServer serves GET /get (body) and /fail (500) and records PUT /put.
type blobServer struct {
	*httptest.Server
	mu  sync.Mutex
	put []byte
}

func newBlobServer(t *testing.T, body []byte) *blobServer {
	t.Helper()
	b := &blobServer{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/get":
			_, _ = w.Write(body)
		case r.Method == http.MethodPut && r.URL.Path == "/put":
			data, _ := io.ReadAll(r.Body)
			b.mu.Lock()
			b.put = data
			b.mu.Unlock()
			w.WriteHeader(http.StatusOK)
		default:
			http.Error(w, "no", http.StatusInternalServerError)
		}
	}))
	t.Cleanup(b.Close)
	return b
}

func refJSON(t *testing.T, uri, url string, body []byte) string {
	t.Helper()
	sum := sha256.Sum256(body)
	b, err := json.Marshal(contract.RefEnvelope{Ref: &contract.Ref{URI: uri, Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:]), URL: url}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// withUpload adds a result upload to an encoded payload.
func withUpload(t *testing.T, payload []byte, up *contract.Upload) []byte {
	t.Helper()
	var p contract.Payload
	if err := json.Unmarshal(payload, &p); err != nil {
		t.Fatal(err)
	}
	p.Tasker.ResultUpload = up
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// References in the context and parent results are fetched and checked
// before the handler runs; the handler sees only whole values.
func TestRunResolvesReferences(t *testing.T) {
	t.Parallel()
	value := []byte(`{"blob":"` + strings.Repeat("v", 300<<10) + `"}`)
	srv := newBlobServer(t, value)
	reg := NewRegistry()
	var seenCtx, seenResult, seenRaw int
	if err := reg.Register("t.read", func(_ context.Context, in Input) (any, error) {
		var c, r struct{ Blob string }
		if err := in.Context(&c); err != nil {
			return nil, err
		}
		if err := in.Result("parent", &r); err != nil {
			return nil, err
		}
		seenCtx, seenResult, seenRaw = len(c.Blob), len(r.Blob), len(in.Raw())
		return "ok", nil
	}); err != nil {
		t.Fatal(err)
	}
	ref := refJSON(t, "pg:tasks/x/context", srv.URL+"/get", value)
	out := Run(t.Context(), reg, testPayload(t, "t.read", ref, "", map[string]string{"parent": ref}), WithLogger(quietLogger()))
	if string(out) != `"ok"` || seenCtx != 300<<10 || seenResult != 300<<10 || seenRaw < 600<<10 {
		t.Fatalf("Run = %s; handler saw context %d, result %d, raw %d bytes", out, seenCtx, seenResult, seenRaw)
	}

	for _, tt := range []struct {
		name, ref, code string
		permanent       bool
	}{
		{"sha256 mismatch", refJSON(t, "pg:k", srv.URL+"/get", []byte(strings.Repeat("z", len(value)))), CodePayloadRefInvalid, true},
		{"size mismatch", refJSON(t, "pg:k", srv.URL+"/get", value[:10]), CodePayloadRefInvalid, true},
		{"no url", refJSON(t, "pg:k", "", value), CodePayloadRefInvalid, true},
		{"malformed", `{"tasker_ref":{"uri":"pg:k"}}`, CodePayloadRefInvalid, true},
		{"server error", refJSON(t, "pg:k", srv.URL+"/fail", value), CodePayloadUnavailable, false},
	} {
		he, ok := contract.AsHandlerError(Run(t.Context(), reg, testPayload(t, "t.read", tt.ref, "", nil), WithLogger(quietLogger())))
		if !ok || he.Code != tt.code || he.Permanent != tt.permanent {
			t.Errorf("%s: %+v, want code %s permanent %v", tt.name, he, tt.code, tt.permanent)
		}
	}
}

// A result over the inline limit is uploaded and replaced by its
// reference; one within it stays inline; one over the maximum is a
// permanent result_too_large naming the limit, and nothing is uploaded.
func TestRunOffloadsLargeResults(t *testing.T) {
	t.Parallel()
	srv := newBlobServer(t, nil)
	reg := NewRegistry()
	size := 0
	if err := reg.Register("t.make", func(context.Context, Input) (any, error) {
		return strings.Repeat("r", size), nil
	}); err != nil {
		t.Fatal(err)
	}
	up := &contract.Upload{URL: srv.URL + "/put", URI: "pg:tasks/x/steps/y/1/result", InlineLimit: 1000, MaxBytes: 5000}
	payload := withUpload(t, testPayload(t, "t.make", "", "", nil), up)

	size = 900
	if out := Run(t.Context(), reg, payload); len(out) != 902 {
		t.Fatalf("a result within the inline limit: %.100s", out)
	}
	size = 4000
	out := Run(t.Context(), reg, payload)
	ref, isRef, err := contract.AsRef(out)
	if !isRef || err != nil {
		t.Fatalf("a large result: %.200s (%v)", out, err)
	}
	srv.mu.Lock()
	put := srv.put
	srv.mu.Unlock()
	sum := sha256.Sum256(put)
	if ref.URI != up.URI || ref.Size != int64(len(put)) || ref.SHA256 != hex.EncodeToString(sum[:]) || len(put) != 4002 {
		t.Fatalf("reference %+v for an upload of %d bytes", ref, len(put))
	}

	size = 6000
	srv.mu.Lock()
	srv.put = nil
	srv.mu.Unlock()
	he, ok := contract.AsHandlerError(Run(t.Context(), reg, payload, WithLogger(quietLogger())))
	if !ok || he.Code != CodeResultTooLarge || !he.Permanent || !strings.Contains(he.Message, "over the 5000-byte limit") {
		t.Fatalf("an oversize result: %+v", he)
	}
	if srv.put != nil {
		t.Fatal("an oversize result was uploaded")
	}

	up.URL = srv.URL + "/broken"
	size = 4000
	he, ok = contract.AsHandlerError(Run(t.Context(), reg, withUpload(t, testPayload(t, "t.make", "", "", nil), up), WithLogger(quietLogger())))
	if !ok || he.Code != CodeResultUploadFailed || he.Permanent {
		t.Fatalf("a failed upload: %+v, want a retryable %s", he, CodeResultUploadFailed)
	}
}
