package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/store"
)

// mapTask creates a task whose step m is expanded into n instances, with
// instance 0 complete (small result), 1 complete (a result over
// InstanceInlineResult) and 2 failed for good; the rest are pending.
func mapTask(t *testing.T, s *store.Store, n int) task {
	t.Helper()
	tk := mk(t, s, step("m"))
	c := claimOf(t, tk, claim(t, s, at(0), tk.ID), "m")
	items := make([]int, n)
	for i := range items {
		items[i] = i
	}
	raw, _ := json.Marshal(items)
	if _, err := s.ExpandMaps(t.Context(), at(time.Second), "test", []store.Expand{{StepID: c.StepID, Attempt: 1, Items: raw,
		MaxConcurrency: 3, Tolerated: 10}}); err != nil {
		t.Fatal(err)
	}
	claims := claim(t, s, at(2*time.Second), tk.ID)
	byName := map[string]store.Claim{}
	for _, c := range claims {
		byName[c.Step] = c
	}
	if len(byName) != 3 {
		t.Fatalf("claimed %v, want m[0..2]", claims)
	}
	big := fmt.Sprintf(`{"blob":%q}`, strings.Repeat("x", 3*store.InstanceInlineResult))
	record(t, s, at(3*time.Second), tk.ID, okResult(byName["m[0]"].StepID, 1, `{"n":0}`),
		okResult(byName["m[1]"].StepID, 1, big), failResult(byName["m[2]"].StepID, 1, true))
	return tk
}

func TestListMapInstances(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	const n = store.InstanceScanLimit + 500
	tk := mapTask(t, s, n)
	list := func(f store.InstanceFilter) store.InstancePage {
		t.Helper()
		p, found, err := s.ListMapInstances(t.Context(), tk.ID, "m", f)
		if err != nil || !found {
			t.Fatalf("list %+v: found %v, %v", f, found, err)
		}
		return p
	}
	indexes := func(p store.InstancePage) []int {
		out := make([]int, len(p.Instances))
		for i, v := range p.Instances {
			out[i] = v.Index
		}
		return out
	}
	next := func(p store.InstancePage) string {
		if p.Next == nil {
			return "nil"
		}
		return fmt.Sprint(*p.Next)
	}

	p := list(store.InstanceFilter{After: -1, Limit: 4})
	if got := fmt.Sprint(indexes(p)); got != "[0 1 2 3]" || next(p) != "3" || !p.Expanded || p.Workflow != "order" {
		t.Fatalf("first page %v next %s expanded %v workflow %q", got, next(p), p.Expanded, p.Workflow)
	}
	for i, want := range []struct {
		state   domain.StepState
		result  string
		omitted bool
	}{{domain.StepComplete, `{"n":0}`, false}, {domain.StepComplete, "", true}, {domain.StepError, "", false}, {domain.StepPending, "", false}} {
		v := p.Instances[i]
		if v.State != want.state || (want.result == "") != (v.Result == nil) || (v.Result != nil && !sameJSON(t, v.Result, []byte(want.result))) || v.ResultOmitted != want.omitted || v.Name != fmt.Sprintf("m[%d]", i) {
			t.Errorf("instance %d: %s %s result %s omitted %v; want %s %s %v", i, v.Name, v.State, v.Result, v.ResultOmitted,
				want.state, want.result, want.omitted)
		}
	}
	if v := p.Instances[2]; v.Attempts != 1 || v.CompletedAt == nil || !strings.Contains(string(v.LastError), "boom") {
		t.Errorf("failed instance: attempts %d completed %v error %s", v.Attempts, v.CompletedAt, v.LastError)
	}

	// Walking every page sees each instance once, in order.
	seen, after := 0, -1
	for pages := 0; ; pages++ {
		p := list(store.InstanceFilter{After: after, Limit: store.MaxInstancePage})
		for _, v := range p.Instances {
			if v.Index != seen {
				t.Fatalf("page %d: index %d, want %d", pages, v.Index, seen)
			}
			seen++
		}
		if p.Next == nil {
			break
		}
		after = *p.Next
	}
	if seen != n {
		t.Errorf("walked %d instances, want %d", seen, n)
	}

	// A state filter: the pending ones start at 3.
	p = list(store.InstanceFilter{State: domain.StepPending, After: -1, Limit: 2})
	if got := fmt.Sprint(indexes(p)); got != "[3 4]" || next(p) != "4" {
		t.Errorf("pending page %v next %s", got, next(p))
	}
	// A rare state: the walk stops at the scan limit with a cursor, and
	// the next page finds nothing more and ends.
	p = list(store.InstanceFilter{State: domain.StepError, After: -1, Limit: 10})
	if got := fmt.Sprint(indexes(p)); got != "[2]" || next(p) != fmt.Sprint(store.InstanceScanLimit-1) {
		t.Errorf("error page %v next %s, want [2] and %d", got, next(p), store.InstanceScanLimit-1)
	}
	p = list(store.InstanceFilter{State: domain.StepError, After: *p.Next, Limit: 10})
	if len(p.Instances) != 0 || p.Next != nil {
		t.Errorf("error page after the scan: %v next %s", indexes(p), next(p))
	}
	// No instance in flight: the filter's pages end.
	p = list(store.InstanceFilter{State: domain.StepInProgress, After: n - 10, Limit: 10})
	if len(p.Instances) != 0 || p.Next != nil {
		t.Errorf("in-progress page at the end: %v next %s", indexes(p), next(p))
	}
}

func TestListMapInstancesNotFound(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	tk := mk(t, s, step("plain"))
	f := store.InstanceFilter{After: -1, Limit: 10}
	if _, found, err := s.ListMapInstances(t.Context(), uuid.New(), "plain", f); !errors.Is(err, store.ErrNotFound) || found {
		t.Errorf("unknown task: found %v, %v", found, err)
	}
	if _, found, err := s.ListMapInstances(t.Context(), tk.ID, "nope", f); !errors.Is(err, store.ErrNotFound) || !found {
		t.Errorf("unknown step: found %v, %v", found, err)
	}
	p, found, err := s.ListMapInstances(t.Context(), tk.ID, "plain", f)
	if err != nil || !found || p.Expanded || len(p.Instances) != 0 || p.Next != nil {
		t.Errorf("a step that is no map: %+v found %v, %v", p, found, err)
	}
	for _, bad := range []store.InstanceFilter{{After: -1}, {After: -1, Limit: store.MaxInstancePage + 1}, {After: -2, Limit: 1}} {
		if _, _, err := s.ListMapInstances(t.Context(), tk.ID, "plain", bad); err == nil {
			t.Errorf("filter %+v accepted", bad)
		}
	}
}

func TestInstanceCursor(t *testing.T) {
	t.Parallel()
	for _, i := range []int{0, 1, 99999, 1<<31 - 1} {
		if got, ok := store.ParseInstanceCursor(store.EncodeInstanceCursor(i)); !ok || got != i {
			t.Errorf("cursor of %d reads back as %d, %v", i, got, ok)
		}
	}
	for _, bad := range []string{"", "5", "bTF8LTE", "bTF8MDE", "bTF8YQ", store.EncodeInstanceCursor(0) + "x", strings.Repeat("A", 50)} {
		if i, ok := store.ParseInstanceCursor(bad); ok {
			t.Errorf("cursor %q accepted as %d", bad, i)
		}
	}
}
