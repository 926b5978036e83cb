package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/wire"
)

// Paging a map step's instances (docs/control-flow.md, "Map").
const defaultInstanceLimit = 100

// stepStateList is every step state, for error messages.
var stepStateList = func() string {
	names := make([]string, len(domain.AllStepStates))
	for i, s := range domain.AllStepStates {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}()

// GET /v1/tasks/{id}/steps/{step}/instances?state=&limit=&cursor=
func (s *server) listInstances(w http.ResponseWriter, r *http.Request) {
	id, err := taskID(r)
	var name string
	if err == nil {
		name, err = stepName(r)
	}
	var f store.InstanceFilter
	if err == nil {
		f, err = parseInstanceQuery(r)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	page, taskFound, err := s.store.ListMapInstances(r.Context(), id, name, f)
	if err != nil {
		if isNotFound(err) && taskFound {
			err = notFound(fmt.Sprintf("task %s has no step %q", id, name))
		}
		s.fail(w, r, taskErr(id, err))
		return
	}
	if !page.Expanded && !s.maybeMap(page, name) {
		s.fail(w, r, notFound(fmt.Sprintf("step %q of task %s is not a map step; only a map step has instances", name, id)))
		return
	}
	out := wire.MapInstanceList{Instances: make([]wire.MapInstance, len(page.Instances))}
	for i, v := range page.Instances {
		out.Instances[i] = wire.MapInstance{Index: v.Index, Name: v.Name, Status: string(v.State), Attempts: v.Attempts,
			MaxAttempts: v.MaxAttempts, Result: v.Result, ResultOmitted: v.ResultOmitted, LastError: v.LastError,
			NextRetryAt: tsp(v.NextRetryAt), StartedAt: tsp(v.StartedAt), CompletedAt: tsp(v.CompletedAt),
			WaitingUntil: tsp(v.WaitingUntil), WaitKind: v.WaitKind}
	}
	if page.Next != nil {
		c := store.EncodeInstanceCursor(*page.Next)
		out.NextCursor = &c
	}
	s.writeJSON(w, r, http.StatusOK, out)
}

// maybeMap reports whether a step without instances may be a map step
// that has not run (or ran over an empty list): its task's template says
// so, or is not loaded here to say otherwise.
func (s *server) maybeMap(page store.InstancePage, name string) bool {
	tpl, err := s.tpls.Get(page.Namespace, page.Workflow, page.Version)
	if err != nil {
		return true
	}
	for _, st := range tpl.Steps {
		if st.Name == name {
			return st.Map != nil
		}
	}
	return true
}

// parseInstanceQuery reads state, limit and cursor.
func parseInstanceQuery(r *http.Request) (store.InstanceFilter, error) {
	f := store.InstanceFilter{After: -1, Limit: defaultInstanceLimit}
	q, err := query(r, []string{"state", "limit", "cursor"})
	if err != nil {
		return f, err
	}
	if q.Has("state") {
		f.State = domain.StepState(q.Get("state"))
		if !f.State.Valid() {
			return f, badParam("state", fmt.Sprintf("state %q is not a step state; one of %s", q.Get("state"), stepStateList))
		}
	}
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > store.MaxInstancePage {
			return f, badParam("limit", fmt.Sprintf("limit must be an integer from 1 to %d", store.MaxInstancePage))
		}
		f.Limit = n
	}
	if q.Has("cursor") {
		after, ok := store.ParseInstanceCursor(q.Get("cursor"))
		if !ok {
			return f, badParam("cursor", "the cursor is not one this route returned")
		}
		f.After = after
	}
	return f, nil
}
