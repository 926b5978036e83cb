package dev

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --lambdas (TASKER_LAMBDAS_FILE) names the local function map; a broken
// one is a start-up error naming the problem.
func TestLambdaSource(t *testing.T) {
	t.Parallel()
	o, err := parseOptions([]string{"-lambdas", "x.yaml"}, envMap(map[string]string{"TASKER_LAMBDAS_FILE": "y.yaml"}), io.Discard)
	if err != nil || o.lambdasFile != "x.yaml" {
		t.Fatalf("lambdasFile %q, err %v", o.lambdasFile, err)
	}
	if o, _ = parseOptions(nil, envMap(map[string]string{"TASKER_LAMBDAS_FILE": "y.yaml"}), io.Discard); o.lambdasFile != "y.yaml" {
		t.Fatalf("lambdasFile %q from the environment", o.lambdasFile)
	}
	log := slog.New(slog.DiscardHandler)
	good := filepath.Join("..", "..", "..", "examples", "handlers", "lambdas.local.yaml")
	r, src, err := lambdaSource(good, log)
	if err != nil || src != good || len(r.Names()) != 3 {
		t.Fatalf("runner %v, source %q, err %v", r, src, err)
	}
	bad := filepath.Join(t.TempDir(), "lambdas.local.yaml")
	if err := os.WriteFile(bad, []byte("f: {runtime: cobol, path: ., handler: a.b}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := lambdaSource(bad, log); err == nil || !strings.Contains(err.Error(), `"cobol" is not supported`) {
		t.Fatalf("err = %v", err)
	}
	if _, _, err := lambdaSource(filepath.Join(t.TempDir(), "missing.yaml"), log); err == nil {
		t.Fatal("a missing file given by name was accepted")
	}
}
