package importrules

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// publicPackages are the packages other modules import: their exported
// API must not name a type of an internal package, which those modules
// could not name (docs/architecture.md, "Import rules").
var publicPackages = []string{"sdk", "sdk/contract", "sdk/sdktest"}

func TestPublicAPIExposesNoInternalType(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	for _, pkg := range publicPackages {
		files, err := filepath.Glob(filepath.Join(root, pkg, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Fatalf("no Go files in %s", pkg)
		}
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			for _, bad := range internalTypesInAPI(t, path) {
				t.Errorf("%s: %s", filepath.ToSlash(strings.TrimPrefix(path, root+string(os.PathSeparator))), bad)
			}
		}
	}
}

// The check catches what it should.
func TestInternalTypesInAPI(t *testing.T) {
	t.Parallel()
	src := `package p

import (
	"io"

	"github.com/taskerhq/tasker/internal/telemetry"
	cfg "github.com/taskerhq/tasker/internal/config"
)

type Options struct {
	Metrics *telemetry.Registry
	hidden  *telemetry.Registry
}

func WithMetrics(r *telemetry.Registry) io.Reader { return nil }
func Fine(r io.Reader) error                      { return nil }
func unexported(c cfg.Thing)                      {}

var Default = map[string]func() cfg.Thing{}

type Iface interface{ M() []telemetry.Counter }
`
	path := filepath.Join(t.TempDir(), "p.go")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	got := internalTypesInAPI(t, path)
	want := []string{"Options.Metrics", "WithMetrics", "Default", "Iface"}
	if len(got) != len(want) {
		t.Fatalf("found %q, want one finding each for %q", got, want)
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w+" ") {
			t.Errorf("finding %d = %q, want one for %s", i, got[i], w)
		}
	}
}

// internalTypesInAPI lists the exported declarations of a file whose
// types name a package with "internal" in its import path.
func internalTypesInAPI(t *testing.T, path string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	internal := map[string]string{} // local name -> import path
	for _, im := range f.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		if !strings.Contains("/"+p+"/", "/internal/") {
			continue
		}
		name := p[strings.LastIndex(p, "/")+1:]
		if im.Name != nil {
			name = im.Name.Name
		}
		internal[name] = p
	}
	var out []string
	var check func(what string, n ast.Node)
	check = func(what string, n ast.Node) {
		if n == nil {
			return
		}
		ast.Inspect(n, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && internal[id.Name] != "" {
					out = append(out, what+" names "+internal[id.Name]+"."+sel.Sel.Name)
					return false
				}
			}
			if lit, ok := n.(*ast.FuncLit); ok { // a body is not API
				check(what, lit.Type)
				return false
			}
			return true
		})
	}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() || (d.Recv != nil && !exportedRecv(d.Recv)) {
				continue
			}
			check(d.Name.Name, d.Type)
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					if !s.Name.IsExported() {
						continue
					}
					if st, ok := s.Type.(*ast.StructType); ok {
						for _, fld := range st.Fields.List {
							for _, n := range fld.Names {
								if n.IsExported() {
									check(s.Name.Name+"."+n.Name, fld.Type)
								}
							}
							if len(fld.Names) == 0 { // embedded: promoted
								check(s.Name.Name, fld.Type)
							}
						}
						continue
					}
					check(s.Name.Name, s.Type)
				case *ast.ValueSpec:
					for i, n := range s.Names {
						if !n.IsExported() {
							continue
						}
						check(n.Name, s.Type)
						if i < len(s.Values) {
							if lit, ok := s.Values[i].(*ast.CompositeLit); ok {
								check(n.Name, lit.Type)
							}
						}
					}
				}
			}
		}
	}
	return out
}

func exportedRecv(recv *ast.FieldList) bool {
	if len(recv.List) == 0 {
		return false
	}
	typ := recv.List[0].Type
	if star, ok := typ.(*ast.StarExpr); ok {
		typ = star.X
	}
	if idx, ok := typ.(*ast.IndexExpr); ok {
		typ = idx.X
	}
	id, ok := typ.(*ast.Ident)
	return ok && id.IsExported()
}
