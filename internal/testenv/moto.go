package testenv

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Moto's fixed identity: ARNs and queue URLs carry this account, and
// AWSConfig's region is MotoRegion.
const (
	MotoAccountID = "123456789012"
	MotoRegion    = "us-east-1"
)

// MotoEnvVar names a moto_server executable to use instead of the one on
// PATH.
const MotoEnvVar = "TASKER_MOTO_SERVER"

// motoInstallHint is the install step a missing moto_server error names.
const motoInstallHint = "install it with `python3 -m pip install 'moto[server]==5.2.1'` " +
	"(scripts/install-test-deps reports it missing; README.md, Requirements) or set " + MotoEnvVar + " to its path"

// shared is a server started once per test binary.
type shared struct {
	once     sync.Once
	endpoint string
	err      error
}

// motoServer is the test binary's moto_server. This is the one piece of
// package state: moto takes about a second to start, so every test of a
// binary shares one server and isolates itself by unique resource names
// (UniqueName) instead.
var motoServer shared

// Moto returns the endpoint, http://127.0.0.1:<port>, of the moto_server
// shared by every test of the test binary, starting it on first use. The
// server lives until the test binary exits. moto keeps all state in memory
// and shared: create resources under UniqueName names. It fails the test
// if moto_server is missing or does not start. See the package doc.
func Moto(t testing.TB) (endpoint string) {
	t.Helper()
	motoServer.once.Do(func() { motoServer.endpoint, motoServer.err = startMoto() })
	if motoServer.err != nil {
		t.Fatalf("testenv: %v", motoServer.err)
	}
	return motoServer.endpoint
}

// MotoBinary returns the moto_server to run: $TASKER_MOTO_SERVER if set,
// else moto_server on PATH. The error names the install step.
func MotoBinary() (string, error) {
	if p := os.Getenv(MotoEnvVar); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", MotoEnvVar, p, err)
		}
		return p, nil
	}
	p, err := exec.LookPath("moto_server")
	if err != nil {
		return "", fmt.Errorf("moto_server not found on PATH (tests run SQS, S3, EventBridge and Secrets Manager on moto): %s: %w", motoInstallHint, err)
	}
	return p, nil
}

func startMoto() (string, error) {
	bin, err := MotoBinary()
	if err != nil {
		return "", err
	}
	var lastErr error
	// The free port may be taken between our probe and moto's bind; moto
	// then exits and we try another.
	for range 3 {
		port, err := freePort()
		if err != nil {
			return "", err
		}
		endpoint := "http://" + hostPort(port)
		cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
		cmd.Dir = os.TempDir() // moto writes nothing, but keep it out of the repo
		if _, lastErr = startShared("moto_server", cmd, motoReady(endpoint)); lastErr == nil {
			return endpoint, nil
		}
	}
	return "", lastErr
}

// motoReady succeeds once SQS ListQueues answers over the JSON protocol.
// moto picks the service from the credential scope of the Authorization
// header (it checks no signature).
func motoReady(endpoint string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/", strings.NewReader("{}"))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-amz-json-1.0")
		req.Header.Set("X-Amz-Target", "AmazonSQS.ListQueues")
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/"+MotoRegion+"/sqs/aws4_request, SignedHeaders=host, Signature=0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(strings.TrimSpace(string(body)), "{") {
			return fmt.Errorf("SQS ListQueues: %s %q", resp.Status, body)
		}
		return nil
	}
}

// AWSConfig returns an SDK configuration for a local AWS-protocol server
// such as moto: region us-east-1, static dummy credentials and every
// service's BaseEndpoint set to endpoint.
func AWSConfig(endpoint string) aws.Config {
	return aws.Config{
		Region:       MotoRegion,
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(endpoint),
	}
}

var nameSeq atomic.Int64

// UniqueName returns prefix followed by a suffix unique to this process
// and call, for resources on the shared moto server (queue names allow 80
// characters; keep prefix under 50).
func UniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d-%d", prefix, os.Getpid(), time.Now().UnixMilli()%1_000_000, nameSeq.Add(1))
}

// Queue is an SQS queue on moto.
type Queue struct {
	URL, ARN, Name string
}

// CreateQueue creates a standard queue named UniqueName(prefix) on the
// moto server at endpoint with the given attributes (e.g.
// "VisibilityTimeout", "RedrivePolicy"), deleted when the test ends.
func CreateQueue(t testing.TB, endpoint, prefix string, attrs map[string]string) Queue {
	t.Helper()
	client := awssqs.NewFromConfig(AWSConfig(endpoint))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q := Queue{Name: UniqueName(prefix)}
	out, err := client.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(q.Name), Attributes: attrs})
	if err != nil {
		t.Fatalf("testenv: CreateQueue %s on moto: %v", q.Name, err)
	}
	q.URL = aws.ToString(out.QueueUrl)
	q.ARN = "arn:aws:sqs:" + MotoRegion + ":" + MotoAccountID + ":" + q.Name
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := client.DeleteQueue(ctx, &awssqs.DeleteQueueInput{QueueUrl: out.QueueUrl}); err != nil {
			t.Logf("testenv: DeleteQueue %s: %v", q.Name, err)
		}
	})
	return q
}
