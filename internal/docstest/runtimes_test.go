package docstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A block marked `<!-- docstest: file PATH -->` shows the file PATH of the
// repository, verbatim: the example that runs in the tests is the one the
// docs show (docs/handlers.md, "Python and Node.js handlers").
func TestBlocksShowTheirFiles(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	n := 0
	for _, b := range docBlocks(t, root) {
		path, ok := strings.CutPrefix(b.Directive, "file ")
		if !ok {
			continue
		}
		n++
		want, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(strings.TrimSpace(path))))
		if err != nil {
			t.Errorf("%s: %v", b.where(), err)
			continue
		}
		if b.Text != string(want) {
			t.Errorf("%s: the block differs from %s; copy the file into the block", b.where(), path)
		}
	}
	if n == 0 {
		t.Error("no block is marked <!-- docstest: file PATH -->")
	}
}

// Every python and javascript block parses: python3 compiles it, node
// checks its syntax. The interpreters are part of the test machine; a
// missing one fails the test.
func TestPythonAndJavaScriptBlocksParse(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	dir := t.TempDir()
	counts := map[string]int{}
	for i, b := range docBlocks(t, root) {
		var cmd *exec.Cmd
		switch b.Lang {
		case "python", "py":
			f := filepath.Join(dir, "b"+strconv.Itoa(i)+".py")
			write(t, f, b.Text)
			cmd = exec.Command("python3", "-c", "import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])", f)
		case "javascript", "js":
			ext := ".cjs"
			if strings.Contains(b.Text, "export ") || strings.Contains(b.Text, "import ") {
				ext = ".mjs"
			}
			f := filepath.Join(dir, "b"+strconv.Itoa(i)+ext)
			write(t, f, b.Text)
			cmd = exec.Command("node", "--check", f)
		default:
			continue
		}
		if cmd.Err != nil {
			t.Fatalf("%s: %s is not on PATH: checking the docs' Python and Node.js samples needs python3 and node", b.where(), cmd.Args[0])
		}
		counts[b.Lang]++
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: %s block does not parse: %v\n%s", b.where(), b.Lang, err, out)
		}
	}
	if counts["python"] == 0 || counts["javascript"] == 0 {
		t.Errorf("checked %v; want python and javascript blocks", counts)
	}
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
