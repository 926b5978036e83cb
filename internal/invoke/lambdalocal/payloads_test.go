package lambdalocal_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/invoke/lambdalocal"
	"github.com/taskerhq/tasker/sdk/contract"
)

// blobServer serves /blob (the JSON of a small context), answers 404 on
// /missing, 500 on /put-fail and keeps what is PUT to /put-ok.
type blobServer struct {
	*httptest.Server
	blob []byte
	mu   sync.Mutex
	put  map[string][]byte
}

func newBlobServer(t *testing.T) *blobServer {
	t.Helper()
	b := &blobServer{blob: []byte(`{"blob":"cc","size":2,"tag":"t"}`), put: map[string][]byte{}}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/blob":
			_, _ = w.Write(b.blob)
		case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/put-ok"):
			body, _ := io.ReadAll(r.Body)
			b.mu.Lock()
			b.put[r.URL.Path] = body
			b.mu.Unlock()
			w.WriteHeader(http.StatusCreated)
		case r.URL.Path == "/put-fail":
			_, _ = io.Copy(io.Discard, r.Body) // so the client sees the status, not a broken pipe
			http.Error(w, "boom", http.StatusInternalServerError)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(b.Close)
	return b
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// The shims fail a step on a reference they cannot resolve or a result
// they cannot upload with the Go SDK's handled failures: the code and
// permanence the engine records (docs/handlers.md, "Large payloads").
func TestShimPayloadFailures(t *testing.T) {
	t.Parallel()
	requireInterpreters(t)
	srv := newBlobServer(t)
	r := lambdalocal.New(testFunctions(t))
	ref := func(url string, size int, sum string) map[string]any {
		return map[string]any{"tasker_ref": map[string]any{"uri": "pg:x", "size": size, "sha256": sum, "url": url}}
	}
	good := hexSHA(srv.blob)
	upload := func(path string, maxBytes int) map[string]any {
		return map[string]any{"url": srv.URL + path, "uri": "pg:r", "inline_limit": 1 << 10, "max_bytes": maxBytes}
	}
	cases := []struct {
		name      string
		handler   string // of testdata/*/cases
		context   any
		results   map[string]any
		upload    map[string]any
		code      string
		permanent bool
		inMsg     string
	}{
		{name: "fetch 404", handler: "ok", context: ref(srv.URL+"/missing", 2, good), code: "payload_unavailable", inMsg: "HTTP 404"},
		{name: "unreachable", handler: "ok", results: map[string]any{"p": ref("http://127.0.0.1:1/x", 2, good)},
			code: "payload_unavailable", inMsg: "result of p: fetch pg:x"},
		{name: "wrong size", handler: "ok", context: ref(srv.URL+"/blob", len(srv.blob)-1, good), code: "payload_ref_invalid",
			permanent: true, inMsg: fmt.Sprintf("is not %d bytes as its reference says", len(srv.blob)-1)},
		{name: "wrong digest", handler: "ok", context: ref(srv.URL+"/blob", len(srv.blob), strings.Repeat("0", 64)),
			code: "payload_ref_invalid", permanent: true, inMsg: "does not match the sha256"},
		{name: "malformed", handler: "ok", context: ref(srv.URL+"/blob", len(srv.blob), "abc"), code: "payload_ref_invalid",
			permanent: true, inMsg: "malformed tasker_ref"},
		{name: "no url", handler: "ok", context: ref("", len(srv.blob), good), code: "payload_ref_invalid", permanent: true, inMsg: "has no url"},
		{name: "over max_bytes", handler: "huge", upload: upload("/put-ok", 1<<20), code: "result_too_large", permanent: true,
			inMsg: "over the 1048576-byte limit"},
		{name: "upload fails", handler: "huge", upload: upload("/put-fail", 8<<20), code: "result_upload_failed", inMsg: "HTTP 500"},
	}
	for _, c := range cases {
		for _, lang := range []string{"python", "node"} {
			t.Run(lang+" "+c.name, func(t *testing.T) {
				t.Parallel()
				fn, _ := r.Lookup("lambda:" + lang + "-" + c.handler)
				ev := map[string]any{"x": "payload", "tasker": map[string]any{"step": "s", "result_upload": c.upload},
					"context": c.context, "results": c.results}
				event, _ := json.Marshal(ev)
				res, err := r.Run(context.Background(), fn, event, time.Now().Add(time.Minute))
				if err != nil {
					t.Fatal(err)
				}
				he, isErr := contract.AsHandlerError(res.Response)
				if res.Error != nil || !isErr {
					t.Fatalf("response %.300s, error %+v; want a tasker_error", res.Response, res.Error)
				}
				if he.Code != c.code || he.Permanent != c.permanent || !strings.Contains(he.Message, c.inMsg) {
					t.Fatalf("tasker_error %+v, want code %s, permanent %v, message containing %q", he, c.code, c.permanent, c.inMsg)
				}
			})
		}
	}
}

// A resolved reference reaches the handler as its value; a result over
// inline_limit is PUT and returned as a reference to exactly those bytes;
// one within it is returned inline.
func TestShimPayloadResolveAndUpload(t *testing.T) {
	t.Parallel()
	requireInterpreters(t)
	srv := newBlobServer(t)
	r := lambdalocal.New(testFunctions(t))
	for _, lang := range []string{"python", "node"} {
		t.Run(lang, func(t *testing.T) {
			t.Parallel()
			path := "/put-ok/" + lang
			ev := map[string]any{
				"tasker":  map[string]any{"step": "s", "result_upload": map[string]any{"url": srv.URL + path, "uri": "pg:r", "inline_limit": 10, "max_bytes": 1 << 20}},
				"context": map[string]any{"tasker_ref": map[string]any{"uri": "pg:c", "size": len(srv.blob), "sha256": hexSHA(srv.blob), "url": srv.URL + "/blob"}},
				// An object with tasker_ref and another member is data.
				"results": map[string]any{"p": map[string]any{"blob": "cc", "tag": "t", "tasker_ref": 1}},
			}
			event, _ := json.Marshal(ev)
			fn, _ := r.Lookup("lambda:" + lang + "-big")
			res, err := r.Run(context.Background(), fn, event, time.Now().Add(time.Minute))
			if err != nil || res.Error != nil {
				t.Fatalf("run: %v %+v", err, res.Error)
			}
			ref, isRef, err := contract.AsRef(res.Response)
			if err != nil || !isRef {
				t.Fatalf("response %.300s, want a reference (%v)", res.Response, err)
			}
			srv.mu.Lock()
			up := srv.put[path]
			srv.mu.Unlock()
			var got map[string]any
			if err := json.Unmarshal(up, &got); err != nil {
				t.Fatalf("uploaded %q: %v", up, err)
			}
			if ref.URI != "pg:r" || ref.Size != int64(len(up)) || ref.SHA256 != hexSHA(up) || ref.URL != "" ||
				got["tag"] != "t" || fmt.Sprint(got["parents"]) != "[p]" {
				t.Fatalf("reference %+v to upload %s", ref, up)
			}

			// Within the inline limit, the result comes back inline.
			ev["tasker"] = map[string]any{"step": "s", "result_upload": map[string]any{"url": srv.URL + "/put-fail", "uri": "pg:r", "inline_limit": 1 << 10, "max_bytes": 1 << 20}}
			event, _ = json.Marshal(ev)
			res, err = r.Run(context.Background(), fn, event, time.Now().Add(time.Minute))
			if err != nil || res.Error != nil || !strings.Contains(string(res.Response), `"tag":"t"`) {
				t.Fatalf("inline: %v %+v %.300s", err, res.Error, res.Response)
			}
		})
	}
}
