package template_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskerhq/tasker/internal/template"
)

// parseBudget bounds one Parse of a fuzz input (a few KiB at most).
const parseBudget = 5 * time.Second

// FuzzParse feeds arbitrary bytes to the template parser. It must never
// panic or hang; a template it accepts must be internally consistent (valid
// names and version, unique steps, dependencies that exist and form no
// cycle, limits respected); a refusal must say why; and parsing is
// deterministic. Seeds: the shipped templates and the corpus in
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "templates", "*.yaml"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		"namespace: a\nname: b\nversion: 1.0.0\nsteps:\n  - {name: x, handler: tasker.noop}\n",
		"namespace_name: a\nname: b\nversion: 1.0.0\nstep_templates:\n  - {name: x, handler_class: tasker.noop, depends_on_steps: [y]}\n  - {name: y, handler_class: tasker.noop, depends_on_step: x}\n",
		"name: b\nsteps:\n  - {name: x, handler: tasker.noop, depends_on: [x]}\n",
		"a: &a [*a]\n",
		"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n",
		"steps: " + strings.Repeat("[", 200) + strings.Repeat("]", 200),
		"namespace: ../../etc\nname: passwd\nsteps: []\n",
		"name: b\nsteps:\n  - name: x\n    handler: tasker.http\n    config: {url: 'http://x/${context.a}'}\n    retry: {max_attempts: 1000, jitter: 2}\n    timeout_seconds: -1\n",
		"---\nname: a\n---\nname: b\n",
		"\xef\xbb\xbfname: bom\n",
		"name: b\ncontext_schema: {type: object, properties: {a: {$ref: '#'}}}\nsteps:\n  - {name: x, handler: tasker.noop}\n",
		"name: b\ntriggers:\n  - {type: s3, bucket: x, context: {a: '$.detail'}}\nsteps:\n  - {name: x, handler: tasker.noop}\n",
		"name: b\nsteps:\n  - {name: x, handler: tasker.noop}\n  - {name: y, handler: tasker.noop, depends_on: [x], when: 'results.x.ok && context.n > 1', trigger_rule: one_failed}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// A watchdog turns a hang into a failure with the input recorded.
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(parseBudget):
				panic(fmt.Sprintf("template.Parse did not return within %s on %d bytes: %q", parseBudget, len(data), data))
			}
		}()
		tpl, err := template.Parse("fuzz.yaml", data, template.Options{Env: "development"})
		tpl2, err2 := template.Parse("fuzz.yaml", data, template.Options{Env: "development"})
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("nondeterministic: %v / %v", err, err2)
		}
		if err != nil {
			if tpl != nil {
				t.Fatal("both a template and an error")
			}
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("empty error")
			}
			return
		}
		if tpl2.Key() != tpl.Key() || len(tpl2.Steps) != len(tpl.Steps) {
			t.Fatalf("nondeterministic: %s / %s", tpl.Key(), tpl2.Key())
		}
		if !template.ValidName(tpl.Namespace) || !template.ValidName(tpl.Name) || !template.ValidVersion(tpl.Version) {
			t.Fatalf("accepted invalid identity %q/%q@%q", tpl.Namespace, tpl.Name, tpl.Version)
		}
		if len(tpl.Steps) == 0 {
			t.Fatal("accepted a template without steps")
		}
		index := map[string]int{}
		for i, s := range tpl.Steps {
			if !template.ValidName(s.Name) {
				t.Fatalf("accepted step name %q", s.Name)
			}
			if _, dup := index[s.Name]; dup {
				t.Fatalf("accepted duplicate step %q", s.Name)
			}
			index[s.Name] = i
			if s.Handler == "" {
				t.Fatalf("step %q without a handler", s.Name)
			}
			if s.Retry.MaxAttempts < 1 || s.Retry.MaxAttempts > template.MaxMaxAttempts {
				t.Fatalf("step %q: max_attempts %d", s.Name, s.Retry.MaxAttempts)
			}
			if s.TimeoutSeconds < 1 || s.TimeoutSeconds > template.MaxTimeoutSeconds {
				t.Fatalf("step %q: timeout %d", s.Name, s.TimeoutSeconds)
			}
			if s.Retry.Jitter < 0 || s.Retry.Jitter > 1 || s.Retry.BackoffBase <= 0 || s.Retry.MaxBackoff < s.Retry.BackoffBase {
				t.Fatalf("step %q: retry %+v", s.Name, s.Retry)
			}
			if s.Concurrency < 0 {
				t.Fatalf("step %q: concurrency %d", s.Name, s.Concurrency)
			}
		}
		// Every dependency exists, and the graph is acyclic (Kahn).
		indeg := make([]int, len(tpl.Steps))
		for i, s := range tpl.Steps {
			for _, d := range s.DependsOn {
				if _, ok := index[d]; !ok {
					t.Fatalf("step %q depends on unknown %q", s.Name, d)
				}
				indeg[i]++
			}
		}
		var ready []int
		for i, n := range indeg {
			if n == 0 {
				ready = append(ready, i)
			}
		}
		seen := 0
		for len(ready) > 0 {
			i := ready[0]
			ready = ready[1:]
			seen++
			for j, s := range tpl.Steps {
				for _, d := range s.DependsOn {
					if d == tpl.Steps[i].Name {
						if indeg[j]--; indeg[j] == 0 {
							ready = append(ready, j)
						}
					}
				}
			}
		}
		if seen != len(tpl.Steps) {
			t.Fatalf("accepted a cycle in %s", tpl.Key())
		}
		// A template that starts another workflow makes a set only with it.
		if _, err := template.NewSet(tpl); err != nil && !slices.ContainsFunc(tpl.Steps, func(s template.Step) bool {
			return s.Handler == template.HandlerWorkflow
		}) {
			t.Fatalf("a parsed template does not make a set: %v", err)
		}
	})
}
