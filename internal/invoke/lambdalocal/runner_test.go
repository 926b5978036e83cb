package lambdalocal_test

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/invoke/lambdalocal"
)

// requireInterpreters fails, never skips: python3 and node are part of the
// machine the tests run on (docs/handlers.md).
func requireInterpreters(t *testing.T) {
	t.Helper()
	for _, c := range []string{"python3", "node"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s is not on PATH: the Python and Node.js handler tests need python3 (3.11+) and node (20+) installed", c)
		}
	}
}

func testFunctions(t *testing.T) lambdalocal.Functions {
	t.Helper()
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	fns := lambdalocal.Functions{}
	for lang, rt := range map[string]string{"python": "python3.11", "node": "nodejs20.x"} {
		for _, h := range []string{"ok", "handled", "raises", "sleeps", "crashes", "not_json", "notJson", "huge", "returns_none",
			"returnsUndefined", "callback", "callbackError", "sync", "not_callable", "notAFunction", "missing", "leaves_child", "big"} {
			fns[lang+"-"+h] = lambdalocal.Function{Name: lang + "-" + h, Runtime: rt, Language: map[string]string{"python": lambdalocal.Python, "node": lambdalocal.Node}[lang],
				Dir: filepath.Join(dir, lang), Handler: "cases." + h, MemoryMB: 256, Environment: map[string]string{"GREETING": "hi"}}
		}
	}
	fns["python-import"] = lambdalocal.Function{Name: "python-import", Language: lambdalocal.Python, Dir: filepath.Join(dir, "python"), Handler: "broken.handler", MemoryMB: 128}
	fns["node-import"] = lambdalocal.Function{Name: "node-import", Language: lambdalocal.Node, Dir: filepath.Join(dir, "node"), Handler: "nope.handler", MemoryMB: 128}
	return fns
}

// Each outcome of a handler maps to what Lambda reports
// (docs/handlers.md, "Failures").
func TestRunOutcomes(t *testing.T) {
	t.Parallel()
	requireInterpreters(t)
	r := lambdalocal.New(testFunctions(t))
	event := []byte(`{"x":"payload","tasker":{"step":"s"}}`)
	cases := []struct {
		fn        string
		deadline  time.Duration
		wantRes   string // substring of the result, when it succeeds
		wantType  string // Lambda errorType, when it fails
		wantInMsg string
	}{
		{fn: "python-ok", wantRes: `"echo": "payload"`},
		{fn: "node-ok", wantRes: `"echo":"payload"`},
		{fn: "node-callback", wantRes: `"style":"callback"`},
		{fn: "node-sync", wantRes: `"style":"sync"`},
		{fn: "python-handled", wantRes: `"tasker_error"`},
		{fn: "node-handled", wantRes: `"tasker_error"`},
		{fn: "python-returns_none", wantRes: `null`},
		{fn: "python-leaves_child", deadline: 20 * time.Second, wantRes: `"done"`},
		{fn: "node-returnsUndefined", wantRes: `null`},
		{fn: "python-raises", wantType: "PaymentDeclined", wantInMsg: "card declined"},
		{fn: "node-raises", wantType: "PaymentDeclined", wantInMsg: "card declined"},
		{fn: "node-callbackError", wantType: "TypeError", wantInMsg: "bad input"},
		{fn: "python-sleeps", deadline: time.Second, wantType: lambdalocal.ErrorTimeout, wantInMsg: "Task timed out after"},
		{fn: "node-sleeps", deadline: time.Second, wantType: lambdalocal.ErrorTimeout, wantInMsg: "Task timed out after"},
		{fn: "python-crashes", wantType: lambdalocal.ErrorExit, wantInMsg: "exit status 3"},
		{fn: "node-crashes", wantType: lambdalocal.ErrorExit, wantInMsg: "about to crash"},
		{fn: "python-not_json", wantType: lambdalocal.ErrorMarshal, wantInMsg: "Unable to marshal response"},
		{fn: "node-notJson", wantType: lambdalocal.ErrorMarshal, wantInMsg: "BigInt"},
		{fn: "python-huge", wantType: lambdalocal.ErrorResponseSize},
		{fn: "node-huge", wantType: lambdalocal.ErrorResponseSize},
		{fn: "python-not_callable", wantType: "Runtime.HandlerNotFound"},
		{fn: "node-notAFunction", wantType: "Runtime.HandlerNotFound"},
		{fn: "python-missing", wantType: "Runtime.HandlerNotFound"},
		{fn: "python-import", wantType: "Runtime.ImportModuleError", wantInMsg: "this_module_does_not_exist"},
		{fn: "node-import", wantType: "Runtime.ImportModuleError", wantInMsg: "nope"},
	}
	for _, c := range cases {
		t.Run(c.fn, func(t *testing.T) {
			t.Parallel()
			fn, ok := r.Lookup("lambda:" + c.fn)
			if !ok {
				t.Fatalf("no function %s", c.fn)
			}
			d := c.deadline
			if d == 0 {
				d = time.Minute // generous: the machine may be loaded
			}
			res, err := r.Run(context.Background(), fn, event, time.Now().Add(d))
			if err != nil {
				t.Fatal(err)
			}
			if c.wantType == "" {
				if res.Error != nil {
					t.Fatalf("error %+v, want result containing %s", res.Error, c.wantRes)
				}
				if !json.Valid(res.Response) || !strings.Contains(string(res.Response), c.wantRes) {
					t.Fatalf("result %.300s, want valid JSON containing %s", res.Response, c.wantRes)
				}
				return
			}
			if res.Error == nil {
				t.Fatalf("result %.300s, want error %s", res.Response, c.wantType)
			}
			if res.Error.ErrorType != c.wantType || !strings.Contains(res.Error.ErrorMessage, c.wantInMsg) {
				t.Fatalf("error %s: %s, want %s containing %q", res.Error.ErrorType, res.Error.ErrorMessage, c.wantType, c.wantInMsg)
			}
		})
	}
}

