package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/taskerhq/tasker/internal/store/dbgen"
)

// Large payloads stored in PostgreSQL (migration 0016; docs/architecture.md,
// "Large payloads"). Keys start with tasks/<task_id>/, which names the task
// whose deletion deletes the blob. A missing blob is fs.ErrNotExist
// (wrapped), the sentinel every blob store returns.

// blobTask returns the task id a blob key starts with.
func blobTask(key string) (uuid.UUID, error) {
	rest, ok := strings.CutPrefix(key, "tasks/")
	if ok {
		if id, _, ok := strings.Cut(rest, "/"); ok {
			if u, err := uuid.Parse(id); err == nil {
				return u, nil
			}
		}
	}
	return uuid.Nil, fmt.Errorf("blob key %q: want tasks/<task id>/…", key)
}

// PutBlob stores data under key, replacing what the key held.
func (s *Store) PutBlob(ctx context.Context, key string, data []byte) error {
	task, err := blobTask(key)
	if err != nil {
		return err
	}
	if err := dbq.PutBlob(ctx, s.pool, dbgen.PutBlobParams{Key: key, TaskID: task, Data: data}); err != nil {
		return fmt.Errorf("put blob %s: %w", key, err)
	}
	return nil
}

// GetBlob returns the bytes stored under key.
func (s *Store) GetBlob(ctx context.Context, key string) ([]byte, error) {
	data, err := dbq.GetBlob(ctx, s.pool, key)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("blob %s: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("get blob %s: %w", key, err)
	}
	return data, nil
}

// BlobSize returns the length of the bytes stored under key.
func (s *Store) BlobSize(ctx context.Context, key string) (int64, error) {
	n, err := dbq.BlobSize(ctx, s.pool, key)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("blob %s: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return 0, fmt.Errorf("blob size %s: %w", key, err)
	}
	return n, nil
}
