package scaffold

import (
	"fmt"
	"strings"
	texttemplate "text/template"
)

// The files tasker new writes.

var funcs = texttemplate.FuncMap{
	"quote": func(s string) string { return fmt.Sprintf("%q", s) },
	// register is the Registry method for a handler name: a step deployed
	// as its own function is named "lambda:<function>".
	"register": func(handler string) string {
		if strings.HasPrefix(handler, "lambda:") {
			return "RegisterFunction"
		}
		return "Register"
	},
}

var yamlTemplate = texttemplate.Must(texttemplate.New("template.yaml").Funcs(funcs).Parse(`# {{.Namespace}}/{{.Name}}, scaffolded by ` + "`tasker new`" + `.
#
#   {{range $i, $s := .Steps}}{{if $i}} ─ {{end}}{{$s.Name}}{{end}}
#
{{- if .Function}}
# Each step runs its Go handler in handlers/{{.Package}}/ in a Lambda function
# of its own, lambda:tasker-{{.Namespace}}-<step> (template.yaml, functions/).
{{- else}}
# Each step runs the Go handler "{{.Namespace}}.<step>" in handlers/{{.Package}}/.
{{- end}}
# Describe the task context in context_schema: tasks whose context does not
# match are refused when they are created.
namespace: {{.Namespace}}
name: {{.Name}}
version: 0.1.0
description: TODO say what {{.Namespace}}/{{.Name}} does

context_schema:
  type: object
  required: [id]
  properties:
    id:
      type: string
      minLength: 1
      description: TODO what this workflow works on (an order id, a customer id…)

steps:
{{- range .Steps}}
  - name: {{.Name}}
    description: TODO
    handler: {{.Handler}}
{{- if .Parent}}
    depends_on: [{{.Parent.Name}}]
{{- end}}
    retry: {max_attempts: 3, backoff_base_seconds: 1, max_backoff_seconds: 60}
    timeout_seconds: 60
{{end}}`))

var registerTemplate = texttemplate.Must(texttemplate.New("register.go").Funcs(funcs).Parse(`// Package {{.Package}} holds the Go step handlers of the {{.Namespace}} workflows
// (scaffolded by ` + "`tasker new`" + `; edit freely).
package {{.Package}}

import (
	"fmt"

	"github.com/taskerhq/tasker/sdk"
)

// Register adds the {{.Namespace}} handlers to reg. handlers/registry_gen.go
// calls it, so ` + "`tasker dev`" + ` hosts them.
func Register(reg *sdk.Registry) error {
	for _, h := range []struct {
		name string
		fn   sdk.Handler
	}{
{{- range .Steps}}
		{ {{quote .Handler}}, {{.Func}} },
{{- end}}
	} {
		if err := reg.{{if .Function}}RegisterFunction{{else}}Register{{end}}(h.name, h.fn); err != nil {
			return fmt.Errorf("{{.Package}}: %w", err)
		}
	}
	return nil
}
`))

var stepTemplate = texttemplate.Must(texttemplate.New("step.go").Funcs(funcs).Parse(`package {{.Package}}

import (
	"context"
	"errors"

	"github.com/taskerhq/tasker/sdk"
)

// {{.Step.Result}} is the result of the {{.Step.Name}} step. Steps that depend
// on {{.Step.Name}} read it with in.Result({{quote .Step.Name}}, &r).
type {{.Step.Result}} struct {
	ID string ` + "`json:\"id\"`" + `
	// Done is a placeholder: put what {{.Step.Name}} produced here.
	Done bool ` + "`json:\"done\"`" + `
}

// {{.Step.Func}} runs the {{.Step.Name}} step of {{.Namespace}}/{{.Name}} (handler {{quote .Step.Handler}}).
//
// It gets the task context, the step's config from the template and the
// results of the steps it depends on. Whatever it returns (JSON-encodable)
// is the step's result. A returned error is retried with backoff unless it
// is wrapped with sdk.Permanent; sdk.RetryAfter asks for a
// delay. A step runs at least once, possibly more: make side effects
// idempotent with in.IdempotencyKey().
func {{.Step.Func}}(ctx context.Context, in sdk.Input) (any, error) {
	var task struct {
		ID string ` + "`json:\"id\"`" + `
	}
	if err := in.Context(&task); err != nil {
		return nil, sdk.Permanent(err)
	}
	if task.ID == "" {
		return nil, sdk.Permanent(errors.New("the task context has no \"id\""))
	}
{{- if .Step.Parent}}
	var prev {{.Step.Parent.Result}}
	if err := in.Result({{quote .Step.Parent.Name}}, &prev); err != nil {
		return nil, sdk.Permanent(err)
	}
	if !prev.Done {
		return nil, sdk.Permanent(errors.New("{{.Step.Parent.Name}} did not finish its work"))
	}
{{- end}}
	if err := ctx.Err(); err != nil {
		return nil, err // out of time: retried
	}

	// TODO: the work of {{.Step.Name}}. Pass in.IdempotencyKey() to the
	// systems it calls, so a repeated attempt (in.Attempt() of
	// in.MaxAttempts()) does not act twice.
	_ = in.IdempotencyKey()

	return {{.Step.Result}}{ID: task.ID, Done: true}, nil
}
`))