// The context object carries what Lambda's does.
func TestRunContext(t *testing.T) {
	t.Parallel()
	requireInterpreters(t)
	r := lambdalocal.New(testFunctions(t))
	for _, name := range []string{"python-ok", "node-ok"} {
		res, unhandled, found, err := r.RunHandler(context.Background(), "arn:aws:lambda:eu-west-1:123456789012:function:"+name, []byte(`{"x":1}`), time.Now().Add(time.Minute))
		if err != nil || !found || unhandled != nil {
			t.Fatalf("%s: found %v, unhandled %+v, err %v", name, found, unhandled, err)
		}
		var got struct {
			RequestID   string `json:"request_id"`
			Function    string `json:"function"`
			RemainingOK bool   `json:"remaining_ok"`
			Memory      string `json:"memory"`
			ARN         string `json:"arn"`
			Env         string `json:"env"`
		}
		if err := json.Unmarshal(res, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.RequestID) != 36 || got.Function != name || !got.RemainingOK || got.Memory != "256" ||
			!strings.HasSuffix(got.ARN, ":function:"+name) || got.Env != "hi" {
			t.Fatalf("%s: context seen %+v", name, got)
		}
	}
	if _, _, found, _ := r.RunHandler(context.Background(), "lambda:unknown", nil, time.Now()); found {
		t.Fatal("an unmapped function was found")
	}
}

// Stopping the server kills the function and reports no outcome.
func TestRunCancelled(t *testing.T) {
	t.Parallel()
	requireInterpreters(t)
	r := lambdalocal.New(testFunctions(t))
	fn, _ := r.Lookup("lambda:node-sleeps")
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	if _, err := r.Run(ctx, fn, []byte(`{}`), time.Now().Add(time.Minute)); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// The prepare hook rewrites the event before the function sees it.
func TestRunPrepare(t *testing.T) {
	t.Parallel()
	requireInterpreters(t)
	r := lambdalocal.New(testFunctions(t), lambdalocal.WithPrepare(func(_ context.Context, _ lambdalocal.Function, ev []byte) ([]byte, error) {
		if strings.Contains(string(ev), "fail") {
			return nil, errors.New("cannot resolve")
		}
		return []byte(`{"x":"prepared"}`), nil
	}))
	fn, _ := r.Lookup("lambda:python-ok")
	res, err := r.Run(context.Background(), fn, []byte(`{"x":"raw"}`), time.Now().Add(time.Minute))
	if err != nil || !strings.Contains(string(res.Response), `"prepared"`) {
		t.Fatalf("res %s, err %v", res.Response, err)
	}
	res, _ = r.Run(context.Background(), fn, []byte(`{"x":"fail"}`), time.Now().Add(time.Minute))
	if res.Error == nil || res.Error.ErrorType != "Tasker.PrepareError" {
		t.Fatalf("res %+v", res)
	}
}

func TestCheckInterpreters(t *testing.T) {
	t.Parallel()
	r := lambdalocal.New(testFunctions(t), lambdalocal.WithInterpreters("/nonexistent/python3", "/nonexistent/node"))
	err := r.Check()
	if !errors.Is(err, lambdalocal.ErrNoRuntime) || !strings.Contains(err.Error(), "/nonexistent/python3 (for python-") ||
		!strings.Contains(err.Error(), lambdalocal.EnvNode) {
		t.Fatalf("Check = %v", err)
	}
	requireInterpreters(t)
	if err := lambdalocal.New(testFunctions(t)).Check(); err != nil {
		t.Fatal(err)
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	base, _ := filepath.Abs("testdata")
	fns, err := lambdalocal.Parse("l.yaml", []byte(`
price: {runtime: python3.11, path: python, handler: cases.ok, timeout: 10, environment: {A: b}}
confirm: {runtime: nodejs20.x, path: node, handler: sub/cases.ok}
`), base)
	if err != nil {
		t.Fatal(err)
	}
	if p := fns["price"]; p.Language != lambdalocal.Python || p.Dir != filepath.Join(base, "python") || p.TimeoutSeconds != 10 || p.MemoryMB != 128 || p.Environment["A"] != "b" {
		t.Fatalf("price = %+v", p)
	}
	if c := fns["confirm"]; c.Language != lambdalocal.Node || c.Handler != "sub/cases.ok" {
		t.Fatalf("confirm = %+v", c)
	}
	_, err = lambdalocal.Parse("l.yaml", []byte(`
a: {runtime: ruby3.3, path: python, handler: x.y}
b: {runtime: python, path: nowhere, handler: nodot}
c: {runtime: node, path: node, handler: x.y, timeout: 901, color: red}
`), base)
	for _, want := range []string{"field color not found"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want %q", err, want)
		}
	}
	_, err = lambdalocal.Parse("l.yaml", []byte(`
a: {runtime: ruby3.3, path: python, handler: x.y}
b: {runtime: python, path: nowhere, handler: nodot}
c: {runtime: node, path: node, handler: x.y, timeout: 901}
d: {path: node}
`), base)
	for _, want := range []string{`function "a": runtime: "ruby3.3" is not supported`, `function "b": path:`, `function "b": handler: "nodot"`,
		`function "c": timeout: 901`, `function "d": runtime: missing`, `function "d": handler: missing`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
	if got := lambdalocal.FunctionName("lambda:price:live"); got != "price" {
		t.Errorf("FunctionName = %q", got)
	}
}
