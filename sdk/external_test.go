package sdk_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/testenv"
	"github.com/taskerhq/tasker/sdk/contract"
)

// A handler written in a module of its own, which depends on Tasker only
// through the public SDK (a replace directive points at this checkout),
// passes its own sdktest tests, builds as a Lambda function and answers
// under the Lambda Runtime Interface Emulator as the engine expects.
func TestExternalModuleUnderLambdaEmulator(t *testing.T) {
	t.Parallel()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sum, err := os.ReadFile(filepath.Join(repo, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"go.mod": "module example.com/billing\n\ngo 1.26\n\nrequire (\n\tgithub.com/aws/aws-lambda-go v1.55.1\n\tgithub.com/taskerhq/tasker v0.0.0\n)\n\nreplace github.com/taskerhq/tasker => " + repo + "\n",
		"go.sum": string(sum),
		"main.go": `package main

import (
	"context"
	"errors"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/taskerhq/tasker/sdk"
)

// Charge charges the order in the task context once per idempotency key.
func Charge(ctx context.Context, in sdk.Input) (any, error) {
	var order struct {
		Amount int ` + "`json:\"amount\"`" + `
	}
	if err := in.Context(&order); err != nil {
		return nil, sdk.Permanent(err)
	}
	if order.Amount <= 0 {
		return nil, sdk.Permanent(sdk.WithCode(errors.New("nothing to charge"), "empty_order"))
	}
	sdk.Logger(ctx).InfoContext(ctx, "charging", "amount", order.Amount)
	return map[string]any{"charged": order.Amount, "key": in.IdempotencyKey(), "attempt": in.Attempt()}, nil
}

func main() { lambda.Start(sdk.HandlerFunction(Charge)) }
`,
		"main_test.go": `package main

import (
	"testing"

	"github.com/taskerhq/tasker/sdk/sdktest"
)

func TestCharge(t *testing.T) {
	sdktest.Run(t, Charge, sdktest.Invocation{Context: map[string]any{"amount": 0}}).AssertFailure(t, true, "empty_order")
	var got struct{ Charged int }
	sdktest.Run(t, Charge, sdktest.Invocation{Context: map[string]any{"amount": 5}}).AssertOK(t, &got)
	if got.Charged != 5 {
		t.Fatalf("charged %d", got.Charged)
	}
}
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the external module: %v", err)
	}
	goRun := func(args ...string) {
		t.Helper()
		cmd := exec.Command(gobin, args...)
		cmd.Dir = dir
		// -mod=mod lets go complete the module's requirements from the
		// module cache, as a user's first build would.
		cmd.Env = append(os.Environ(), "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -mod=mod"), "GOWORK=off",
			"GOTOOLCHAIN=local", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	goRun("test", "./...")
	bootstrap := filepath.Join(dir, "bootstrap")
	goRun("build", "-tags", "lambda.norpc", "-o", bootstrap, ".")

	endpoint := testenv.StartRIE(t, testenv.RIEOptions{Bootstrap: []string{bootstrap}, FunctionName: "billing-charge",
		Env: map[string]string{"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}})
	invoke := func(payload contract.Payload) json.RawMessage {
		t.Helper()
		body, err := json.Marshal(payload)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post(endpoint+testenv.RIEInvokePath, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("emulator answered %d: %s (%v)", resp.StatusCode, b, err)
		}
		return b
	}
	taskID := uuid.MustParse("0190a9b2-7c1d-7a3e-9f10-2b3c4d5e6f70")
	meta := contract.Meta{Version: contract.PayloadVersion, TaskID: taskID, Step: "charge", Handler: "lambda:billing-charge",
		Attempt: 2, MaxAttempts: 3, IdempotencyKey: contract.IdempotencyKey(taskID, "charge", 0),
		Deadline: time.Now().Add(time.Minute).UTC()}

	var got struct {
		Charged int    `json:"charged"`
		Key     string `json:"key"`
		Attempt int    `json:"attempt"`
	}
	ok := invoke(contract.Payload{Tasker: meta, Context: json.RawMessage(`{"amount":42}`)})
	if err := json.Unmarshal(ok, &got); err != nil || got.Charged != 42 || got.Key != taskID.String()+"/charge" || got.Attempt != 2 {
		t.Fatalf("result %s (%v)", ok, err)
	}
	failed := invoke(contract.Payload{Tasker: meta, Context: json.RawMessage(`{"amount":0}`)})
	he, isErr := contract.AsHandlerError(failed)
	if !isErr || !he.Permanent || he.Code != "empty_order" {
		t.Fatalf("failure %s", failed)
	}
}
