package testenv_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/internal/testenv"
)

func TestEnvVar(t *testing.T) {
	t.Parallel()
	if got := testenv.Goaws.EnvVar(); got != "TASKER_GOAWS_BIN" {
		t.Errorf("goaws: %s", got)
	}
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

func TestGoawsStarts(t *testing.T) {
	t.Parallel()
	endpoint := testenv.StartGoawsWith(t, testenv.GoawsOptions{Queues: []string{"preset"}})
	if !strings.HasPrefix(endpoint, "http://127.0.0.1:") {
		t.Errorf("endpoint %s is not on loopback", endpoint)
	}
	// The preset queue exists: ask for its URL over the query protocol.
	resp, err := http.PostForm(endpoint, map[string][]string{"Action": {"GetQueueUrl"}, "QueueName": {"preset"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	want := endpoint + "/" + testenv.GoawsAccountID + "/preset"
	if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
		t.Errorf("GetQueueUrl: %s %s; want the URL %s", resp.Status, body, want)
	}
}

func TestTwoGoawsInParallel(t *testing.T) {
	t.Parallel()
	a, b := testenv.StartGoaws(t), testenv.StartGoaws(t)
	if a == b {
		t.Fatalf("two servers on one endpoint %s", a)
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
