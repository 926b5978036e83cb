package blob_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/blob"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/testenv"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var (
	_ engine.Blobs = (*blob.Local)(nil)
	_ engine.Blobs = (*blob.S3)(nil)
)

// conformance checks what the engine relies on of a blob store: bytes
// round-trip by key, fs.ErrNotExist for a missing key, URI and Key are
// inverses, and the signed URLs read and write the key over plain HTTP.
func conformance(t *testing.T, b engine.Blobs) {
	t.Helper()
	ctx := t.Context()
	key := "tasks/" + uuid.NewString() + "/context"
	data := bytes.Repeat([]byte(`{"k":"v"}`), 600_000) // 5.4 MB
	if err := b.PutBlob(ctx, key, data); err != nil {
		t.Fatal(err)
	}
	got, err := b.GetBlob(ctx, key)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GetBlob: %d bytes, %v; want %d bytes", len(got), err, len(data))
	}
	if n, err := b.BlobSize(ctx, key); err != nil || n != int64(len(data)) {
		t.Fatalf("BlobSize = %d, %v; want %d", n, err, len(data))
	}
	missing := "tasks/" + uuid.NewString() + "/context"
	if _, err := b.GetBlob(ctx, missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("GetBlob(missing): %v, want fs.ErrNotExist", err)
	}
	if _, err := b.BlobSize(ctx, missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("BlobSize(missing): %v, want fs.ErrNotExist", err)
	}
	if k, ok := b.Key(b.URI(key)); !ok || k != key {
		t.Fatalf("Key(URI(%q)) = %q, %v", key, k, ok)
	}
	if _, ok := b.Key("s3://another-bucket/" + key); ok {
		t.Fatal("Key accepted a URI of another store")
	}
	get, err := b.SignGet(ctx, key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := do(t, http.MethodGet, get, nil); code != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("GET signed URL: %d, %d bytes", code, len(body))
	}
	rkey := "tasks/" + uuid.NewString() + "/steps/" + uuid.NewString() + "/1/result"
	put, err := b.SignPut(ctx, rkey, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := do(t, http.MethodPut, put, data[:1<<20]); code/100 != 2 {
		t.Fatalf("PUT signed URL: %d", code)
	}
	if got, err := b.GetBlob(ctx, rkey); err != nil || !bytes.Equal(got, data[:1<<20]) {
		t.Fatalf("uploaded blob: %d bytes, %v", len(got), err)
	}
}

func do(t *testing.T, method, url string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body = http.NoBody
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestS3OnMoto(t *testing.T) {
	t.Parallel()
	endpoint := testenv.Moto(t)
	client := s3.NewFromConfig(testenv.AWSConfig(endpoint), func(o *s3.Options) { o.UsePathStyle = true })
	bucket := strings.ToLower(testenv.UniqueName("payloads"))
	if _, err := client.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		t.Fatal(err)
	}
	b := blob.NewS3(client, bucket)
	if got := b.URI("tasks/x/context"); got != "s3://"+bucket+"/tasks/x/context" {
		t.Fatalf("URI = %q", got)
	}
	conformance(t, b)
}

func newLocal(t *testing.T, now func() time.Time) (*blob.Local, *httptest.Server) {
	t.Helper()
	st, err := store.New(pgtest.Pool(t))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	l, err := blob.NewLocal(st, srv.URL, bytes.Repeat([]byte("s"), 32), 2<<20, now)
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle(blob.LocalPath, l.Handler())
	return l, srv
}

func TestLocal(t *testing.T) {
	t.Parallel()
	l, _ := newLocal(t, nil)
	if got := l.URI("tasks/x/context"); got != "pg:tasks/x/context" {
		t.Fatalf("URI = %q", got)
	}
	conformance(t, l)
}

func TestLocalRefuses(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	l, _ := newLocal(t, clock)
	ctx := context.Background()
	key := "tasks/" + uuid.NewString() + "/steps/" + uuid.NewString() + "/1/result"
	put, _ := l.SignPut(ctx, key, time.Minute)
	get, _ := l.SignGet(ctx, key, time.Minute)
	for _, c := range []struct {
		name, method, url string
		body              []byte
		want              int
	}{
		{"over the size limit", http.MethodPut, put, bytes.Repeat([]byte("x"), 2<<20+1), http.StatusRequestEntityTooLarge},
		{"get before upload", http.MethodGet, get, nil, http.StatusNotFound},
		{"tampered signature", http.MethodPut, strings.Replace(put, "sig=", "sig=0", 1), []byte("{}"), http.StatusForbidden},
		{"no signature", http.MethodGet, strings.Split(get, "?")[0], nil, http.StatusForbidden},
		{"wrong method", http.MethodGet, put, nil, http.StatusForbidden},
		{"another key", http.MethodPut, strings.Replace(put, "/result", "/other", 1), []byte("{}"), http.StatusForbidden},
		{"delete", http.MethodDelete, put, nil, http.StatusMethodNotAllowed},
	} {
		if code, _ := do(t, c.method, c.url, c.body); code != c.want {
			t.Errorf("%s: %d, want %d", c.name, code, c.want)
		}
	}
	if _, err := l.GetBlob(ctx, key); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused upload stored something: %v", err)
	}
	now = now.Add(2 * time.Minute)
	if code, _ := do(t, http.MethodPut, put, []byte("{}")); code != http.StatusForbidden {
		t.Fatalf("expired URL: %d, want 403", code)
	}
	if _, err := blob.NewLocal(nil, "http://x", nil, 1, nil); err == nil {
		t.Fatal("NewLocal accepted no backend and no secret")
	}
}
