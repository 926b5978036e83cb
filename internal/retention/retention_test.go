package retention_test

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taskerhq/tasker/internal/retention"
	"github.com/taskerhq/tasker/internal/testenv"
)

var docs = []json.RawMessage{json.RawMessage(`{"task":{"id":"a"}}`), json.RawMessage(" {\"task\":{\"id\":\"b\"}}\n")}

const want = "{\"task\":{\"id\":\"a\"}}\n{\"task\":{\"id\":\"b\"}}\n"

func fixed() time.Time { return time.Date(2026, 12, 6, 7, 8, 9, 0, time.UTC) }

func TestFromEnv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env     map[string]string
		want    retention.Settings
		wantErr string
	}{
		{env: nil, want: retention.Settings{Keep: 30 * 24 * time.Hour, Batch: 100}},
		{env: map[string]string{"TASKER_RETENTION_DAYS": "0", "TASKER_RETENTION_EXPORT": "s3://b/p/q"},
			want: retention.Settings{Batch: 100, Export: "s3://b/p/q"}},
		{env: map[string]string{"TASKER_RETENTION_DAYS": "-1"}, wantErr: "TASKER_RETENTION_DAYS"},
		{env: map[string]string{"TASKER_RETENTION_DAYS": "thirty"}, wantErr: "TASKER_RETENTION_DAYS"},
		{env: map[string]string{"TASKER_RETENTION_BATCH": "5000"}, wantErr: "TASKER_RETENTION_BATCH"},
		{env: map[string]string{"TASKER_RETENTION_EXPORT": "s3:///nobucket"}, wantErr: "TASKER_RETENTION_EXPORT"},
	} {
		got, err := retention.FromEnv(func(k string) string { return tc.env[k] })
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: err = %v, want one naming %s", tc.env, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%v: %+v, %v; want %+v", tc.env, got, err, tc.want)
		}
	}
}

func TestDirExport(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "exports")
	d := &retention.Dir{Path: dir, Now: fixed}
	for range 2 {
		if err := d.Export(t.Context(), docs); err != nil {
			t.Fatal(err)
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil || len(files) != 2 {
		t.Fatalf("files = %v, %v", files, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil || string(data) != want || !strings.HasSuffix(f, ".jsonl") {
			t.Fatalf("%s = %q, %v", f, data, err)
		}
	}
	// A path that cannot be a directory fails the export.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := (&retention.Dir{Path: file}).Export(t.Context(), docs); err == nil {
		t.Fatal("export into a file succeeded")
	}
}

func TestS3ExportOnMoto(t *testing.T) {
	t.Parallel()
	endpoint := testenv.Moto(t)
	client := s3.NewFromConfig(testenv.AWSConfig(endpoint), func(o *s3.Options) { o.UsePathStyle = true })
	bucket := strings.ToLower(testenv.UniqueName("tasker-export"))
	if _, err := client.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	x := &retention.S3{Client: client, Bucket: bucket, Prefix: "pruned", Now: fixed}
	if err := x.Export(t.Context(), docs); err != nil {
		t.Fatal(err)
	}
	list, err := client.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil || len(list.Contents) != 1 {
		t.Fatalf("objects = %+v, %v", list, err)
	}
	key := aws.ToString(list.Contents[0].Key)
	if !strings.HasPrefix(key, "pruned/2026/12/06/tasks-") {
		t.Fatalf("key = %s", key)
	}
	obj, err := client.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Body.Close()
	data, _ := io.ReadAll(obj.Body)
	if string(data) != want {
		t.Fatalf("object = %q", data)
	}
	if err := (&retention.S3{Client: client, Bucket: "no-such-bucket-" + bucket}).Export(t.Context(), docs); err == nil {
		t.Fatal("export to a missing bucket succeeded")
	}
}
