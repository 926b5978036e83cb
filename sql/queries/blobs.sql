-- Large payloads stored in PostgreSQL (Store.PutBlob, GetBlob, BlobSize in
-- internal/store/blobs.go; docs/architecture.md, "Large payloads"). Each
-- statement reaches one row by its primary key.

-- name: PutBlob :exec
-- A repeated upload (a handler's retried PUT) replaces the bytes.
INSERT INTO tasker_blobs (key, task_id, data) VALUES (@key, @task_id, @data)
ON CONFLICT (key) DO UPDATE SET data = EXCLUDED.data;

-- name: GetBlob :one
SELECT data FROM tasker_blobs WHERE key = @key;

-- name: BlobSize :one
-- octet_length reads the stored length, not the value.
SELECT octet_length(data)::bigint AS size FROM tasker_blobs WHERE key = @key;
