package engine_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
)

// mapYAML: list gives files; process maps over them; report reads the
// list of results.
func mapYAML(mapExtra string) string {
	return `
namespace: test
name: pipeline
steps:
  - name: list
    handler: list
  - name: process
    handler: process
    depends_on: [list]
    retry: {max_attempts: 1}
    map:
      over: results.list.files
` + mapExtra + `
  - name: report
    handler: report
    depends_on: [process]
`
}

type mapRun struct {
	payloads    []contract.Payload
	maxInFlight int
	report      json.RawMessage
}

// runMap runs a pipeline task whose list step returns files and whose
// process instances fail for the items in failing; it records the most
// instances seen in flight at once.
func runMap(t *testing.T, h *harness, id uuid.UUID, files []string, failing map[string]bool) mapRun {
	t.Helper()
	var r mapRun
	r.payloads = h.drain(func(p contract.Payload) outcome {
		switch p.Tasker.Step {
		case "list":
			return ok(map[string]any{"files": files})
		case "report":
			r.report = p.Results["process"]
			return ok(map[string]any{"done": true})
		}
		var m struct {
			Index int    `json:"index"`
			Item  string `json:"item"`
		}
		if err := json.Unmarshal(p.Map, &m); err != nil {
			t.Fatalf("map payload %s: %v", p.Map, err)
		}
		if m.Index%50 == 0 { // a sample is enough: instances are handed out in index order
			var n int
			if err := h.pool.QueryRow(h.ctx, `SELECT count(*) FROM tasker_steps i
				JOIN tasker_steps m ON m.id = i.map_parent_id
				WHERE m.task_id = $1 AND m.name = 'process' AND i.state = 'in_progress'`, id).Scan(&n); err != nil {
				t.Fatal(err)
			}
			r.maxInFlight = max(r.maxInFlight, n)
		}
		if want := fmt.Sprintf("process[%d]", m.Index); p.Tasker.Step != want || !strings.HasSuffix(p.Tasker.IdempotencyKey, "/"+want) {
			t.Errorf("instance %s (key %s), want %s", p.Tasker.Step, p.Tasker.IdempotencyKey, want)
		}
		if failing[m.Item] {
			return fail(&contract.HandlerError{Message: "cannot read " + m.Item, Permanent: true})
		}
		if len(p.Results) != 0 {
			t.Errorf("instance %s got results %v, want only its item", p.Tasker.Step, p.Results)
		}
		return ok(map[string]any{"rows": len(m.Item), "file": m.Item})
	})
	return r
}

