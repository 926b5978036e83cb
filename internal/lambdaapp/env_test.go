package lambdaapp_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/lambdaapp"
	"github.com/taskerhq/tasker/internal/lambdaapp/lambdatest"
)

func allFunctions() []lambdaapp.Function {
	return []lambdaapp.Function{lambdaapp.API, lambdaapp.Scheduler, lambdaapp.Trigger, lambdaapp.Migrate, lambdaapp.Handlers(examples.Register)}
}

// TestFunctionsReadOnlyDeclaredEnvironment sets every function up (and
// runs the migrator) with a recording environment for each database
// source, and checks that every variable read is declared in the
// function's Env, which the template test checks against template.yaml.
func TestFunctionsReadOnlyDeclaredEnvironment(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	srv := lambdatest.NewCFNServer(t)
	secret := `{"username":"u","password":"p","host":"127.0.0.1","port":1,"dbname":"d","engine":"postgres"}`
	sources := map[string]env{
		"url":    {"DATABASE_URL": "postgres://u:p@127.0.0.1:1/d?connect_timeout=1"},
		"secret": {"TASKER_DB_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:db", "TASKER_DB_HOST": "127.0.0.1", "TASKER_DB_PORT": "1", "TASKER_DB_PROXY": "true"},
		"iam":    {"TASKER_DB_IAM": "true", "TASKER_DB_HOST": "127.0.0.1", "TASKER_DB_PORT": "1", "TASKER_DB_USER": "u", "TASKER_DB_NAME": "d", "TASKER_DB_SSLMODE": "disable"},
	}
	for _, f := range allFunctions() {
		declared := map[string]bool{}
		for _, v := range f.Env {
			declared[v.Name] = true
		}
		for name, src := range sources {
			e := env{
				"LOG_LEVEL": "debug", "TASKER_SCHEDULER_QUEUE_URL": w.queueURL, "TASKER_HANDLERS_FUNCTION": "h",
				"TASKER_MAX_IN_FLIGHT": "100", "TASKER_EVENT_BUS": "bus", "TASKER_AUTH_HS256_SECRET": hsSecret,
				"TASKER_DB_MAX_CONNS": "3", "AWS_LAMBDA_FUNCTION_NAME": "fn",
			}
			for k, v := range src {
				e[k] = v
			}
			rec := &recorder{env: e}
			d := w.deps(e)
			d.Getenv = rec.get
			d.GetSecret = func(context.Context, string) (string, error) { return secret, nil }
			// The migrator retries the unreachable database: no real pauses.
			d.Sleep = func(context.Context, time.Duration) error { return nil }
			h, err := f.Handler(context.Background(), d)
			if err != nil {
				t.Fatalf("%s with %s: %v", f.Name, name, err)
			}
			if f.Name == "migrate" {
				cr := h.(cfnHandler)
				if _, err := cr(ctxFor(t), cfnEvent(t, "Create", srv.URL, "")); err != nil {
					t.Fatal(err)
				}
			}
			var extra []string
			for k := range rec.read {
				if !declared[k] {
					extra = append(extra, k)
				}
			}
			sort.Strings(extra)
			if len(extra) > 0 {
				t.Errorf("%s (%s) reads %v, not declared in its Env", f.Name, name, extra)
			}
		}
	}
}

func TestMissingEnvironmentIsReported(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	e := w.env()
	delete(e, "TASKER_HANDLERS_FUNCTION")
	delete(e, "DATABASE_URL")
	_, err := lambdaapp.Scheduler.Handler(context.Background(), w.deps(e))
	if err == nil || !strings.Contains(err.Error(), "TASKER_HANDLERS_FUNCTION") ||
		!strings.Contains(err.Error(), "one of DATABASE_URL, TASKER_DB_SECRET_ARN, TASKER_DB_IAM") {
		t.Errorf("scheduler without its environment: %v", err)
	}
	e = w.env()
	delete(e, "TASKER_SCHEDULER_QUEUE_URL")
	if _, err := lambdaapp.Trigger.Handler(context.Background(), w.deps(e)); err == nil || !strings.Contains(err.Error(), "TASKER_SCHEDULER_QUEUE_URL") {
		t.Errorf("trigger without a queue: %v", err)
	}
	e = w.env()
	e["TASKER_MAX_IN_FLIGHT"] = "lots"
	if _, err := lambdaapp.Scheduler.Handler(context.Background(), w.deps(e)); err == nil || !strings.Contains(err.Error(), "TASKER_MAX_IN_FLIGHT") {
		t.Errorf("bad TASKER_MAX_IN_FLIGHT: %v", err)
	}
	// Every function declares the variables it requires.
	for _, f := range allFunctions() {
		for _, v := range f.Env {
			if v.Name == "" || (v.Required && v.Group != "") {
				t.Errorf("%s: bad declaration %+v", f.Name, v)
			}
		}
	}
}

func TestTemplatesDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	doc := "namespace: mine\nname: only\nversion: 1.0.0\nsteps: [{name: a, handler: tasker.noop}]\n"
	if err := os.WriteFile(filepath.Join(dir, "only.yaml"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := lambdaapp.LoadTemplates(env{"TASKER_TEMPLATES_DIR": dir}.get)
	if err != nil || set.Len() != 1 || set.List()[0].Key() != "mine/only@1.0.0" {
		t.Fatalf("dir templates: %v, %v", set, err)
	}
	embedded, err := lambdaapp.LoadTemplates(env{}.get)
	if err != nil || embedded.Len() < 4 {
		t.Fatalf("embedded templates: %d, %v", embedded.Len(), err)
	}
	if _, err := lambdaapp.LoadTemplates(env{"TASKER_TEMPLATES_DIR": filepath.Join(dir, "missing")}.get); err == nil {
		t.Error("a missing templates directory loaded")
	}
}

func TestLogger(t *testing.T) {
	t.Parallel()
	var buf logBuffer
	log := lambdaapp.NewLogger(&buf, env{"LOG_LEVEL": "warn"}.get)
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-42"})
	log.InfoContext(ctx, "hidden")
	log.WarnContext(ctx, "shown", "k", 1)
	recs := buf.records(t)
	if len(recs) != 1 || recs[0]["msg"] != "shown" || recs[0]["aws_request_id"] != "req-42" || recs[0]["level"] != "WARN" {
		t.Errorf("records %v", recs)
	}
	var bad logBuffer
	log = lambdaapp.NewLogger(&bad, env{"LOG_LEVEL": "loud"}.get)
	log.Info("still info")
	if !strings.Contains(bad.String(), "still info") {
		t.Errorf("log %s", bad.String())
	}
	if !log.Enabled(context.Background(), slog.LevelInfo) || log.Enabled(context.Background(), slog.LevelDebug) {
		t.Error("an invalid level is not info")
	}
}

// TestHandlersFunction runs the handlers function, set up as in Lambda:
// built-ins and examples answer, an unknown handler is a permanent error
// envelope (never a Lambda error), and unhosted template handlers are
// reported at setup.
func TestHandlersFunction(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	doc := "namespace: mine\nname: w\nversion: 1.0.0\nsteps: [{name: a, handler: ecommerce.validate_order}, {name: b, handler: mine.unhosted}]\n"
	if err := os.WriteFile(filepath.Join(dir, "w.yaml"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	h := handlerOf[func(context.Context, json.RawMessage) (json.RawMessage, error)](t, lambdaapp.Handlers(examples.Register),
		lambdaapp.Deps{Getenv: env{"TASKER_TEMPLATES_DIR": dir}.get, Logs: &logs})
	payload := func(handler string, ctx string) json.RawMessage {
		b, _ := json.Marshal(contract.Payload{
			Tasker:  contract.Meta{Version: 1, Step: "s", Handler: handler, Attempt: 1, MaxAttempts: 3},
			Context: json.RawMessage(ctx), Config: json.RawMessage(`{}`),
		})
		return b
	}
	out, err := h(context.Background(), payload("tasker.noop", `{}`))
	if err != nil || string(out) != `{}` {
		t.Errorf("noop: %s %v", out, err)
	}
	out, err = h(context.Background(), payload("ecommerce.validate_order", string(orderContext(t))))
	if he, isErr := contract.AsHandlerError(out); err != nil || isErr {
		t.Errorf("validate_order: %s %v %v", out, he, err)
	}
	out, err = h(context.Background(), payload("nobody.here", `{}`))
	he, isErr := contract.AsHandlerError(out)
	if err != nil || !isErr || !he.Permanent {
		t.Errorf("unknown handler: %s %v", out, err)
	}
	if !strings.Contains(logs.String(), `"msg":"step handlers ready"`) {
		t.Errorf("no ready line:\n%s", logs.String())
	}
	var unhosted []string
	emf := false
	for _, rec := range logs.records(t) {
		msg, _ := rec["msg"].(string)
		if h, ok := rec["handler"].(string); ok && strings.Contains(msg, "does not host") {
			unhosted = append(unhosted, h)
		}
		if _, ok := rec["_aws"]; ok && rec["tasker_handler_executions_total"] != nil {
			emf = true
		}
	}
	if len(unhosted) != 1 || unhosted[0] != "mine.unhosted" {
		t.Errorf("unhosted handlers reported: %v", unhosted)
	}
	if !emf {
		t.Errorf("no EMF line with the handler metrics:\n%s", logs.String())
	}
}

// TestInvalidConfigurationIsASetupError: an invalid value is a start-up
// error naming the variable and the accepted values, never a silent
// default (issue 14); the migrator reports it to CloudFormation.
func TestInvalidConfigurationIsASetupError(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := ctxFor(t)
	for _, tc := range []struct {
		fn         lambdaapp.Function
		name, v    string
		wantSubstr string
	}{
		{lambdaapp.Scheduler, "LOG_LEVEL", "loud", `LOG_LEVEL="loud": want one of debug, info, warn, error`},
		{lambdaapp.Trigger, "LOG_LEVEL", "warning", `LOG_LEVEL="warning": want one of debug, info, warn, error`},
		{lambdaapp.API, "LOG_LEVEL", "info+4", `LOG_LEVEL="info+4"`},
		{lambdaapp.Handlers(examples.Register), "LOG_LEVEL", "verbose", `LOG_LEVEL="verbose"`},
		{lambdaapp.Scheduler, "TASKER_MAX_IN_FLIGHT", "-3", `TASKER_MAX_IN_FLIGHT="-3": want an integer from 0 to 100000`},
		{lambdaapp.Trigger, "TASKER_MAX_IN_FLIGHT", "1e6", `TASKER_MAX_IN_FLIGHT="1e6": want an integer from 0 to 100000`},
		{lambdaapp.Scheduler, "TASKER_INVOKE_MAX_PAYLOAD_BYTES", "0", `TASKER_INVOKE_MAX_PAYLOAD_BYTES="0": want an integer from 1 to 6291456`},
		{lambdaapp.Scheduler, "TASKER_DB_MAX_CONNS", "-1", `TASKER_DB_MAX_CONNS="-1": want an integer from 1 to`},
		{lambdaapp.Scheduler, "TASKER_DB_MAX_CONN_IDLE_TIME", "forever", `TASKER_DB_MAX_CONN_IDLE_TIME="forever": want a duration`},
		{lambdaapp.API, "TASKER_AUTH_DISABLED", "yes", `TASKER_AUTH_DISABLED="yes": want true or false`},
		{lambdaapp.API, "TASKER_AUTH_MAX_TOKEN_LIFETIME", "0", `TASKER_AUTH_MAX_TOKEN_LIFETIME="0": want a duration`},
		{lambdaapp.Handlers(examples.Register), "TASKER_HTTP_DENY_PRIVATE", "no", `TASKER_HTTP_DENY_PRIVATE="no": want true or false`},
	} {
		e := w.env()
		if tc.fn.Name == "api" && tc.name != "TASKER_AUTH_DISABLED" {
			e["TASKER_AUTH_HS256_SECRET"] = hsSecret
		}
		e[tc.name] = tc.v
		_, err := tc.fn.Handler(ctx, w.deps(e))
		if err == nil || !strings.Contains(err.Error(), tc.wantSubstr) {
			t.Errorf("%s with %s=%q: err = %v; want it to contain %q", tc.fn.Name, tc.name, tc.v, err, tc.wantSubstr)
		}
	}

	// The migrator answers CloudFormation with the error.
	srv := lambdatest.NewCFNServer(t)
	e := w.env()
	e["LOG_LEVEL"] = "loud"
	cr := handlerOf[cfnHandler](t, lambdaapp.Migrate, w.deps(e))
	if _, err := cr(ctx, cfnEvent(t, "Create", srv.URL, "")); err != nil {
		t.Fatal(err)
	}
	if b := lastResponse(t, srv); b["Status"] != "FAILED" || !strings.Contains(b["Reason"].(string), `LOG_LEVEL="loud"`) {
		t.Errorf("migrate with LOG_LEVEL=loud answered %v", b)
	}
}
