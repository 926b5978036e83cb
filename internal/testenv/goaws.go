package testenv

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// GoawsAccountID is the account id in the URLs and ARNs of goaws queues.
const GoawsAccountID = "000000000000"

// GoawsOptions configures StartGoawsWith.
type GoawsOptions struct {
	// Queues are created at startup; their URLs are
	// <endpoint>/000000000000/<name>.
	Queues []string
	// VisibilityTimeoutSeconds is the default visibility timeout of queues
	// (default 30, as SQS).
	VisibilityTimeoutSeconds int
	// LogLevel is goaws's log level (default "error"; goaws logs every
	// message at info and every empty receive at warning).
	LogLevel string
}

// StartGoaws starts a goaws server with no queues for the test and returns
// its endpoint, http://127.0.0.1:<port>. The server is killed when the test
// ends. See the package doc for goaws quirks.
func StartGoaws(t testing.TB) (endpoint string) {
	t.Helper()
	return StartGoawsWith(t, GoawsOptions{})
}

// StartGoawsWith is StartGoaws with options.
func StartGoawsWith(t testing.TB, opts GoawsOptions) (endpoint string) {
	t.Helper()
	bin := Binary(t, Goaws.Name)
	if opts.LogLevel == "" {
		opts.LogLevel = "error"
	}
	if opts.VisibilityTimeoutSeconds <= 0 {
		opts.VisibilityTimeoutSeconds = 30
	}
	dir := t.TempDir()
	var lastErr error
	// The free port may be taken between our probe and goaws's bind;
	// goaws then exits and we try another.
	for range 3 {
		port := FreePort(t)
		cfg := filepath.Join(dir, "goaws-"+strconv.Itoa(port)+".yaml")
		if err := os.WriteFile(cfg, []byte(goawsConfig(port, opts)), 0o644); err != nil {
			t.Fatalf("testenv: write goaws config: %v", err)
		}
		endpoint = "http://" + hostPort(port)
		cmd := exec.Command(bin, "-config", cfg, "-loglevel", opts.LogLevel)
		cmd.Dir = dir // goaws writes nothing here, but keep it out of the repo
		_, lastErr = start(t, "goaws", cmd, goawsHealthy(endpoint))
		if lastErr == nil {
			return endpoint
		}
	}
	t.Fatalf("testenv: %v", lastErr)
	return ""
}

func goawsConfig(port int, opts GoawsOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Local:\n")
	fmt.Fprintf(&b, "  Host: 127.0.0.1\n")
	fmt.Fprintf(&b, "  Port: %q\n", strconv.Itoa(port))
	fmt.Fprintf(&b, "  AccountId: %q\n", GoawsAccountID)
	fmt.Fprintf(&b, "  LogToFile: false\n")
	fmt.Fprintf(&b, "  EnableDuplicates: false\n")
	fmt.Fprintf(&b, "  QueueAttributeDefaults:\n")
	fmt.Fprintf(&b, "    VisibilityTimeout: %d\n", opts.VisibilityTimeoutSeconds)
	fmt.Fprintf(&b, "    ReceiveMessageWaitTimeSeconds: 0\n")
	fmt.Fprintf(&b, "    MaximumMessageSize: 262144\n")
	if len(opts.Queues) > 0 {
		fmt.Fprintf(&b, "  Queues:\n")
		for _, q := range opts.Queues {
			fmt.Fprintf(&b, "    - Name: %q\n", q)
		}
	}
	return b.String()
}

// goawsHealthy succeeds once GET /health answers "OK".
func goawsHealthy(endpoint string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/health", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "OK" {
			return fmt.Errorf("GET /health: %s %q", resp.Status, body)
		}
		return nil
	}
}

// AWSConfig returns an SDK configuration for a local AWS-protocol server
// such as goaws: region us-east-1, static dummy credentials and every
// service's BaseEndpoint set to endpoint.
func AWSConfig(endpoint string) aws.Config {
	return aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(endpoint),
	}
}
