package devserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/taskerhq/tasker/internal/devserver"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/internal/template"
	"github.com/taskerhq/tasker/internal/testenv"
	"github.com/taskerhq/tasker/sdk"
)

// railsContexts are valid contexts for the corpus's workflows, by
// namespace/name@version, leaving out what the schemas' defaults fill in.
var railsContexts = map[string]string{
	"blog_examples/customer_analytics@1.0.0":   `{"date_range":{"start_date":"2026-01-01","end_date":"2026-01-31"},"quality_thresholds":{}}`,
	"customer_success/process_refund@1.3.0":    `{"ticket_id":"T-1","customer_id":"C-1","refund_amount":1200}`,
	"default/api_integration_yaml_task@0.1.0":  `{"cart_id":1}`,
	"api_tests/integration_yaml_example@0.1.0": `{"cart_id":1}`,
	"blog_examples/monitored_checkout@1.0.0":   `{}`,
	"ecommerce/process_order@1.0.0": `{"cart_items":[{"product_id":1,"quantity":2,"price":9.5}],` +
		`"payment_info":{"token":"tok","amount":19,"method":"credit_card","currency":"EUR"},"customer_info":{"email":"a@b.example","name":"Ada"}}`,
	"payments/process_refund@2.1.0":         `{"payment_id":"pay_1","refund_amount":500}`,
	"default/simple_dummy_task@0.1.0":       `{"input_data":"x"}`,
	"blog_examples/user_registration@1.0.0": `{"user_info":{"email":"a@b.example","name":"Ada"}}`,
}

// railsDefaults are context values the schemas' defaults must have
// stored, by workflow: JSON pointer → value.
var railsDefaults = map[string]map[string]any{
	"blog_examples/customer_analytics@1.0.0": {"/processing_mode": "standard", "/force_refresh": false,
		"/quality_thresholds/min_customer_records": 100.0},
	"customer_success/process_refund@1.3.0": {"/requires_approval": true},
	"payments/process_refund@2.1.0":         {"/partial_refund": false},
	"blog_examples/user_registration@1.0.0": {"/user_info/plan": "free", "/user_info/source": "web"},
}

