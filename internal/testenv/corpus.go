package testenv

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// RailsCompatDir returns shared/compat/rails-tasker, the Rails template
// corpus that sits next to the repository root, outside the repository.
// Without it the test is skipped with a message naming the expected path,
// so a lone clone passes, except under CI=true, where it fails: CI has the
// corpus beside its clone and must test it.
func RailsCompatDir(t testing.TB) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(filepath.Dir(root), "shared", "compat", "rails-tasker")
	fi, err := os.Stat(dir)
	switch corpusRule(err == nil && fi.IsDir(), os.Getenv("CI")) {
	case skipCorpusTest:
		t.Skipf("the Rails template corpus is not at %s (shared/compat/rails-tasker next to the repository root); skipping", dir)
	case failCorpusTest:
		t.Fatalf("the Rails template corpus is not at %s (shared/compat/rails-tasker next to the repository root), and CI=true requires it", dir)
	}
	return dir
}

// corpusAction is what a test needing the Rails corpus does.
type corpusAction int

const (
	useCorpus corpusAction = iota
	skipCorpusTest
	failCorpusTest
)

// corpusRule decides what a test needing the Rails corpus does, given
// whether the corpus directory exists and the value of $CI.
func corpusRule(exists bool, ci string) corpusAction {
	if exists {
		return useCorpus
	}
	if onCI, _ := strconv.ParseBool(ci); onCI {
		return failCorpusTest
	}
	return skipCorpusTest
}
