package engine

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/taskerhq/tasker/internal/store"
)

// addInputs adds to each claim the results of the steps its template
// step names in inputs beyond its direct parents (docs/templates.md,
// "Inputs"), in one set-based query for the whole batch. The claim query
// carries the direct parents' results; most steps need nothing more, and
// then this costs nothing. A payload the extra results make too large
// fails its step like any other (payload_too_large).
func (e *Engine) addInputs(ctx context.Context, claims []store.Claim) error {
	type want struct {
		claim int
		names []string
	}
	var wants []want
	var refs []store.StepRef
	for i, c := range claims {
		tpl, err := e.cfg.Templates.Get(c.Namespace, c.Workflow, c.Version)
		if err != nil {
			continue // a template gone since creation: the parents' results only
		}
		st, ok := tpl.Step(c.Step)
		if !ok || st.Inputs == nil {
			continue
		}
		var extra []string
		for _, n := range st.Inputs {
			if !contains(st.DependsOn, n) {
				extra = append(extra, n)
				refs = append(refs, store.StepRef{TaskID: c.TaskID, Step: n})
			}
		}
		if len(extra) > 0 {
			wants = append(wants, want{claim: i, names: extra})
		}
	}
	if len(refs) == 0 {
		return nil
	}
	got, err := e.store.StepResults(ctx, refs)
	if err != nil {
		return err
	}
	for _, w := range wants {
		c := &claims[w.claim]
		results := map[string]json.RawMessage{}
		if len(c.Results) > 0 {
			if err := json.Unmarshal(c.Results, &results); err != nil {
				return fmt.Errorf("parent results of %s: %w", c.Step, err)
			}
		}
		for _, n := range w.names {
			r, ok := got[store.StepRef{TaskID: c.TaskID, Step: n}]
			if !ok {
				continue
			}
			if len(r) == 0 {
				r = json.RawMessage("null")
			}
			results[n] = r
		}
		b, err := json.Marshal(results)
		if err != nil {
			return fmt.Errorf("inputs of %s: %w", c.Step, err)
		}
		c.Results = b
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
