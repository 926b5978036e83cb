package main

import (
	"testing"

	"github.com/taskerhq/tasker/handlers"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/sdk"
)

// The handlers function hosts every handler the generated registry
// (handlers/registry_gen.go, checked against handlers/ by the scaffold's
// TestRegistryGenUpToDate) and the examples register: what tasker dev hosts.
func TestRegisterHostsGeneratedHandlers(t *testing.T) {
	t.Parallel()
	got := sdk.NewRegistry()
	if err := register(got); err != nil {
		t.Fatal(err)
	}
	for name, fill := range map[string]func(*sdk.Registry) error{"handlers.Register": handlers.Register, "examples.Register": examples.Register} {
		want := sdk.NewRegistry()
		if err := fill(want); err != nil {
			t.Fatal(err)
		}
		for _, n := range want.Names() {
			if !got.Has(n) {
				t.Errorf("the handlers function does not host %s (from %s)", n, name)
			}
		}
	}
}
