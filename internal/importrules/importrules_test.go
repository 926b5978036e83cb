package importrules

import (
	"bufio"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// match reports whether pkg matches pattern (see Rule).
func match(pattern, pkg string) bool {
	if pattern == "..." {
		return true
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	return pkg == pattern
}

func matchAny(patterns []string, pkg string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return match(p, pkg) })
}

// violations returns one line per import in graph (package → module packages
// it imports, paths relative to the module) that breaks a rule.
func violations(rules []Rule, graph map[string][]string) []string {
	var out []string
	pkgs := make([]string, 0, len(graph))
	for p := range graph {
		pkgs = append(pkgs, p)
	}
	slices.Sort(pkgs)
	for _, pkg := range pkgs {
		for _, imp := range graph[pkg] {
			if strings.HasPrefix(imp, pkg+"/") {
				continue // below itself
			}
			for _, r := range rules {
				if !matchAny(r.Pkgs, pkg) || matchAny(r.Except, pkg) {
					continue
				}
				if matchAny(r.Deny, imp) || (r.Only != nil && !matchAny(r.Only, imp)) {
					out = append(out, pkg+" imports "+imp+": "+r.Why)
				}
			}
		}
	}
	return out
}

// moduleGraph parses the import clauses of every non-test Go file of the
// module (whatever its build tags) and returns each package's imports of
// module packages.
func moduleGraph(t *testing.T) map[string][]string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	module := modulePath(t, filepath.Join(root, "go.mod"))
	graph := map[string][]string{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") ||
				name == "testdata" || name == "node_modules" || name == "bin") {
				return filepath.SkipDir
			}
			if path != root {
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir // another module (tools/sqlc)
				}
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		pkg := filepath.ToSlash(rel)
		if _, ok := graph[pkg]; !ok {
			graph[pkg] = nil
		}
		for _, is := range f.Imports {
			p, _ := strconv.Unquote(is.Path.Value)
			if rest, ok := strings.CutPrefix(p, module+"/"); ok && !slices.Contains(graph[pkg], rest) {
				graph[pkg] = append(graph[pkg], rest)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return graph
}

func modulePath(t *testing.T, gomod string) string {
	t.Helper()
	f, err := os.Open(gomod)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.TrimSpace(m)
		}
	}
	t.Fatal("no module line in go.mod")
	return ""
}

// TestImportRules fails on every import of production code that breaks a
// rule of Rules.
func TestImportRules(t *testing.T) {
	graph := moduleGraph(t)
	if len(graph) < 20 {
		t.Fatalf("found only %d packages; is the module root ../..?", len(graph))
	}
	for _, v := range violations(Rules, graph) {
		t.Error(v)
	}
}

// TestRulesNameRealPackages keeps the rules from rotting: every pattern a
// rule names matches at least one package of the module.
func TestRulesNameRealPackages(t *testing.T) {
	graph := moduleGraph(t)
	exists := func(pattern string) bool {
		for p := range graph {
			if match(pattern, p) {
				return true
			}
		}
		return false
	}
	for _, r := range Rules {
		for _, list := range [][]string{r.Pkgs, r.Except, r.Deny, r.Only} {
			for _, p := range list {
				if !exists(p) {
					t.Errorf("rule %q names %q, which matches no package", r.Why, p)
				}
			}
		}
	}
}

// TestViolations shows that a forbidden import fails the check, and that
// the exceptions of the rules hold.
func TestViolations(t *testing.T) {
	cases := []struct {
		name  string
		graph map[string][]string
		fail  bool
	}{
		{"store imports engine", map[string][]string{"internal/store": {"internal/engine"}}, true},
		{"engine imports an adapter", map[string][]string{"internal/engine": {"internal/queue/local"}}, true},
		{"engine imports the handler SDK", map[string][]string{"internal/engine": {"sdk"}}, true},
		{"api wires a queue", map[string][]string{"internal/api": {"internal/queue/sqs"}}, true},
		{"leaf imports the module", map[string][]string{"internal/contract": {"internal/jsonb"}}, true},
		{"adapter reads the database", map[string][]string{"internal/queue/sqs": {"internal/store"}}, true},
		{"production imports test support", map[string][]string{"internal/engine": {"internal/pgtest"}}, true},
		{"library imports an entry point", map[string][]string{"internal/api": {"cmd/tasker"}}, true},
		{"api imports devserver", map[string][]string{"internal/api": {"internal/devserver"}}, true},
		{"store imports below itself", map[string][]string{"internal/store": {"internal/store/dbgen"}}, false},
		{"engine imports store", map[string][]string{"internal/engine": {"internal/store", "internal/contract"}}, false},
		{"devserver wires adapters", map[string][]string{"internal/devserver": {"internal/queue/local", "internal/api", "internal/engine"}}, false},
		{"cmd wires devserver", map[string][]string{"cmd/tasker": {"internal/devserver", "internal/bench"}}, false},
		{"scripts use test support", map[string][]string{"scripts/withpg": {"internal/pgtest"}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := violations(Rules, c.graph)
			if got := len(v) > 0; got != c.fail {
				t.Errorf("violations = %q, want failure %v", v, c.fail)
			}
		})
	}
}
