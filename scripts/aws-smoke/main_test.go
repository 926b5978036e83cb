package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/apiclient"
	"github.com/taskerhq/tasker/internal/auth"
	"github.com/taskerhq/tasker/internal/devserver"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/internal/testenv"
	"github.com/taskerhq/tasker/sdk"
	"github.com/taskerhq/tasker/templates"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestParseArgs(t *testing.T) {
	t.Parallel()
	o, err := parseArgs([]string{"--stack", "s1", "--region", "eu-west-1", "--parameter", "DatabaseUrl=postgres://u:p@h/db?x=1", "--parameter", "LogLevel=debug", "--keep"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := options{Stack: "s1", Region: "eu-west-1", Repo: ".", Params: []string{"DatabaseUrl=postgres://u:p@h/db?x=1", "LogLevel=debug"}, Keep: true, Timeout: 10 * time.Minute}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("parsed %+v, want %+v", o, want)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--region", "r"}, "--stack is required"},
		{[]string{"--stack", "s"}, "--region is required"},
		{[]string{"--stack", "s", "--region", "r", "--parameter", "NoValue"}, "is not Name=Value"},
		{[]string{"--stack", "s", "--region", "r", "--parameter", "=v"}, "is not Name=Value"},
		{[]string{"--stack", "s", "--region", "r", "extra"}, "unexpected arguments"},
		{[]string{"--stack", "s", "--region", "r", "--timeout", "0s"}, "--timeout must be positive"},
	} {
		if _, err := parseArgs(c.args, io.Discard); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.args, err, c.want)
		}
	}
}

func TestDeployArgs(t *testing.T) {
	t.Parallel()
	got := deployArgs(options{Stack: "s1", Region: "us-east-1", Params: []string{"CreateDatabase=true", "SubnetIds=subnet-1,subnet-2"}}, "20260101T000000Z")
	want := []string{"deploy", "--stack-name", "s1", "--region", "us-east-1", "--capabilities", "CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND",
		"--resolve-s3", "--no-confirm-changeset", "--no-fail-on-empty-changeset", "--parameter-overrides",
		"DeployId=20260101T000000Z", "CreateDatabase=true", "SubnetIds=subnet-1,subnet-2"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("deploy args\n%q\nwant\n%q", got, want)
	}
}

// describeStacks is the shape `aws cloudformation describe-stacks
// --output json` prints.
const describeStacks = `{"Stacks":[{"StackId":"arn:aws:cloudformation:eu-west-1:123456789012:stack/s1/0b1c","StackName":"s1",
"StackStatus":"%s","Outputs":[
{"OutputKey":"ApiUrl","OutputValue":"https://abc123.execute-api.eu-west-1.amazonaws.com","Description":"Base URL"},
{"OutputKey":"ApiTokenSecretArn","OutputValue":"arn:aws:secretsmanager:eu-west-1:123456789012:secret:ApiTokenSecret-x1"},
{"OutputKey":"SchemaVersion","OutputValue":"0010"}]}]}`

func TestStackOutputs(t *testing.T) {
	t.Parallel()
	out, err := stackOutputs([]byte(strings.Replace(describeStacks, "%s", "CREATE_COMPLETE", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if out["ApiUrl"] != "https://abc123.execute-api.eu-west-1.amazonaws.com" || out["SchemaVersion"] != "0010" {
		t.Errorf("outputs %v", out)
	}
	if _, err := stackOutputs([]byte(strings.Replace(describeStacks, "%s", "ROLLBACK_COMPLETE", 1))); err == nil || !strings.Contains(err.Error(), "ROLLBACK_COMPLETE") {
		t.Errorf("rolled-back stack: %v", err)
	}
	noSecret := strings.Replace(strings.Replace(describeStacks, "%s", "UPDATE_COMPLETE", 1), "ApiTokenSecretArn", "Other", 1)
	if _, err := stackOutputs([]byte(noSecret)); err == nil || !strings.Contains(err.Error(), "ApiTokenSecretArn") {
		t.Errorf("no secret output: %v", err)
	}
	if _, err := stackOutputs([]byte(`{"Stacks":[]}`)); err == nil {
		t.Error("no stack: no error")
	}
}

func TestAlarmsFiring(t *testing.T) {
	t.Parallel()
	// The shape `aws cloudwatch describe-alarms --output json` prints.
	const describe = `{"MetricAlarms":[
{"AlarmName":"s1-SchedulerDeadLetterAlarm-1AB2","StateValue":"OK","StateReason":"Threshold Crossed"},
{"AlarmName":"s1-HandlersThrottlesAlarm-3CD4","StateValue":"ALARM","StateReason":"Threshold Crossed: 1 datapoint [3.0] was >= 1.0"},
{"AlarmName":"s1-ApiErrorsAlarm-5EF6","StateValue":"INSUFFICIENT_DATA","StateReason":"Unchecked: Initial alarm creation"},
{"AlarmName":"s10-ApiErrorsAlarm-7GH8","StateValue":"ALARM","StateReason":"another stack"}],"CompositeAlarms":[]}`
	firing, seen, err := alarmsFiring([]byte(describe), "s1")
	if err != nil {
		t.Fatal(err)
	}
	if seen != 3 || len(firing) != 1 || !strings.HasPrefix(firing[0], "s1-HandlersThrottlesAlarm-3CD4: Threshold Crossed") {
		t.Errorf("seen %d, firing %q", seen, firing)
	}
	if _, _, err := alarmsFiring([]byte("not json"), "s1"); err == nil {
		t.Error("bad JSON: no error")
	}
}

// TestRunWorkflow runs the smoke test's API part against a real local
// Tasker (devserver: API, scheduler and the example handlers on a real
// PostgreSQL) that checks tokens signed the way the smoke test signs them.
func TestRunWorkflow(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	secret := strings.Repeat("s3cr3t-", 8)
	v, err := auth.New(ctx, auth.Config{HS256Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	reg := sdk.NewRegistry()
	if err := examples.Register(reg); err != nil {
		t.Fatal(err)
	}
	srv, err := devserver.Start(ctx, devserver.Options{DatabaseURL: pgtest.URL(t), Templates: templates.FS, Registry: reg,
		Addr: "127.0.0.1:0", Auth: v, SweepInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		if err := srv.Close(cctx); err != nil {
			t.Error(err)
		}
	})
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	order, err := os.ReadFile(filepath.Join(root, "examples", "order.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The secret as `aws secretsmanager get-secret-value --output text` prints it.
	tok, err := token(secret+"\n", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, err := apiclient.New(srv.Addr, tok)
	if err != nil {
		t.Fatal(err)
	}
	id, err := runWorkflow(ctx, c, json.RawMessage(order), 100*time.Millisecond)
	if err != nil {
		t.Fatalf("workflow: %v", err)
	}
	if id == "" {
		t.Error("no task id")
	}

	// A wrong token is an error, not a hang.
	bad, _ := apiclient.New(srv.Addr, "not-a-token")
	if _, err := runWorkflow(ctx, bad, json.RawMessage(order), 100*time.Millisecond); err == nil {
		t.Error("unauthenticated workflow: no error")
	}
}
