package testenv_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/taskerhq/tasker/internal/testenv"
)

func TestEnvVar(t *testing.T) {
	t.Parallel()
	if got := testenv.RIE.EnvVar(); got != "TASKER_AWS_LAMBDA_RIE_BIN" {
		t.Errorf("rie: %s", got)
	}
}

func TestRepoRoot(t *testing.T) {
	t.Parallel()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("module github.com/taskerhq/tasker")) {
		t.Errorf("%s/go.mod is not this module's", root)
	}
}

func TestMotoIsSharedAndServesSQS(t *testing.T) {
	t.Parallel()
	endpoint := testenv.Moto(t)
	if !strings.HasPrefix(endpoint, "http://127.0.0.1:") {
		t.Errorf("endpoint %s is not on loopback", endpoint)
	}
	if again := testenv.Moto(t); again != endpoint {
		t.Errorf("second Moto call started another server: %s, then %s", endpoint, again)
	}
	a := testenv.CreateQueue(t, endpoint, "testenv", nil)
	b := testenv.CreateQueue(t, endpoint, "testenv", nil)
	if a.URL == b.URL || a.Name == b.Name {
		t.Errorf("two CreateQueue calls gave one queue: %+v", a)
	}
	want := endpoint + "/" + testenv.MotoAccountID + "/" + a.Name
	if a.URL != want || a.ARN != "arn:aws:sqs:us-east-1:"+testenv.MotoAccountID+":"+a.Name {
		t.Errorf("queue %+v; want URL %s", a, want)
	}
	out, err := awssqs.NewFromConfig(testenv.AWSConfig(endpoint)).GetQueueUrl(context.Background(), &awssqs.GetQueueUrlInput{QueueName: aws.String(a.Name)})
	if err != nil || aws.ToString(out.QueueUrl) != want {
		t.Errorf("GetQueueUrl %s: %v, %v; want %s", a.Name, out, err, want)
	}
}

// TestMotoBinaryMissing: without moto_server the error says how to install
// it.
func TestMotoBinaryMissing(t *testing.T) {
	t.Setenv(testenv.MotoEnvVar, "")
	t.Setenv("PATH", t.TempDir())
	_, err := testenv.MotoBinary()
	if err == nil || !strings.Contains(err.Error(), "pip install 'moto[server]==5.2.1'") || !strings.Contains(err.Error(), testenv.MotoEnvVar) {
		t.Errorf("MotoBinary without moto_server: %v", err)
	}
	t.Setenv(testenv.MotoEnvVar, filepath.Join(t.TempDir(), "nothing"))
	if _, err := testenv.MotoBinary(); err == nil || !strings.Contains(err.Error(), testenv.MotoEnvVar+"=") {
		t.Errorf("MotoBinary with a wrong %s: %v", testenv.MotoEnvVar, err)
	}
}

func TestUniqueName(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		n := testenv.UniqueName("tasker-scheduler-dead-letter-queue-of-a-long-test")
		if seen[n] || len(n) > 80 {
			t.Fatalf("UniqueName: %q (duplicate or over 80 characters)", n)
		}
		seen[n] = true
	}
}

func TestRIERunsAGoLambda(t *testing.T) {
	t.Parallel()
	bootstrap := testenv.BuildLambda(t, "./testdata/echolambda")
	endpoint := testenv.StartRIE(t, testenv.RIEOptions{
		Bootstrap:    []string{bootstrap},
		FunctionName: "echo",
		Env:          map[string]string{"ECHO_EXTRA": "from-env"},
	})
	for i := range 2 { // the first invoke also initialises the function
		resp, err := http.Post(endpoint+testenv.RIEInvokePath, "application/json", strings.NewReader(`{"n":1}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("invoke %d: %s %s", i, resp.Status, body)
		}
		var got struct {
			Event     json.RawMessage `json:"event"`
			Function  string          `json:"function"`
			Extra     string          `json:"extra"`
			RequestID string          `json:"request_id"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("invoke %d: %v: %s", i, err, body)
		}
		if string(got.Event) != `{"n":1}` || got.Function != "echo" || got.Extra != "from-env" || got.RequestID == "" {
			t.Errorf("invoke %d: %s", i, body)
		}
	}
}
