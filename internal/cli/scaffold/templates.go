package scaffold

import (
	"fmt"
	texttemplate "text/template"
)

// The files tasker new writes.

var funcs = texttemplate.FuncMap{
	"quote": func(s string) string { return fmt.Sprintf("%q", s) },
}

var yamlTemplate = texttemplate.Must(texttemplate.New("template.yaml").Funcs(funcs).Parse(`# {{.Namespace}}/{{.Name}}, scaffolded by ` + "`tasker new`" + `.
#
#   {{range $i, $s := .Steps}}{{if $i}} ─ {{end}}{{$s.Name}}{{end}}
#
# Each step runs the Go handler "{{.Namespace}}.<step>" in handlers/{{.Package}}/.
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
		if err := reg.Register(h.name, h.fn); err != nil {
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
	if err := reg.Register({{quote .Step.Handler}}, {{.Step.Func}}); err != nil {
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