func TestMapStep(t *testing.T) {
	t.Parallel()
	files := []string{"a.csv", "bb.csv", "ccc.csv", "dddd.csv", "eeeee.csv"}
	h := newHarness(t, engine.Config{}, mapYAML("      max_concurrency: 2"))
	id := h.create("pipeline", `{}`)
	r := runMap(t, h, id, files, nil)
	mustStatus(t, h, id, "complete")
	if r.maxInFlight > 2 || r.maxInFlight == 0 {
		t.Errorf("at most %d instances in flight, want 1 or 2", r.maxInFlight)
	}
	if got := len(r.payloads); got != 7 {
		t.Errorf("%d invocations, want 7 (list, 5 instances, report)", got)
	}
	var res []struct {
		File string `json:"file"`
	}
	if err := json.Unmarshal(h.step(id, "process").Result, &res); err != nil {
		t.Fatal(err)
	}
	for i, f := range files {
		if i >= len(res) || res[i].File != f {
			t.Fatalf("process result = %s, want the instance results in item order", h.step(id, "process").Result)
		}
	}
	if string(r.report) == "" || !strings.Contains(string(r.report), `"file": "a.csv"`) && !strings.Contains(string(r.report), `"file":"a.csv"`) {
		t.Errorf("report saw results.process = %s", r.report)
	}
	// The task view shows the map step once, with its instances by state;
	// an instance is read by its name.
	tv, err := h.store.GetTask(h.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range tv.Steps {
		names = append(names, s.Name)
		if s.Name == "process" && (s.MapCounts["complete"] != len(files) || len(s.MapCounts) != 1) {
			t.Errorf("process map counts = %v, want %d complete", s.MapCounts, len(files))
		}
	}
	if strings.Join(names, ",") != "list,process,report" {
		t.Errorf("task view steps = %v, want list, process, report", names)
	}
	inst, trs, _, err := h.store.GetStep(h.ctx, id, "process[2]")
	if err != nil || inst.State != "complete" || len(trs) == 0 {
		t.Errorf("process[2] = %+v, %d transitions, %v", inst, len(trs), err)
	}
	// Every instance has its own audit rows.
	var n int
	if err := h.pool.QueryRow(h.ctx, `SELECT count(DISTINCT step_id) FROM tasker_transitions t
		JOIN tasker_steps s ON s.id = t.step_id WHERE s.task_id = $1 AND s.map_parent_id IS NOT NULL`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(files) {
		t.Errorf("%d instances with transitions, want %d", n, len(files))
	}
}

// A map step is completed by its instances alone: an operator's
// steps/complete is refused while they run, and changes nothing.
func TestMapStepRefusesCompletion(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, mapYAML("      max_concurrency: 1"))
	id := h.create("pipeline", `{}`)
	var refused bool
	h.drain(func(p contract.Payload) outcome {
		switch p.Tasker.Step {
		case "list":
			return ok(map[string]any{"files": []string{"a", "b"}})
		case "process[0]":
			_, err := h.eng.CompleteStep(h.ctx, id, "process", json.RawMessage(`{"forged":true}`), "mallory")
			refused = errors.Is(err, engine.ErrConflict) && strings.Contains(fmt.Sprint(err), "map step")
			if !refused {
				t.Errorf("CompleteStep on a running map step: %v, want a conflict naming the map step", err)
			}
		}
		return ok(map[string]any{"step": p.Tasker.Step})
	})
	mustStatus(t, h, id, "complete")
	if !refused {
		t.Fatal("process[0] never ran")
	}
	if res := string(h.step(id, "process").Result); strings.Contains(res, "forged") {
		t.Errorf("process result = %s, want its instances' results", res)
	}
}

func TestMapStepEnds(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		extra   string
		files   []string
		failing map[string]bool
		status  string
		process string // state of the map step
		result  string // its result, when complete
		errHas  string // its error, when failed
		reports bool
	}{
		{name: "empty list completes at once", files: []string{}, status: "complete", process: "complete",
			result: `[]`, reports: true},
		{name: "too many items", extra: "      max_items: 3", files: []string{"a", "b", "c", "d"}, status: "error",
			process: "error", errHas: "gave 4 items, more than max_items (3)"},
		{name: "an instance fails for good", files: []string{"a", "b", "c"}, failing: map[string]bool{"b": true},
			status: "error", process: "error", errHas: "map: 1 instance(s) failed, more than the 0 tolerated; first: process[1]: cannot read b"},
		{name: "tolerated failure", extra: "      tolerated_failures: 1", files: []string{"a", "b", "c"},
			failing: map[string]bool{"b": true}, status: "complete", process: "complete", reports: true,
			result: `[{"file": "a", "rows": 1}, null, {"file": "c", "rows": 1}]`},
		{name: "tolerated percentage exceeded", extra: `      tolerated_failures: "10%"`, files: []string{"a", "b", "c"},
			failing: map[string]bool{"b": true}, status: "error", process: "error", errHas: "more than the 0 tolerated"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, engine.Config{}, mapYAML(tc.extra))
			id := h.create("pipeline", `{}`)
			r := runMap(t, h, id, tc.files, tc.failing)
			mustStatus(t, h, id, tc.status)
			st := h.step(id, "process")
			if st.State != tc.process {
				t.Fatalf("process = %s (%s), want %s", st.State, st.LastError, tc.process)
			}
			if tc.result != "" && string(st.Result) != tc.result {
				t.Errorf("process result = %s, want %s", st.Result, tc.result)
			}
			if tc.errHas != "" && !strings.Contains(string(st.LastError), tc.errHas) {
				t.Errorf("process error = %s, want it to say %q", st.LastError, tc.errHas)
			}
			if (r.report != nil) != tc.reports {
				t.Errorf("report ran: %v, want %v", r.report != nil, tc.reports)
			}
		})
	}
}

// A failed map cancels its instances that have not started.
func TestMapFailureCancelsPending(t *testing.T) {
	t.Parallel()
	h := newHarness(t, engine.Config{}, mapYAML("      max_concurrency: 1"))
	id := h.create("pipeline", `{}`)
	runMap(t, h, id, []string{"a", "b", "c", "d"}, map[string]bool{"a": true})
	mustStatus(t, h, id, "error")
	for i, want := range []string{"error", "cancelled", "cancelled", "cancelled"} {
		if got := h.step(id, fmt.Sprintf("process[%d]", i)).State; got != want {
			t.Errorf("process[%d] = %s, want %s", i, got, want)
		}
	}
}

// 10,000 items: every instance runs once, never more than max_concurrency
// at once, and the result lists them in order.
func TestMapTenThousandItems(t *testing.T) {
	t.Parallel()
	const n = 10_000
	files := make([]string, n)
	for i := range files {
		files[i] = fmt.Sprintf("f%05d", i)
	}
	h := newHarness(t, engine.Config{ClaimLimit: 1000}, mapYAML("      max_concurrency: 500"))
	id := h.create("pipeline", `{}`)
	r := runMap(t, h, id, files, nil)
	mustStatus(t, h, id, "complete")
	if r.maxInFlight > 500 {
		t.Errorf("%d instances in flight at once, want at most 500", r.maxInFlight)
	}
	if len(r.payloads) != n+2 {
		t.Errorf("%d invocations, want %d", len(r.payloads), n+2)
	}
	var res []struct {
		File string `json:"file"`
	}
	if err := json.Unmarshal(h.step(id, "process").Result, &res); err != nil {
		t.Fatal(err)
	}
	if len(res) != n || res[0].File != files[0] || res[n-1].File != files[n-1] || res[4321].File != files[4321] {
		t.Fatalf("process result has %d items, not the %d instance results in order", len(res), n)
	}
}