// All ten files of the Rails corpus run to completion under tasker dev,
// unchanged, with their Ruby handler classes mapped by handler_aliases to
// a Go stub; the stored contexts have the schemas' defaults.
func TestRailsCorpusRuns(t *testing.T) {
	t.Parallel()
	dir := testenv.RailsCompatDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 10 {
		t.Fatalf("the corpus has %d files, want 10", len(files))
	}
	// Every Ruby class of the corpus, mapped to the stub in one aliases file.
	classes := map[string]bool{}
	for _, f := range files {
		tpl, err := template.LoadFile(f, template.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range tpl.Steps {
			classes[s.Handler] = true
		}
	}
	var aliases strings.Builder
	for c := range classes {
		fmt.Fprintf(&aliases, "%q: rails.stub\n", c)
	}
	// order_processing.yaml and order_processing_handler.yaml define the same
	// workflow version: they run on two servers.
	groups := [][]string{nil, nil}
	for _, f := range files {
		g := 0
		if filepath.Base(f) == "order_processing_handler.yaml" {
			g = 1
		}
		groups[g] = append(groups[g], f)
	}
	var mu sync.Mutex
	ran := map[string][]string{} // workflow → steps run
	completed := 0               // tasks, one per file
	for i, group := range groups {
		t.Run(fmt.Sprintf("server%d", i), func(t *testing.T) {
			t.Parallel()
			fsys := fstest.MapFS{template.AliasesFile: {Data: []byte(aliases.String())}}
			for _, f := range group {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				fsys[filepath.Base(f)] = &fstest.MapFile{Data: data}
			}
			reg := sdk.NewRegistry()
			err := reg.Register("rails.stub", func(_ context.Context, in sdk.Input) (any, error) {
				p := in.Payload()
				mu.Lock()
				key := p.Tasker.Namespace + "/" + p.Tasker.Workflow + "@" + p.Tasker.WorkflowVersion
				ran[key] = append(ran[key], p.Tasker.Step)
				mu.Unlock()
				parents := make([]string, 0, len(p.Results))
				for n := range p.Results {
					parents = append(parents, n)
				}
				sort.Strings(parents)
				return map[string]any{"step": p.Tasker.Step, "saw": parents}, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			srv := startWith(t, devserver.Options{Templates: fsys, Registry: reg})
			for _, f := range group {
				tpl, err := template.LoadFile(f, template.Options{})
				if err != nil {
					t.Fatal(err)
				}
				key := tpl.Key()
				ctxJSON, ok := railsContexts[key]
				if !ok {
					t.Fatalf("no test context for %s (%s)", key, f)
				}
				code, task := call(t, srv.Handler, "POST", "/v1/tasks", map[string]any{
					"namespace": tpl.Namespace, "name": tpl.Name, "version": tpl.Version, "context": json.RawMessage(ctxJSON)})
				if code != http.StatusCreated {
					t.Fatalf("%s: create: %d %v", key, code, task)
				}
				id := task["id"].(string)
				done := waitDone(t, srv.Handler, id)
				if done["status"] != "complete" {
					t.Fatalf("%s: task ended %v: %v", key, done["status"], done["steps"])
				}
				mu.Lock()
				completed++
				steps := slices.Clone(ran[key])
				mu.Unlock()
				if len(steps) < len(tpl.Steps) {
					t.Errorf("%s: the stub ran %v, want every step", key, steps)
				}
				// Each step saw exactly its direct parents' results.
				for _, s := range tpl.Steps {
					res, _ := stepOf(t, srv.Handler, id, s.Name)["result"].(map[string]any)
					var saw []string
					for _, n := range res["saw"].([]any) {
						saw = append(saw, n.(string))
					}
					want := slices.Clone(s.DependsOn)
					sort.Strings(want)
					if !slices.Equal(saw, want) {
						t.Errorf("%s: step %s saw results of %v, want %v", key, s.Name, saw, want)
					}
				}
				var stored json.RawMessage
				if err := srv.Pool.QueryRow(context.Background(), `SELECT context FROM tasker_tasks WHERE id = $1`, id).Scan(&stored); err != nil {
					t.Fatal(err)
				}
				var doc any
				_ = json.Unmarshal(stored, &doc)
				for ptr, want := range railsDefaults[key] {
					if got := pointer(doc, ptr); got != want {
						t.Errorf("%s: stored context %s = %v, want the schema default %v", key, ptr, got, want)
					}
				}
			}
		})
	}
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		if completed != 10 {
			t.Errorf("%d tasks completed, want 10 (one per file)", completed)
		}
	})
}

// Without aliases, tasker dev refuses the corpus with one error naming
// every unmapped Ruby class.
func TestRailsCorpusUnmappedClasses(t *testing.T) {
	t.Parallel()
	dir := testenv.RailsCompatDir(t)
	data, err := os.ReadFile(filepath.Join(dir, "order_processing.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.ReadFile(filepath.Join(dir, "payments_process_refund.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = devserver.Start(context.Background(), devserver.Options{DatabaseURL: pgtest.URL(t),
		Templates: fstest.MapFS{"a.yaml": {Data: data}, "b.yaml": {Data: other}},
		// One class mapped, by Options: it is not named.
		HandlerAliases: map[string]string{"Ecommerce::StepHandlers::ValidateCartHandler": "tasker.noop"}})
	var es template.Errors
	if !errors.As(err, &es) || len(es) != 1 || !errors.Is(err, template.ErrUnknownHandler) {
		t.Fatalf("err = %v, want one unknown-handlers error", err)
	}
	msg := err.Error()
	for _, w := range []string{"Ecommerce::StepHandlers::ProcessPaymentHandler (a.yaml:", "b.yaml:", "handler_aliases"} {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not contain %q", msg, w)
		}
	}
	if strings.Contains(msg, "ValidateCartHandler") {
		t.Errorf("error %q names a mapped class", msg)
	}
}

// pointer resolves a JSON pointer (no escapes) in a decoded document.
func pointer(doc any, ptr string) any {
	for _, part := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		m, ok := doc.(map[string]any)
		if !ok {
			return nil
		}
		doc = m[part]
	}
	return doc
}
