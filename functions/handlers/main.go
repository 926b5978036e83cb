// Command handlers is the handler Lambda hosting Tasker's Go step
// handlers: the built-ins (tasker.noop, tasker.http) and the examples. To
// host your own, register them in a function like examples.Register and
// pass that instead. See internal/lambdaapp.
package main

import (
	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/lambdaapp"
)

func main() { lambdaapp.Main(lambdaapp.Handlers(examples.Register)) }
