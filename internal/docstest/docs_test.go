package docstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"go/format"
	"go/parser"
	"go/token"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/taskerhq/tasker/internal/examples"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/internal/template"
	"github.com/taskerhq/tasker/sdk"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// AuthSecret is the HS256 secret of the server that blocks marked
// `<!-- docstest: auth -->` run against; docs/auth.md uses the same value.
const AuthSecret = "local-dev-secret-change-me-0123456789"

// repoRoot is where the docs live and where sh blocks run.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found at %s: %v", root, err)
	}
	return root
}

// docBlocks returns every fenced block of README.md and docs/*.md.
func docBlocks(t *testing.T, root string) []Block {
	t.Helper()
	files := []string{"README.md"}
	more, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(more)
	for _, f := range more {
		rel, _ := filepath.Rel(root, f)
		files = append(files, rel)
	}
	var out []Block
	for _, f := range files {
		src, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Extract(f, string(src))...)
	}
	return out
}

func (b Block) where() string { return fmt.Sprintf("%s:%d", b.File, b.Line) }

// TestDocs checks every sample; subtests are named by file and line.
func TestDocs(t *testing.T) {
	root := repoRoot(t)
	blocks := docBlocks(t, root)
	reg := sdk.NewRegistry()
	if err := examples.Register(reg); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	var goBlocks, shBlocks []Block
	for i := 0; i < len(blocks); i++ {
		b := blocks[i]
		kind := b.Kind()
		if kind == "" {
			continue
		}
		if reason, skip := b.Skip(); skip {
			if reason == "" {
				t.Errorf("%s: a docstest skip needs a reason: <!-- docstest: skip WHY -->", b.where())
			}
			counts["skipped"]++
			continue
		}
		switch kind {
		case LangYAML:
			var next *Block
			if i+1 < len(blocks) {
				next = &blocks[i+1]
			}
			checkYAML(t, b, next, reg)
		case LangJSON:
			if !json.Valid([]byte(b.Text)) {
				var v any
				err := json.Unmarshal([]byte(b.Text), &v)
				t.Errorf("%s: json block does not parse: %v", b.where(), err)
			}
		case LangGo:
			goBlocks = append(goBlocks, b)
		case LangSh:
			shBlocks = append(shBlocks, b)
		}
		counts[kind]++
	}
	t.Logf("blocks checked: %d yaml, %d json, %d go, %d sh; %d skipped by directive",
		counts[LangYAML], counts[LangJSON], counts[LangGo], counts[LangSh], counts["skipped"])
	requireQuickStart(t, shBlocks)

	t.Run("go", func(t *testing.T) { compileGo(t, root, goBlocks) })
	t.Run("sh", func(t *testing.T) { runShell(t, root, shBlocks) })
}

// requireQuickStart keeps the README's promise tested: a fresh clone runs
// the example order to completion with one command.
func requireQuickStart(t *testing.T, sh []Block) {
	for _, b := range sh {
		if b.File == "README.md" && b.Directive == "" &&
			regexp.MustCompile(`tasker run ecommerce/process_order .*--watch`).MatchString(b.Text) {
			return
		}
	}
	t.Error("README.md has no executed sh block running `tasker run ecommerce/process_order ... --watch` (the quick start)")
}

// ---- yaml ----

// checkYAML parses a yaml block; one with steps: or step_templates: must
// load as a template. With `<!-- docstest: invalid -->` it must fail, and
// every line of the text block after it must appear in the error.
func checkYAML(t *testing.T, b Block, next *Block, reg *sdk.Registry) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(b.Text), &doc); err != nil {
		t.Errorf("%s: yaml block does not parse: %v", b.where(), err)
		return
	}
	var top map[string]yaml.Node
	isTemplate := false
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 && doc.Content[0].Kind == yaml.MappingNode {
		if err := doc.Content[0].Decode(&top); err == nil {
			_, s1 := top["steps"]
			_, s2 := top["step_templates"]
			isTemplate = s1 || s2
		}
	}
	invalid := b.Directive == "invalid"
	if !isTemplate {
		if invalid {
			t.Errorf("%s: marked invalid but is not a template (no steps:)", b.where())
		}
		return
	}
	tpl, err := template.Parse("broken.yaml", []byte(b.Text), template.Options{})
	if invalid {
		if err == nil {
			t.Errorf("%s: marked invalid but the template loads", b.where())
			return
		}
		if next != nil && next.Lang == "text" {
			for _, want := range strings.Split(strings.TrimSpace(next.Text), "\n") {
				if want = strings.TrimSpace(want); want != "" && !strings.Contains(err.Error(), want) {
					t.Errorf("%s: the error shown at %s is not what Parse reports:\nshown:  %s\nactual: %v",
						b.where(), next.where(), want, err)
				}
			}
		}
		return
	}
	if err != nil {
		t.Errorf("%s: template does not load: %v", b.where(), err)
		return
	}
	// Handlers in the example namespaces must be the registered examples.
	exampleNS := map[string]bool{}
	for _, n := range examples.Names() {
		ns, _, _ := strings.Cut(n, ".")
		exampleNS[ns] = true
	}
	for _, s := range tpl.Steps {
		ns, _, _ := strings.Cut(s.Handler, ".")
		if template.IsBuiltin(s.Handler) || template.IsLambda(s.Handler) || !exampleNS[ns] {
			continue
		}
		if !reg.Has(s.Handler) {
			t.Errorf("%s: step %q: handler %q is not one of the registered example handlers", b.where(), s.Name, s.Handler)
		}
	}
}

