package main

import (
	"go/build"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/taskerhq/tasker"

// serverPackages are the server's packages: the CLI reaches the server only
// over HTTP, through internal/apiclient and the wire types.
var serverPackages = []string{
	module + "/internal/api",
	module + "/internal/engine",
	module + "/internal/store",
	module + "/internal/devserver",
	module + "/internal/lambdaapp",
}

// imports returns the module-local packages path imports: directly, or
// with all also through other module-local packages.
func imports(t *testing.T, path string, all bool) []string {
	t.Helper()
	seen := map[string]bool{}
	var walk func(string)
	walk = func(p string) {
		pkg, err := build.Import(p, ".", 0)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, imp := range pkg.Imports {
			if !strings.HasPrefix(imp, module+"/") || seen[imp] {
				continue
			}
			seen[imp] = true
			if all {
				walk(imp)
			}
		}
	}
	walk(path)
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// cmd/tasker only wires subcommands: it imports the packages under
// internal/cli and the client, nothing of the server.
func TestMainImportsNoServer(t *testing.T) {
	for _, imp := range imports(t, module+"/cmd/tasker", false) {
		if !strings.HasPrefix(imp, module+"/internal/cli") && imp != module+"/internal/apiclient" {
			t.Errorf("cmd/tasker imports %s; main.go only dispatches to internal/cli/...", imp)
		}
	}
}

// The commands that call the API, and the client, depend on no server
// package, not even indirectly. (tasker dev, migrate and bench run the
// server's parts in-process and are not in this list.)
func TestAPIClientsImportNoServer(t *testing.T) {
	for _, p := range []string{
		"internal/apiclient", "internal/wire", "internal/cli", "internal/cli/tasks",
		"internal/cli/token", "internal/cli/validate", "internal/cli/scaffold",
	} {
		for _, imp := range imports(t, module+"/"+p, true) {
			if slices.Contains(serverPackages, imp) {
				t.Errorf("%s depends on the server package %s", p, imp)
			}
		}
	}
}

// internal/wire is a leaf: the server and the client share it.
func TestWireIsALeaf(t *testing.T) {
	if imps := imports(t, module+"/internal/wire", false); len(imps) > 0 {
		t.Errorf("internal/wire imports %v; it may import only the standard library", imps)
	}
}
