package examples_test

import (
	"testing"

	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/template"
	"github.com/taskerhq/tasker/sdk"
	"github.com/taskerhq/tasker/templates"
)

// Every shipped template must run locally: each handler it names is a
// registered example or a built-in.
func TestShippedTemplatesUseRegisteredHandlers(t *testing.T) {
	t.Parallel()
	reg := sdk.NewRegistry()
	if err := examples.Register(reg); err != nil {
		t.Fatal(err)
	}
	set, err := template.LoadFS(templates.FS, template.Options{Handlers: reg})
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() < 4 {
		t.Fatalf("loaded %d templates, want at least 4", set.Len())
	}
}
