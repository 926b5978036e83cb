package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/store"
)

// failStep puts step name of task id in error, and the task too, as a
// scheduler pass that used up the step's attempts would.
func failStep(t *testing.T, s *store.Store, id uuid.UUID, name string) {
	t.Helper()
	ctx := context.Background()
	_, err := s.Pool().Exec(ctx, `UPDATE tasker_steps SET state = 'error', attempts = 3, result = '{"partial":1}'
		WHERE task_id = $1 AND name = $2`, id, name)
	if err == nil {
		_, err = s.Pool().Exec(ctx, `UPDATE tasker_tasks SET status = 'error' WHERE id = $1`, id)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestResolveStepResult: resolving without a result keeps the failed
// attempt's partial result and records no metadata; with one, replaces it.
func TestResolveStepResult(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		result     json.RawMessage
		wantResult string
		wantMeta   string
	}{
		{"keeps result", nil, `{"partial": 1}`, ""},
		{"replaces result", json.RawMessage(`{"manual":true}`), `{"manual": true}`, `{"result": {"manual": true}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := newTask(t, s, "shop", "order", t0)
			failStep(t, s, id, "b")
			res, err := s.ResolveStep(ctx, id, "b", tc.result, t0.Add(time.Second), "op", "")
			if err != nil {
				t.Fatal(err)
			}
			if res.From != "error" || res.Task.Status != "in_progress" || len(res.Steps) != 1 ||
				res.Steps[0] != (store.StepChange{StepID: res.Steps[0].StepID, Step: "b", Attempt: 3, From: "error", To: "resolved_manually"}) {
				t.Fatalf("resolve = %+v", res)
			}
			st, trs, _, err := s.GetStep(ctx, id, "b")
			if err != nil {
				t.Fatal(err)
			}
			if st.State != "resolved_manually" || string(st.Result) != tc.wantResult || !st.CompletedAt.Equal(t0.Add(time.Second)) {
				t.Fatalf("step = %+v result %s", st, st.Result)
			}
			if tr := trs[len(trs)-1]; tr.To != "resolved_manually" || tr.Reason != "resolved by operator" || string(tr.Metadata) != tc.wantMeta {
				t.Fatalf("transition = %+v metadata %s", tr, tr.Metadata)
			}
			if _, err := s.ResolveStep(ctx, id, "b", nil, t0, "op", ""); !errors.Is(err, store.ErrConflict) {
				t.Fatalf("second resolve: %v", err)
			}
		})
	}
}
