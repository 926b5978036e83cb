package docstest

import (
	"reflect"
	"testing"
)

func TestExtract(t *testing.T) {
	src := "# T\n\n<!-- docstest: skip needs AWS -->\n```sh\naws s3 ls\n```\n\n- item\n\n  ```yaml\n  a: 1\n  ```\n\n```\nplain\n```\n"
	got := Extract("x.md", src)
	want := []Block{
		{File: "x.md", Line: 4, Lang: "sh", Text: "aws s3 ls\n", Directive: "skip needs AWS"},
		{File: "x.md", Line: 10, Lang: "yaml", Text: "a: 1\n"},
		{File: "x.md", Line: 14, Lang: "", Text: "plain\n"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Extract:\n got %#v\nwant %#v", got, want)
	}
	if r, ok := got[0].Skip(); !ok || r != "needs AWS" {
		t.Errorf("Skip() = %q, %v", r, ok)
	}
	if got[2].Kind() != "" {
		t.Errorf("an untagged block is not checked, got kind %q", got[2].Kind())
	}
}

func TestPlanShell(t *testing.T) {
	p := PlanShell("make dev   # server\nLOG_LEVEL=debug tasker dev --addr :1\ngo run ./cmd/tasker dev\ntasker run a/b \\\n  --watch\nsam build && \\\n  sam deploy\necho ok\n")
	wantSkipped := []string{"make dev   # server", "LOG_LEVEL=debug tasker dev --addr :1", "go run ./cmd/tasker dev", "sam build &&  sam deploy"}
	if !reflect.DeepEqual(p.Skipped, wantSkipped) {
		t.Errorf("skipped %q, want %q", p.Skipped, wantSkipped)
	}
	want := ": skipped by docstest\n: skipped by docstest\n: skipped by docstest\ntasker run a/b \\\n  --watch\n: skipped by docstest\n: skipped by docstest\necho ok\n"
	if p.Script != want {
		t.Errorf("script:\n%s\nwant:\n%s", p.Script, want)
	}
	if p.SyntaxOnly {
		t.Error("SyntaxOnly for a block without aws/sam substitutions")
	}
	if !PlanShell("API=$(aws cloudformation describe-stacks)\ncurl \"$API\"\n").SyntaxOnly {
		t.Error("a block calling $(aws ...) must be syntax-checked only")
	}
}
