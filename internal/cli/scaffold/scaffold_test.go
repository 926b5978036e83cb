package scaffold

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/internal/template"
)

type result struct {
	code           int
	stdout, stderr string
}

// runNew runs `tasker new args...` (args[0] is "new").
func runNew(t *testing.T, args ...string) result {
	t.Helper()
	if len(args) == 0 || args[0] != "new" {
		t.Fatalf("cli %q: not tasker new", args)
	}
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), args[1:], &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

func (r result) want(t *testing.T, code int, stdout, stderr []string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range stdout {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
		}
	}
	for _, s := range stderr {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
}

// scaffoldModuleDir makes a Go module inside the Tasker module path (so the
// generated code may import its internal packages) that uses this checkout.
func scaffoldModuleDir(t *testing.T, module string) string {
	t.Helper()
	repo, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gomod := "module " + module + "\n\ngo 1.26\n\nrequire github.com/taskerhq/tasker v0.0.0\n\nreplace github.com/taskerhq/tasker => " + repo + "\n"
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(repo, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// goCmd runs the go command in dir. Modules resolve as the user's go would
// (their GOPROXY and GOFLAGS): the generated module lists only Tasker, so
// -mod=mod lets go add Tasker's dependencies, whose go.mod files an empty
// module cache does not hold.
func goCmd(t *testing.T, dir string, args ...string) {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the generated module: %v", err)
	}
	cmd := exec.Command(gobin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -mod=mod"), "GOWORK=off", "GOTOOLCHAIN=local")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestNewScaffold(t *testing.T) {
	t.Parallel()
	dir := scaffoldModuleDir(t, "github.com/taskerhq/tasker/scaffoldtest")
	r := runNew(t, "new", "shop/refund", "--steps", "check,refund,notify", "--dir", dir)
	r.want(t, 0, []string{
		"Created workflow shop/refund (check -> refund -> notify)",
		filepath.Join(dir, "templates", "shop_refund.yaml"),
		filepath.Join(dir, "handlers", "shop", "refund_test.go"),
		"registers: shop", "go run ./cmd/tasker dev", "go run ./cmd/tasker run shop/refund",
		"handlers/registry_gen.go", "with no further edit", "HandlersFunction:",
	}, nil)
	for _, f := range []string{"register.go", "check.go", "check_test.go", "refund.go", "refund_test.go", "notify.go", "notify_test.go"} {
		if _, err := os.Stat(filepath.Join(dir, "handlers", "shop", f)); err != nil {
			t.Error(err)
		}
	}

	// The template loads: a chain of shop.* handlers.
	tpl, err := template.LoadFile(filepath.Join(dir, "templates", "shop_refund.yaml"), template.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tpl.Key() != "shop/refund@0.1.0" || len(tpl.Steps) != 3 || tpl.ContextSchema == nil {
		t.Fatalf("template %s: %+v", tpl.Key(), tpl.Steps)
	}
	for i, want := range []string{"check", "refund", "notify"} {
		s := tpl.Steps[i]
		if s.Name != want || s.Handler != "shop."+want {
			t.Errorf("step %d: %s %s", i, s.Name, s.Handler)
		}
		if i > 0 && (len(s.DependsOn) != 1 || s.DependsOn[0] != tpl.Steps[i-1].Name) {
			t.Errorf("step %s depends on %v", s.Name, s.DependsOn)
		}
	}
	if err := tpl.ValidateContext([]byte(`{"id":"demo-1"}`)); err != nil {
		t.Errorf("the example context does not validate: %v", err)
	}

	// The generated registry hosts every handler the template names, and
	// the generated package vets and passes its tests.
	regTest := `package handlers_test

import (
	"testing"

	"github.com/taskerhq/tasker/sdk"
	"github.com/taskerhq/tasker/internal/template"
	"github.com/taskerhq/tasker/scaffoldtest/handlers"
)

func TestTemplateHandlersRegistered(t *testing.T) {
	reg := sdk.NewRegistry()
	if err := handlers.Register(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := template.LoadFile("../templates/shop_refund.yaml", template.Options{Handlers: reg}); err != nil {
		t.Fatal(err)
	}
}
`
	if err := os.WriteFile(filepath.Join(dir, "handlers", "registry_test.go"), []byte(regTest), 0o644); err != nil {
		t.Fatal(err)
	}
	goCmd(t, dir, "vet", "./...")
	goCmd(t, dir, "test", "./...")

	// Nothing is overwritten.
	r = runNew(t, "new", "shop/refund", "--steps", "check,other", "--dir", dir)
	r.want(t, 1, nil, []string{"refusing to overwrite existing files", "shop_refund.yaml", filepath.Join("shop", "check.go")})
	if _, err := os.Stat(filepath.Join(dir, "handlers", "shop", "other.go")); err == nil {
		t.Error("other.go was written although the command failed")
	}

	// A second workflow in the namespace leaves register.go alone and says
	// what to add.
	before, _ := os.ReadFile(filepath.Join(dir, "handlers", "shop", "register.go"))
	r = runNew(t, "new", "shop/audit", "--steps", "audit_log", "--dir", dir)
	r.want(t, 0, []string{"register.go already existed", `{"shop.audit_log", AuditLog},`}, nil)
	after, _ := os.ReadFile(filepath.Join(dir, "handlers", "shop", "register.go"))
	if !bytes.Equal(before, after) {
		t.Error("register.go changed")
	}
	// The same workflow in another file is refused.
	if err := os.WriteFile(filepath.Join(dir, "templates", "mine.yaml"), []byte("namespace: shop\nname: mine\nsteps:\n  - {name: a, handler: tasker.noop}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runNew(t, "new", "shop/mine", "--steps", "x", "--dir", dir).want(t, 1, nil, []string{"workflow shop/mine already exists in", "mine.yaml"})

	// A registry_gen.go someone wrote by hand is not overwritten.
	if err := os.WriteFile(filepath.Join(dir, "handlers", registryGenFile), []byte("package handlers\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runNew(t, "new", "shop/later", "--steps", "y", "--dir", dir).want(t, 1, nil, []string{"registry_gen.go (not generated by tasker new)"})
}

func TestNewScaffoldOutsideTasker(t *testing.T) {
	t.Parallel()
	other := scaffoldModuleDir(t, "example.com/app")
	runNew(t, "new", "shop/refund", "--steps", "a", "--dir", other).want(t, 1, nil, []string{"module example.com/app", "host only the handlers of github.com/taskerhq/tasker"})
	runNew(t, "new", "shop/refund", "--steps", "a", "--dir", filepath.Join(other, "missing")).want(t, 1, nil, []string{"not a directory"})
	if entries, _ := os.ReadDir(other); len(entries) != 2 {
		t.Errorf("files were written: %v", entries)
	}
}

func TestNewNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		workflow, steps, err string
	}{
		{"shop", "a", "is not NAMESPACE/NAME"},
		{"shop/a/b", "a", "is not NAMESPACE/NAME"},
		{"Shop/refund", "a", `namespace "Shop"`},
		{"shop/Refund", "a", `name "Refund"`},
		{"shop/refund", "a,,b", "step is empty"},
		{"shop/refund", "a,a", `step "a" is listed twice`},
		{"shop/refund", "check-stock", `step "check-stock"`},
		{"shop/refund", "a__b", `step "a__b"`},
		{"shop/refund", "1a", `step "1a"`},
		{"func/refund", "a", `namespace "func" cannot name a Go package`},
		{"internal/refund", "a", `namespace "internal"`},
		{"shop/refund", "register", `step "register" cannot be used`},
		{"shop/refund", "build_linux", `step "build_linux" cannot be used`},
		{"shop/refund", "unit_test", `step "unit_test" cannot be used`},
		{"shop/refund", "check,check_result", "would both declare CheckResult"},
		{"shop/refund", strings.Repeat("a", 65), "longer than 64"},
	} {
		r := runNew(t, "new", tc.workflow, "--steps", tc.steps, "--dir", t.TempDir())
		r.want(t, 2, nil, []string{tc.err})
	}
	if _, err := newScaffold("shop/refund", []string{"check_stock", "x2", "notify"}, false); err != nil {
		t.Error(err)
	}
}

// The committed handlers/registry_gen.go is what `tasker new` would write
// for the packages under handlers/.
func TestRegistryGenUpToDate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "..", "..", "handlers")
	pkgs, err := registeredPackages(dir)
	if err != nil {
		t.Fatal(err)
	}
	want, err := registryGenSource("github.com/taskerhq/tasker/handlers", pkgs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, registryGenFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("handlers/%s is stale; want:\n%s", registryGenFile, want)
	}
}
