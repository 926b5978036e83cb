package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3 is the blob store on AWS: one object per key in a bucket whose
// lifecycle rule expires them (template.yaml, PayloadBucket). Its URLs are
// S3 presigned URLs, signed with the function's own credentials.
type S3 struct {
	client  *s3.Client
	presign *s3.PresignClient
	bucket  string
}

// NewS3 returns the store of bucket.
func NewS3(client *s3.Client, bucket string) *S3 {
	return &S3{client: client, presign: s3.NewPresignClient(client), bucket: bucket}
}

// PutBlob stores data under key.
func (s *S3) PutBlob(ctx context.Context, key string, data []byte) error {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &key, Body: bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))), ContentType: aws.String("application/json")})
	if err != nil {
		return fmt.Errorf("put s3://%s/%s: %w", s.bucket, key, err)
	}
	return nil
}

// GetBlob returns the bytes under key.
func (s *S3) GetBlob(ctx context.Context, key string) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return nil, s.err("get", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("get s3://%s/%s: %w", s.bucket, key, err)
	}
	return data, nil
}

// BlobSize returns the length of the bytes under key.
func (s *S3) BlobSize(ctx context.Context, key string) (int64, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return 0, s.err("head", key, err)
	}
	return aws.ToInt64(out.ContentLength), nil
}

func (s *S3) err(op, key string, err error) error {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	var api smithy.APIError
	if errors.As(err, &nsk) || errors.As(err, &nf) || (errors.As(err, &api) && api.ErrorCode() == "NotFound") {
		return fmt.Errorf("%s s3://%s/%s: %w", op, s.bucket, key, fs.ErrNotExist)
	}
	return fmt.Errorf("%s s3://%s/%s: %w", op, s.bucket, key, err)
}

// URI returns s3://bucket/key.
func (s *S3) URI(key string) string { return "s3://" + s.bucket + "/" + key }

// Key returns the key of an s3:// URI of this bucket.
func (s *S3) Key(uri string) (string, bool) {
	k, ok := strings.CutPrefix(uri, "s3://"+s.bucket+"/")
	return k, ok && k != ""
}

// SignGet returns a presigned GET URL of key.
func (s *S3) SignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	r, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("presign get s3://%s/%s: %w", s.bucket, key, err)
	}
	return r.URL, nil
}

// SignPut returns a presigned PUT URL of key.
func (s *S3) SignPut(ctx context.Context, key string, ttl time.Duration) (string, error) {
	r, err := s.presign.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &key}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("presign put s3://%s/%s: %w", s.bucket, key, err)
	}
	return r.URL, nil
}