// ---- go ----

// knownImports resolves the package names a Go fragment may use without
// an import block.
var knownImports = map[string]string{
	"context": "context", "errors": "errors", "fmt": "fmt", "time": "time", "os": "os", "io": "io",
	"strings": "strings", "json": "encoding/json", "http": "net/http", "slog": "log/slog",
	"testing": "testing", "uuid": "github.com/google/uuid",
	"sdk":         "github.com/taskerhq/tasker/sdk",
	"sdktest":     "github.com/taskerhq/tasker/sdk/sdktest",
	"sdkcontract": "github.com/taskerhq/tasker/sdk/contract",
	"examples":    "github.com/taskerhq/tasker/internal/examples",
	"contract":    "github.com/taskerhq/tasker/internal/contract",
	"template":    "github.com/taskerhq/tasker/internal/template",
	"trigger":     "github.com/taskerhq/tasker/internal/trigger",
	"auth":        "github.com/taskerhq/tasker/internal/auth",
	"pgtest":      "github.com/taskerhq/tasker/internal/pgtest",
	"lambdaapp":   "github.com/taskerhq/tasker/internal/lambdaapp",
	"templates":   "github.com/taskerhq/tasker/templates",
}

// goSource turns a block into a compilable file: a block starting with a
// package clause is used as is; otherwise it holds top-level declarations
// and gets a package clause and the imports of knownImports it uses.
func goSource(b Block) (src []byte, testFile bool, err error) {
	text := b.Text
	if f, err := parser.ParseFile(token.NewFileSet(), "snippet.go", text, parser.ImportsOnly); err == nil {
		for _, im := range f.Imports {
			if im.Path.Value == `"testing"` {
				testFile = true
			}
		}
		return []byte(text), testFile, nil
	}
	head := "package snippet\n\n"
	f, err := parser.ParseFile(token.NewFileSet(), "snippet.go", head+text, 0)
	if err != nil {
		return nil, false, err
	}
	// Each import is named as the fragment uses it (sdkcontract is
	// sdk/contract, whose package name is contract).
	seen := map[string]bool{}
	var paths []string
	for _, id := range f.Unresolved {
		if p, ok := knownImports[id.Name]; ok && !seen[p] {
			seen[p] = true
			paths = append(paths, id.Name+" "+strconv.Quote(p))
			testFile = testFile || p == "testing"
		}
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	buf.WriteString(head)
	if len(paths) > 0 {
		buf.WriteString("import (\n")
		for _, p := range paths {
			fmt.Fprintf(&buf, "\t%s\n", p)
		}
		buf.WriteString(")\n\n")
	}
	buf.WriteString(text)
	return buf.Bytes(), testFile, nil
}

// compileGo writes every go block into its own package under a dot
// directory of this package (inside the module, so internal packages may
// be imported; ignored by ./...) and runs go vet on all of them at once.
func compileGo(t *testing.T, root string, blocks []Block) {
	if len(blocks) == 0 {
		return
	}
	rnd := make([]byte, 4)
	_, _ = rand.Read(rnd)
	base := filepath.Join(root, "internal", "docstest", ".tmp-"+hex.EncodeToString(rnd))
	t.Cleanup(func() { os.RemoveAll(base) })
	var pkgs []string
	where := map[string]string{}
	for i, b := range blocks {
		if formatted, err := format.Source([]byte(b.Text)); err == nil && !bytes.Equal(formatted, []byte(b.Text)) {
			t.Errorf("%s: go block is not gofmt-formatted; want:\n%s", b.where(), formatted)
		}
		src, testFile, err := goSource(b)
		if err != nil {
			t.Errorf("%s: go block does not parse: %v", b.where(), err)
			continue
		}
		dir := filepath.Join(base, fmt.Sprintf("b%02d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		name := "snippet.go"
		if testFile {
			name = "snippet_test.go"
		}
		if err := os.WriteFile(filepath.Join(dir, name), src, 0o644); err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, dir)
		pkgs = append(pkgs, "./"+filepath.ToSlash(rel))
		where[filepath.Base(dir)] = b.where()
	}
	if len(pkgs) == 0 {
		return
	}
	cmd := exec.Command("go", append([]string{"vet"}, pkgs...)...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		var legend []string
		for d, w := range where {
			legend = append(legend, d+" = "+w)
		}
		sort.Strings(legend)
		t.Errorf("go vet of the go blocks failed: %v\n%s\nblocks: %s", err, out, strings.Join(legend, ", "))
	}
}

// ---- sh ----

// server is a `tasker dev` started by the test.
type server struct {
	url string
	cmd *exec.Cmd
	log *lockedBuffer
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// lockedBuffer collects the server's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startServer(t *testing.T, root, bin string, env []string) *server {
	t.Helper()
	addr := freeAddr(t)
	logBuf := &lockedBuffer{}
	cmd := exec.Command(bin, "dev", "--addr", addr, "--database-url", pgtest.URL(t))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = logBuf
	cmd.Stderr = logBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{url: "http://" + addr, cmd: cmd, log: logBuf}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.url + "/v1/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasker dev did not become ready at %s", s.url)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// shellPrelude runs before every block: `go run ./cmd/tasker ARGS` is the
// binary the test built (the same code, without compiling it again).
const shellPrelude = `go() { if [ "${1-}" = run ] && [ "${2-}" = ./cmd/tasker ]; then shift 2; command tasker "$@"; else command go "$@"; fi; }
`

// earlyExitPipe finds a pipe into a reader that may exit before its writer
// has written everything.
var earlyExitPipe = regexp.MustCompile(`\|\s*(grep\s+-[a-zA-Z]*q[a-zA-Z]*|grep\s+--quiet|head)\b`)

// blockTimeout bounds one sh block.
const blockTimeout = 40 * time.Second

func runShell(t *testing.T, root string, blocks []Block) {
	if len(blocks) == 0 {
		return
	}
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the docs' shell samples need %s on PATH (README.md, Requirements)", tool)
		}
	}
	binDir := t.TempDir()
	bin := filepath.Join(binDir, "tasker")
	build := exec.Command("go", "build", "-o", bin, "./cmd/tasker")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/tasker: %v\n%s", err, out)
	}
	var open, secured *server
	for _, b := range blocks {
		plan := PlanShell(b.Text)
		if plan.SyntaxOnly {
			cmd := exec.Command("bash", "-n")
			cmd.Stdin = strings.NewReader(plan.Script)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s: sh block (needs a deployment; syntax checked only) does not parse: %v\n%s", b.where(), err, out)
			}
			continue
		}
		if m := earlyExitPipe.FindString(plan.Script); m != "" {
			t.Errorf("%s: sh block pipes into %q, which stops reading early; under pipefail the writer then fails now and then (SIGPIPE, curl exit 23): read the whole input instead (grep -c … >/dev/null)", b.where(), m)
			continue
		}
		var srv *server
		env := []string{"PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH")}
		switch b.Directive {
		case "":
			if open == nil {
				open = startServer(t, root, bin, []string{"TASKER_AUTH_HS256_SECRET=", "TASKER_AUTH_JWKS_URL="})
			}
			srv = open
		case "auth":
			if secured == nil {
				secured = startServer(t, root, bin, []string{"TASKER_AUTH_HS256_SECRET=" + AuthSecret, "TASKER_AUTH_JWKS_URL="})
			}
			srv = secured
		default:
			t.Errorf("%s: unknown docstest directive %q for a sh block (want skip REASON or auth)", b.where(), b.Directive)
			continue
		}
		env = append(env, "TASKER_URL="+srv.url, "TASKER_TOKEN=", "TASKER_AUTH_HS256_SECRET=", "NO_COLOR=1")
		ctx, cancel := context.WithTimeout(context.Background(), blockTimeout)
		cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", shellPrelude+plan.Script)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		cmd.WaitDelay = 5 * time.Second
		start := time.Now()
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("%s: sh block failed after %s: %v\n--- script ---\n%s--- output ---\n%s--- server log (tail) ---\n%s",
				b.where(), time.Since(start).Round(time.Millisecond), err, plan.Script, out, tail(srv.log.String(), 30))
			continue
		}
		t.Logf("%s: ok in %s (skipped: %q)", b.where(), time.Since(start).Round(time.Millisecond), plan.Skipped)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}
