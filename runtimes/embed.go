// Package runtimes holds the runtime shims `tasker dev` runs Python and
// Node.js Lambda handlers with (docs/handlers.md, "Python" and "Node.js"),
// embedded in the binary. internal/invoke/lambdalocal starts them.
package runtimes

import _ "embed"

// Python is the Python shim (python/tasker_shim.py).
//
//go:embed python/tasker_shim.py
var Python string

// Node is the Node.js shim (node/tasker_shim.js).
//
//go:embed node/tasker_shim.js
var Node string
