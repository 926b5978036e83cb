package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Tool is an external program built from a pinned Go module version.
type Tool struct {
	// Name is the binary's name in bin/ and in its TASKER_<NAME>_BIN
	// override variable.
	Name string
	// Package is the main package to go install.
	Package string
	// Version is the module version.
	Version string
}

// Pinned tools.
var (
	RIE = Tool{
		Name:    "aws-lambda-rie",
		Package: "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie",
		Version: "v0.0.0-20261030222936-bef5c4ba774d",
	}
	// Tools lists every pinned tool, for `testtools`.
	Tools = []Tool{RIE}
)

// buildTimeout bounds one go install (downloads included).
const buildTimeout = 10 * time.Minute

// EnvVar is the variable that overrides the tool's path:
// TASKER_<NAME>_BIN with NAME upper-cased and dashes as underscores.
func (tl Tool) EnvVar() string {
	return "TASKER_" + strings.ToUpper(strings.ReplaceAll(tl.Name, "-", "_")) + "_BIN"
}

func (tl Tool) stamp() string { return tl.Package + "@" + tl.Version }

// Lookup finds a tool by name.
func Lookup(name string) (Tool, bool) {
	i := slices.IndexFunc(Tools, func(tl Tool) bool { return tl.Name == name })
	if i < 0 {
		return Tool{}, false
	}
	return Tools[i], true
}

// RepoRoot returns the directory holding go.mod, walking up from the
// working directory (a test's working directory is its package directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testenv: no go.mod in the working directory or above it")
		}
		dir = parent
	}
}

// Binary returns the path of the named tool ("aws-lambda-rie"):
// $TASKER_<NAME>_BIN if set, else bin/<name> at the repository root, built
// there first if it is missing or was built from another version. It fails
// the test if the binary cannot be found or built.
func Binary(t testing.TB, name string) string {
	t.Helper()
	tl, ok := Lookup(name)
	if !ok {
		t.Fatalf("testenv: unknown tool %q (known: aws-lambda-rie)", name)
	}
	path, err := Install(context.Background(), tl)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return path
}

// Install returns the path of tl's binary, building it into bin/ at the
// repository root if needed (see Binary).
func Install(ctx context.Context, tl Tool) (string, error) {
	if p := os.Getenv(tl.EnvVar()); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", tl.EnvVar(), p, err)
		}
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	binDir := filepath.Join(root, "bin")
	target := filepath.Join(binDir, tl.Name)
	stampFile := filepath.Join(binDir, "."+tl.Name+".version")
	if upToDate(target, stampFile, tl) {
		return target, nil
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(filepath.Join(binDir, ".lock"))
	if err != nil {
		return "", fmt.Errorf("lock %s: %w", filepath.Join(binDir, ".lock"), err)
	}
	defer unlock()
	if upToDate(target, stampFile, tl) { // another process built it meanwhile
		return target, nil
	}
	if err := build(ctx, tl, binDir, target); err != nil {
		return "", err
	}
	if err := os.WriteFile(stampFile, []byte(tl.stamp()+"\n"), 0o644); err != nil {
		return "", err
	}
	return target, nil
}

func upToDate(target, stampFile string, tl Tool) bool {
	if fi, err := os.Stat(target); err != nil || fi.IsDir() {
		return false
	}
	b, err := os.ReadFile(stampFile)
	return err == nil && strings.TrimSpace(string(b)) == tl.stamp()
}

// build runs go install into a temporary GOBIN inside binDir and moves the
// result to target.
func build(ctx context.Context, tl Tool, binDir, target string) error {
	goBin, err := goCommand()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(binDir, ".build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "install", tl.stamp())
	// Outside any module or workspace, so neither our go.mod nor a go.work
	// takes part; our GOFLAGS (e.g. -mod=vendor) must not apply either.
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=", "GOWORK=off", "GO111MODULE=on")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s: GOBIN=%s go install %s: %v\n%s\n(set %s to use a prebuilt binary)",
			tl.Name, tmp, tl.stamp(), err, strings.TrimSpace(out.String()), tl.EnvVar())
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	if len(entries) != 1 {
		return fmt.Errorf("build %s: go install produced %d files in GOBIN, want 1", tl.Name, len(entries))
	}
	return os.Rename(filepath.Join(tmp, entries[0].Name()), target)
}

// goCommand finds the go command: $GOROOT/bin/go of the toolchain running
// the tests if it is known, else go on PATH.
func goCommand() (string, error) {
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command is needed to build test servers: %w", err)
	}
	return p, nil
}
