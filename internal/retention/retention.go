// Package retention holds the retention settings and the exporters that
// keep a copy of each finished task before the sweep deletes it
// (docs/operating.md, "Retention"): JSON lines in a local directory, or in
// S3 objects on AWS. Both satisfy engine.Exporter.
package retention

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taskerhq/tasker/internal/config"
)

// Environment variables (docs/operating.md, "Retention").
const (
	// EnvDays is how many days finished tasks are kept; 0 keeps them for ever.
	EnvDays = "TASKER_RETENTION_DAYS"
	// EnvBatch is how many tasks one sweep deletes at most.
	EnvBatch = "TASKER_RETENTION_BATCH"
	// EnvExport, if set, is where tasks are exported before deletion: a
	// directory path, or s3://bucket/prefix.
	EnvExport = "TASKER_RETENTION_EXPORT"
)

// Defaults and bounds.
const (
	DefaultDays  = 30
	MaxDays      = 36500
	DefaultBatch = 100
	MaxBatch     = 1000
)

// Settings are the retention settings.
type Settings struct {
	// Keep is how long finished tasks are kept; 0 keeps them for ever.
	Keep time.Duration
	// Batch bounds the tasks one sweep deletes.
	Batch int
	// Export is the export target ("" none; a directory; s3://bucket/prefix).
	Export string
}

// FromEnv reads the settings, strictly: a bad value is an error naming the
// variable and what it accepts.
func FromEnv(getenv config.Getenv) (Settings, error) {
	days, err := config.Int(getenv, EnvDays, DefaultDays, 0, MaxDays)
	if err != nil {
		return Settings{}, fmt.Errorf("%w (0 keeps finished tasks for ever)", err)
	}
	batch, err := config.Int(getenv, EnvBatch, DefaultBatch, 1, MaxBatch)
	if err != nil {
		return Settings{}, err
	}
	s := Settings{Keep: time.Duration(days) * 24 * time.Hour, Batch: batch, Export: strings.TrimSpace(getenv(EnvExport))}
	if strings.HasPrefix(s.Export, "s3:") {
		if _, _, err := ParseS3(s.Export); err != nil {
			return Settings{}, fmt.Errorf("%s=%q: %w", EnvExport, s.Export, err)
		}
	}
	return s, nil
}

// ParseS3 splits s3://bucket/prefix.
func ParseS3(target string) (bucket, prefix string, err error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return "", "", fmt.Errorf("want s3://bucket/prefix")
	}
	return u.Host, strings.Trim(u.Path, "/"), nil
}

// name is the name of one export file or object: the time of the export
// and a sequence, so names sort in export order and never collide within a
// process; a repeat after a crash writes a new file (at-least-once).
func name(now time.Time, seq int64) string {
	return fmt.Sprintf("tasks-%s-%06d.jsonl", now.UTC().Format("20060102T150405.000000000Z"), seq)
}

func lines(docs []json.RawMessage) []byte {
	var b bytes.Buffer
	for _, d := range docs {
		b.Write(bytes.TrimSpace(d))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// Dir exports each batch as one JSON-lines file in a directory.
type Dir struct {
	Path string
	// Now names the files (default time.Now).
	Now func() time.Time
	mu  sync.Mutex
	seq int64
}

// Export writes docs to a new file, synced before it returns: the tasks
// are deleted only after their export is on disk.
func (d *Dir) Export(_ context.Context, docs []json.RawMessage) error {
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	if err := os.MkdirAll(d.Path, 0o750); err != nil {
		return fmt.Errorf("export directory: %w", err)
	}
	d.mu.Lock()
	d.seq++
	seq := d.seq
	d.mu.Unlock()
	final := filepath.Join(d.Path, name(now(), seq))
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	_, err = f.Write(lines(docs))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// S3API is the part of the S3 client S3 uses.
type S3API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// S3 exports each batch as one JSON-lines object under Bucket/Prefix.
type S3 struct {
	Client         S3API
	Bucket, Prefix string
	Now            func() time.Time
	mu             sync.Mutex
	seq            int64
}

// Export puts docs as one object; S3 acknowledges a put once it is durable.
func (x *S3) Export(ctx context.Context, docs []json.RawMessage) error {
	now := time.Now
	if x.Now != nil {
		now = x.Now
	}
	x.mu.Lock()
	x.seq++
	seq := x.seq
	x.mu.Unlock()
	t := now()
	key := name(t, seq)
	// Objects under prefix/YYYY/MM/DD/ so a day's exports list together.
	key = t.UTC().Format("2006/01/02/") + key
	if x.Prefix != "" {
		key = x.Prefix + "/" + key
	}
	_, err := x.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(x.Bucket), Key: aws.String(key),
		Body: bytes.NewReader(lines(docs)), ContentType: aws.String("application/x-ndjson")})
	if err != nil {
		return fmt.Errorf("export to s3://%s/%s: %w", x.Bucket, key, err)
	}
	return nil
}

// Target is an export destination (engine.Exporter).
type Target interface {
	Export(ctx context.Context, docs []json.RawMessage) error
}

// NewTarget returns the exporter of an EnvExport value: nil for "", S3 for
// s3://bucket/prefix (its client made by newS3, called only then), else a
// directory.
func NewTarget(export string, newS3 func() (S3API, error)) (Target, error) {
	switch {
	case export == "":
		return nil, nil
	case strings.HasPrefix(export, "s3:"):
		bucket, prefix, err := ParseS3(export)
		if err != nil {
			return nil, fmt.Errorf("%s=%q: %w", EnvExport, export, err)
		}
		c, err := newS3()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvExport, err)
		}
		return &S3{Client: c, Bucket: bucket, Prefix: prefix}, nil
	default:
		return &Dir{Path: export}, nil
	}
}