var stepTestTemplate = texttemplate.Must(texttemplate.New("step_test.go").Funcs(funcs).Parse(`package {{.Package}}

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/sdk"
)

// {{.Step.Func}} through sdk.Run, with the invocation payload Tasker sends.
func Test{{.Step.Func}}(t *testing.T) {
	reg := sdk.NewRegistry()
	if err := reg.{{register .Step.Handler}}({{quote .Step.Handler}}, {{.Step.Func}}); err != nil {
		t.Fatal(err)
	}
	quiet := sdk.WithLogger(slog.New(slog.DiscardHandler))
	payload := func(taskContext string) []byte {
		return []byte(` + "`" + `{
			"tasker": {"version": 1, "step": {{quote .Step.Name}}, "handler": {{quote .Step.Handler}},
				"attempt": 1, "max_attempts": 3, "namespace": {{quote .Namespace}}, "workflow": {{quote .Name}},
				"idempotency_key": "test-task/{{.Step.Name}}/1"},
			"context": ` + "` + taskContext + `" + `,
			"config": {},
			"results": {
{{- if .Step.Parent}}{{quote .Step.Parent.Name}}: {"id": "demo-1", "done": true}{{end -}}
}
		}` + "`" + `)
	}

	out := sdk.Run(context.Background(), reg, payload(` + "`" + `{"id": "demo-1"}` + "`" + `), quiet)
	var got {{.Step.Result}}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("result %s: %v", out, err)
	}
	if want := ({{.Step.Result}}{ID: "demo-1", Done: true}); got != want {
		t.Errorf("result = %s, want %+v", out, want)
	}

	// A context without an id fails permanently.
	out = sdk.Run(context.Background(), reg, payload(` + "`{}`" + `), quiet)
	if !strings.Contains(string(out), ` + "`\"permanent\":true`" + `) {
		t.Errorf("without an id: %s, want a permanent error", out)
	}
}
`))

var registryGenTemplate = texttemplate.Must(texttemplate.New(registryGenFile).Parse(generatedMarker + `

// Package handlers registers the Go step handler packages scaffolded by
// ` + "`tasker new`" + ` (one per namespace under handlers/). ` + "`tasker dev`" + ` calls
// Register; ` + "`tasker new`" + ` rewrites this file.
package handlers

import (
{{- range .Packages}}
	"{{$.Import}}/{{.}}"
{{- end}}
	"github.com/taskerhq/tasker/sdk"
)

// Register adds the handlers of every package under handlers/ to reg.
func Register(reg *sdk.Registry) error {
	for _, register := range []func(*sdk.Registry) error{
{{- range .Packages}}
		{{.}}.Register,
{{- end}}
	} {
		if err := register(reg); err != nil {
			return err
		}
	}
	return nil
}
`))

// functionMainTemplate is functions/<dir>/main.go of a step deployed as
// its own Lambda function (tasker new --function).
var functionMainTemplate = texttemplate.Must(texttemplate.New("function main.go").Funcs(funcs).Parse(`// Command {{.Step.FunctionDir}} is the Lambda function {{.Step.FunctionName}}, which runs the
// {{.Step.Name}} step of {{.Namespace}}/{{.Name}} (template.yaml: {{.Step.LogicalID}}; template steps
// name it {{quote .Step.Handler}}). Scaffolded by ` + "`tasker new --function`" + `; edit freely.
package main

import (
	"{{.HandlersImport}}/{{.Package}}"

	"github.com/taskerhq/tasker/internal/lambdaapp"
)

func main() { lambdaapp.Main(lambdaapp.HandlerFunction({{.Package}}.{{.Step.Func}})) }
`))

// functionResourceTemplate is what template.yaml gains for a step
// deployed as its own function: the function, invoked asynchronously by the
// scheduler with both destinations on the scheduler queue like
// HandlersFunction, and the scheduler's permission to invoke it.
var functionResourceTemplate = texttemplate.Must(texttemplate.New("function resources").Funcs(funcs).Parse(`
  # ---- {{.Step.Handler}}: step {{.Step.Name}} of {{.Namespace}}/{{.Name}} (tasker new --function) ----
  {{.Step.LogicalID}}:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: makefile
    Properties:
      FunctionName: {{.Step.FunctionName}}
      Description: Tasker step handler {{.Namespace}}.{{.Step.Name}}, invoked asynchronously by the scheduler
      Timeout: 900 # a step's timeout_seconds is at most 900
      RecursiveLoop: Allow # SQS -> scheduler -> this function -> SQS is the intended loop
      EventInvokeConfig:
        MaximumRetryAttempts: 0 # Tasker owns retries
        MaximumEventAgeInSeconds: 930 # the longest step timeout plus the engine's grace
        DestinationConfig:
          OnSuccess:
            Type: SQS
            Destination: !GetAtt SchedulerQueue.Arn
          OnFailure:
            Type: SQS
            Destination: !GetAtt SchedulerQueue.Arn
      Policies:
        - SQSSendMessagePolicy:
            QueueName: !GetAtt SchedulerQueue.QueueName

  {{.Step.LogicalID}}InvokePolicy:
    Type: AWS::IAM::Policy
    Properties:
      PolicyName: !Sub "${AWS::StackName}-invoke-{{.Step.FunctionName}}"
      Roles: [!Ref SchedulerFunctionRole]
      PolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Action: lambda:InvokeFunction
            Resource: !GetAtt {{.Step.LogicalID}}.Arn
`))

// functionBuildTemplate is the functions/build.mk target sam build runs for
// the function.
var functionBuildTemplate = texttemplate.Must(texttemplate.New("build target").Parse(`
# {{.Step.Handler}} (tasker new --function)
.PHONY: build-{{.Step.LogicalID}}
build-{{.Step.LogicalID}}:
	$(call lambda-build,{{.Step.FunctionDir}})
`))
