// Command handlers is the handler Lambda hosting Tasker's Go step
// handlers: the built-ins (tasker.noop, tasker.http, tasker.callback), the
// examples and every package `tasker new` generated under handlers/
// (handlers/registry_gen.go), the same set `tasker dev` hosts, so `sam
// build && sam deploy` ships new handlers with no edit here. See
// internal/lambdaapp and docs/handlers.md.
package main

import (
	"github.com/taskerhq/tasker/handlers"
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/lambdaapp"
	"github.com/taskerhq/tasker/sdk"
)

func main() { lambdaapp.Main(lambdaapp.Handlers(register)) }

// register adds the examples and the generated handler packages.
func register(reg *sdk.Registry) error {
	for _, r := range []func(*sdk.Registry) error{examples.Register, handlers.Register} {
		if err := r(reg); err != nil {
			return err
		}
	}
	return nil
}
