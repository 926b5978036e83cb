package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/store"
)

// finish runs a one-step task to complete (ok) or error at now.
func finish(t *testing.T, s *store.Store, tk task, now time.Time, ok bool) {
	t.Helper()
	c := claimOf(t, tk, claim(t, s, now, tk.ID), "a")
	r := okResult(c.StepID, c.Attempt, `{}`)
	if !ok {
		r = failResult(c.StepID, c.Attempt, true)
	}
	record(t, s, now, tk.ID, r)
}

func listIDs(t *testing.T, s *store.Store, f store.ListFilter) []uuid.UUID {
	t.Helper()
	var out []uuid.UUID
	f.Limit = 2 // several pages: the cursor of each walk is exercised
	for {
		page, next, err := s.ListTasks(t.Context(), f)
		if err != nil {
			t.Fatalf("list %+v: %v", f, err)
		}
		for _, v := range page {
			out = append(out, v.ID)
		}
		if next == nil {
			return out
		}
		f.After = next
	}
}

func TestListTasksSearch(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	mkTagged := func(at time.Time, corr string, tags ...string) task {
		nt := newTaskSpec(at, step("a"))
		nt.Tags, nt.CorrelationID = tags, corr
		return create(t, s, nt)
	}
	a := mkTagged(at(0), "c-1", "env:prod", "team:x")
	b := mkTagged(at(time.Minute), "c-2", "env:prod")
	c := mkTagged(at(2*time.Minute), "c-1", "env:dev", "team:x")
	d := mkTagged(at(3*time.Minute), "c-3", "env:prod", "team:x")
	e := mkTagged(at(4*time.Minute), "c-4")
	// b changes last: the update-time order differs from the creation order.
	finish(t, s, b, at(10*time.Minute), true)

	cases := []struct {
		name string
		f    store.ListFilter
		want []task
	}{
		{"one tag", store.ListFilter{Tags: []string{"env:prod"}}, []task{d, b, a}},
		{"every tag", store.ListFilter{Tags: []string{"env:prod", "team:x"}}, []task{d, a}},
		{"tag and status", store.ListFilter{Tags: []string{"env:prod"}, Statuses: []string{"complete"}}, []task{b}},
		{"tag and created range", store.ListFilter{Tags: []string{"team:x"}, CreatedFrom: at(time.Minute), CreatedTo: at(3 * time.Minute)}, []task{c}},
		{"no such tag", store.ListFilter{Tags: []string{"env:none"}}, nil},
		{"correlation id", store.ListFilter{CorrelationID: "c-1"}, []task{c, a}},
		{"created range", store.ListFilter{CreatedFrom: at(time.Minute), CreatedTo: at(4 * time.Minute)}, []task{d, c, b}},
		{"created from", store.ListFilter{CreatedFrom: at(4 * time.Minute)}, []task{e}},
		{"updated range, newest change first", store.ListFilter{UpdatedFrom: at(2 * time.Minute)}, []task{b, e, d, c}},
		{"updated to", store.ListFilter{UpdatedTo: at(time.Minute)}, []task{a}},
		{"updated and correlation", store.ListFilter{UpdatedFrom: at(0), CorrelationID: "c-2"}, []task{b}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var want []uuid.UUID
			for _, tk := range tc.want {
				want = append(want, tk.ID)
			}
			if got := listIDs(t, s, tc.f); !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

func TestTaskTransitions(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	tk := mk(t, s, step("a"), step("b", "a"))
	cs := claim(t, s, at(time.Second), tk.ID)
	a := claimOf(t, tk, cs, "a")
	record(t, s, at(2*time.Second), tk.ID, okResult(a.StepID, a.Attempt, `{}`))
	if _, err := s.CancelTask(t.Context(), tk.ID, at(3*time.Second), "alice", "stop"); err != nil {
		t.Fatal(err)
	}
	var all []store.TaskTransition
	var after int64
	for pages := 0; ; pages++ {
		page, more, err := s.TaskTransitions(t.Context(), tk.ID, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if !more {
			break
		}
		after = page[len(page)-1].Seq
		if pages > 20 {
			t.Fatal("pages never end")
		}
	}
	var got []string
	for i, tr := range all {
		if i > 0 && tr.Seq <= all[i-1].Seq {
			t.Fatalf("not in recorded order: %+v", all)
		}
		from := ""
		if tr.From != nil {
			from = *tr.From
		}
		got = append(got, tr.Step+":"+from+">"+tr.To+"/"+tr.Actor)
	}
	want := []string{
		":>pending/api", // created
		":pending>in_progress/" + sched,
		"a:pending>in_progress/" + sched,
		"a:in_progress>complete/" + sched,
		"b:pending>cancelled/alice",
		":in_progress>cancelled/alice",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("transitions\n got %v\nwant %v", got, want)
	}
	if _, _, err := s.TaskTransitions(t.Context(), uuid.New(), 0, 10); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing task: %v", err)
	}
	if _, _, err := s.TaskTransitions(t.Context(), tk.ID, 0, 0); err == nil {
		t.Fatal("limit 0 accepted")
	}
}

func TestBulkCancelRetry(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	live := mk(t, s, step("a"))
	failed := mk(t, s, step("a"))
	done := mk(t, s, step("a"))
	finish(t, s, failed, at(time.Second), false)
	finish(t, s, done, at(time.Second), true)

	out, err := s.RetryTasks(ctx, []uuid.UUID{live.ID, failed.ID, done.ID, uuid.New()}, at(time.Minute), "bob", "bulk retry")
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Changed) != 1 || out.Changed[0].Task.ID != failed.ID || len(out.Skipped) != 3 {
		t.Fatalf("retry = %+v", out)
	}
	if v := getTask(t, s, failed.ID); v.Status != "in_progress" {
		t.Fatalf("retried task is %s", v.Status)
	}
	out, err = s.CancelTasks(ctx, []uuid.UUID{done.ID, failed.ID, live.ID, live.ID}, at(2*time.Minute), "bob", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Changed) != 2 || len(out.Skipped) != 1 || out.Skipped[0] != done.ID {
		t.Fatalf("cancel = %+v", out)
	}
	for _, id := range []uuid.UUID{live.ID, failed.ID} {
		if v := getTask(t, s, id); v.Status != "cancelled" {
			t.Fatalf("task %s is %s", id, v.Status)
		}
		trs, _, err := s.TaskTransitions(ctx, id, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if last := trs[len(trs)-1]; last.To != "cancelled" || last.Actor != "bob" || last.Step != "" {
			t.Fatalf("last transition = %+v", last)
		}
	}
	if _, err := s.CancelTasks(ctx, make([]uuid.UUID, store.MaxBulkBatch+1), at(time.Hour), "bob", ""); err == nil {
		t.Fatal("oversized batch accepted")
	}
}

func TestPrune(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	old1, old2, recent, live := mk(t, s, step("a")), mk(t, s, step("a")), mk(t, s, step("a")), mk(t, s, step("a"))
	finish(t, s, old1, at(time.Second), true)
	finish(t, s, old2, at(2*time.Second), false)
	finish(t, s, recent, at(time.Hour), true)
	before := at(time.Minute)

	if n, err := s.PruneCount(ctx, before); err != nil || n != 2 {
		t.Fatalf("count = %d, %v", n, err)
	}
	boom := errors.New("bucket unreachable")
	if _, err := s.Prune(ctx, before, 10, func(context.Context, []json.RawMessage) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("failed export: %v", err)
	}
	if n, _ := s.PruneCount(ctx, before); n != 2 {
		t.Fatalf("a failed export deleted tasks: %d left", n)
	}
	var exported []json.RawMessage
	export := func(_ context.Context, docs []json.RawMessage) error {
		exported = append(exported, docs...)
		return nil
	}
	// One per call: the oldest first.
	ids, err := s.Prune(ctx, before, 1, export)
	if err != nil || len(ids) != 1 || ids[0] != old1.ID {
		t.Fatalf("prune = %v, %v", ids, err)
	}
	ids, err = s.Prune(ctx, before, 10, export)
	if err != nil || len(ids) != 1 || ids[0] != old2.ID {
		t.Fatalf("prune = %v, %v", ids, err)
	}
	if ids, err := s.Prune(ctx, before, 10, export); err != nil || len(ids) != 0 {
		t.Fatalf("third prune = %v, %v", ids, err)
	}
	if len(exported) != 2 {
		t.Fatalf("exported %d docs", len(exported))
	}
	var doc struct {
		Task struct {
			ID     uuid.UUID `json:"id"`
			Status string    `json:"status"`
		} `json:"task"`
		Steps       []map[string]any `json:"steps"`
		Transitions []map[string]any `json:"transitions"`
	}
	if err := json.Unmarshal(exported[0], &doc); err != nil || doc.Task.ID != old1.ID || doc.Task.Status != "complete" ||
		len(doc.Steps) != 1 || len(doc.Transitions) < 4 {
		t.Fatalf("export doc = %s (%v)", exported[0], err)
	}
	if _, ok := doc.Steps[0]["callback_token_hash"]; ok {
		t.Fatal("export carries the callback token hash")
	}
	for _, id := range []uuid.UUID{old1.ID, old2.ID} {
		if _, err := s.GetTask(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("pruned task still there: %v", err)
		}
	}
	for _, tbl := range []string{"tasker_steps", "tasker_transitions", "tasker_task_tags", "tasker_step_edges"} {
		var n int
		if err := s.Pool().QueryRow(ctx, "SELECT count(*) FROM "+tbl+" WHERE task_id = ANY($1)", []uuid.UUID{old1.ID, old2.ID}).Scan(&n); err != nil || n != 0 {
			t.Fatalf("%s keeps %d rows of pruned tasks (%v)", tbl, n, err)
		}
	}
	for _, id := range []uuid.UUID{recent.ID, live.ID} {
		getTask(t, s, id)
	}
	if _, err := s.Prune(ctx, before, 0, nil); err == nil {
		t.Fatal("limit 0 accepted")
	}
}
