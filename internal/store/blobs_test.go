package store_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"testing"

	"github.com/google/uuid"
)

func TestBlobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newStore(t)
	taskID := mk(t, st, step("a")).ID
	key := "tasks/" + taskID.String() + "/context"
	big := bytes.Repeat([]byte("x"), 3<<20)
	if err := st.PutBlob(ctx, key, big); err != nil {
		t.Fatal(err)
	}
	if err := st.PutBlob(ctx, key, big[:1<<20]); err != nil { // a repeated upload replaces the bytes
		t.Fatal(err)
	}
	got, err := st.GetBlob(ctx, key)
	if err != nil || !bytes.Equal(got, big[:1<<20]) {
		t.Fatalf("GetBlob = %d bytes, %v; want the replaced 1 MiB", len(got), err)
	}
	if n, err := st.BlobSize(ctx, key); err != nil || n != 1<<20 {
		t.Fatalf("BlobSize = %d, %v; want %d", n, err, 1<<20)
	}
	if err := st.PutBlob(ctx, "elsewhere/x", big[:1]); err == nil {
		t.Fatal("PutBlob accepted a key that names no task")
	}
	other := "tasks/" + uuid.NewString() + "/context"
	if _, err := st.GetBlob(ctx, other); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("GetBlob of a missing key: %v, want fs.ErrNotExist", err)
	}
	if _, err := st.BlobSize(ctx, other); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("BlobSize of a missing key: %v, want fs.ErrNotExist", err)
	}
	// Deleting the task deletes its blobs.
	if _, err := st.Pool().Exec(ctx, "DELETE FROM tasker_tasks WHERE id = $1", taskID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetBlob(ctx, key); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("blob of a deleted task: %v, want fs.ErrNotExist", err)
	}
}
