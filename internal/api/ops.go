package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
)

// parseListFilter reads the filters of GET /v1/tasks (listParams) from q:
// also the filter of a bulk action (docs/operating.md, "Searching tasks").
func parseListFilter(q url.Values) (store.ListFilter, error) {
	f := store.ListFilter{Namespace: q.Get("namespace"), Name: q.Get("name"), CorrelationID: q.Get("correlation_id")}
	for _, p := range []string{"namespace", "name"} {
		if v := q.Get(p); q.Has(p) && !template.ValidName(v) {
			return f, badParam(p, p+" must be 1-128 letters, digits, '_', '.' or '-'")
		}
	}
	if v := q.Get("correlation_id"); q.Has("correlation_id") && (v == "" || len(v) > 255 || !domain.Printable(v)) {
		return f, badParam("correlation_id", "correlation_id must be 1-255 printable characters")
	}
	for _, v := range q["status"] {
		for _, st := range strings.Split(v, ",") {
			st = strings.TrimSpace(st)
			if !domain.TaskStatus(st).Valid() {
				return f, badParam("status", fmt.Sprintf("unknown status %q; one of %s", st, taskStatusList))
			}
			if !slices.Contains(f.Statuses, st) {
				f.Statuses = append(f.Statuses, st)
			}
		}
	}
	if len(q["tag"]) > maxTags {
		return f, badParam("tag", fmt.Sprintf("at most %d tag filters", maxTags))
	}
	for _, v := range q["tag"] {
		if v == "" || len(v) > maxTagLen {
			return f, badParam("tag", fmt.Sprintf("a tag filter is the whole tag, like tag=env:prod, 1-%d characters", maxTagLen))
		}
		if !slices.Contains(f.Tags, v) {
			f.Tags = append(f.Tags, v)
		}
	}
	for _, b := range []struct {
		name string
		dst  *time.Time
	}{{"created_from", &f.CreatedFrom}, {"created_to", &f.CreatedTo}, {"updated_from", &f.UpdatedFrom}, {"updated_to", &f.UpdatedTo}} {
		if !q.Has(b.name) {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, q.Get(b.name))
		if err != nil {
			return f, badParam(b.name, b.name+" must be an RFC 3339 time like 2026-12-01T00:00:00Z")
		}
		*b.dst = t
	}
	for _, r := range []struct {
		from, to string
		a, b     time.Time
	}{{"created_from", "created_to", f.CreatedFrom, f.CreatedTo}, {"updated_from", "updated_to", f.UpdatedFrom, f.UpdatedTo}} {
		if !r.a.IsZero() && !r.b.IsZero() && !r.a.Before(r.b) {
			return f, badParam(r.to, r.to+" must be after "+r.from)
		}
	}
	return f, nil
}

// listedByUpdate says whether the list of f is ordered by update time.
func listedByUpdate(f store.ListFilter) bool {
	return len(f.Tags) == 0 && (!f.UpdatedFrom.IsZero() || !f.UpdatedTo.IsZero())
}

// checkCursorKind refuses a cursor of the other list order.
func checkCursorKind(f store.ListFilter) error {
	if f.After != nil && (f.After.UpdatedAt != nil) != listedByUpdate(f) {
		return badParam("cursor", "the cursor belongs to a list with other filters")
	}
	return nil
}

// Transitions paging.
const (
	defaultTransitionsLimit = 100
	maxTransitionsLimit     = 1000
)

// GET /v1/tasks/{id}/transitions?limit=&cursor=
func (s *server) taskTransitions(w http.ResponseWriter, r *http.Request) {
	id, err := taskID(r)
	var q url.Values
	if err == nil {
		q, err = query(r, []string{"limit", "cursor"})
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	limit := defaultTransitionsLimit
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > maxTransitionsLimit {
			s.fail(w, r, badParam("limit", fmt.Sprintf("limit must be an integer from 1 to %d", maxTransitionsLimit)))
			return
		}
		limit = n
	}
	var after int64
	if q.Has("cursor") {
		raw, err := base64.RawURLEncoding.DecodeString(q.Get("cursor"))
		n, perr := strconv.ParseInt(strings.TrimPrefix(string(raw), "t1|"), 10, 64)
		if err != nil || perr != nil || !strings.HasPrefix(string(raw), "t1|") || n < 0 {
			s.fail(w, r, badParam("cursor", "the cursor is not one this API returned"))
			return
		}
		after = n
	}
	trs, more, err := s.store.TaskTransitions(r.Context(), id, after, limit)
	if err != nil {
		s.fail(w, r, taskErr(id, err))
		return
	}
	out := wireTransitionList(trs)
	if more && len(trs) > 0 {
		c := base64.RawURLEncoding.EncodeToString([]byte("t1|" + strconv.FormatInt(trs[len(trs)-1].Seq, 10)))
		out.NextCursor = &c
	}
	s.writeJSON(w, r, http.StatusOK, out)
}

func wireTransitionList(trs []store.TaskTransition) TaskTransitionList {
	out := TaskTransitionList{Transitions: make([]TaskTransition, len(trs))}
	for i, tr := range trs {
		out.Transitions[i] = TaskTransition{Seq: tr.Seq, Step: tr.Step, Transition: Transition{From: tr.From, To: tr.To,
			Attempt: tr.Attempt, Reason: tr.Reason, Actor: tr.Actor, Metadata: tr.Metadata, At: ts(tr.At)}}
	}
	return out
}

// POST /v1/tasks/bulk/cancel
func (s *server) bulkCancel(w http.ResponseWriter, r *http.Request) { s.bulk(w, r, engine.BulkCancel) }

// POST /v1/tasks/bulk/retry
func (s *server) bulkRetry(w http.ResponseWriter, r *http.Request) { s.bulk(w, r, engine.BulkRetry) }

// bulk runs a bulk action (docs/operating.md, "Bulk actions"). The body's
// filter takes the filters of GET /v1/tasks; without a status, cancel
// selects the cancellable statuses and retry the tasks in error.
func (s *server) bulk(w http.ResponseWriter, r *http.Request, action engine.BulkAction) {
	if _, err := query(r, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	req, err := decodeBulk(r, action)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	req.Actor = actor(r.Context())
	res, err := s.eng.Bulk(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := BulkResult{Action: string(action), DryRun: res.DryRun, Matched: res.Matched, Changed: res.Changed,
		Skipped: res.Skipped, Batches: res.Batches, Capped: res.Capped}
	if res.Next != nil {
		c := res.Next.Encode()
		out.NextCursor = &c
	}
	s.writeJSON(w, r, http.StatusOK, out)
}

func decodeBulk(r *http.Request, action engine.BulkAction) (engine.BulkRequest, error) {
	req := engine.BulkRequest{Action: action}
	obj, err := readObject(r, false)
	if err != nil {
		return req, err
	}
	q := url.Values{}
	if raw, ok := obj.take("filter"); !ok {
		obj.fail("filter", "is required: an object of the filters of GET /v1/tasks ({} selects every task)")
	} else {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			obj.fail("filter", "must be an object, not "+kindOf(raw))
		}
		for k, v := range m {
			if !slices.Contains(listParams, k) {
				obj.errs = append(obj.errs, FieldError{Pointer: "/filter/" + escapePointer(k),
					Detail: "is not a filter; one of " + strings.Join(listParams, ", ")})
				continue
			}
			var one string
			var many []string
			switch {
			case json.Unmarshal(v, &one) == nil:
				q.Add(k, one)
			case json.Unmarshal(v, &many) == nil:
				for _, x := range many {
					q.Add(k, x)
				}
			default:
				obj.errs = append(obj.errs, FieldError{Pointer: "/filter/" + escapePointer(k), Detail: "must be a string or an array of strings"})
			}
		}
	}
	if raw, ok := obj.take("dry_run"); ok && json.Unmarshal(raw, &req.DryRun) != nil {
		obj.fail("dry_run", "must be true or false")
	}
	req.Reason = obj.str("reason", maxReasonLen)
	if raw, ok := obj.take("max_tasks"); ok {
		if json.Unmarshal(raw, &req.MaxTasks) != nil || req.MaxTasks < 1 || req.MaxTasks > engine.MaxBulkTasks {
			obj.fail("max_tasks", fmt.Sprintf("must be an integer from 1 to %d", engine.MaxBulkTasks))
		}
	}
	cursor := obj.str("cursor", 200)
	if err := obj.finish(); err != nil {
		return req, err
	}
	f, err := parseListFilter(q)
	if err != nil {
		var p *Problem
		if errors.As(err, &p) && len(p.Errors) == 1 {
			return req, invalid(FieldError{Pointer: "/filter/" + escapePointer(p.Errors[0].Parameter), Detail: p.Detail})
		}
		return req, err
	}
	if cursor != "" {
		c, ok := store.ParseCursor(cursor)
		if !ok {
			return req, invalid(FieldError{Pointer: "/cursor", Detail: "the cursor is not one this API returned"})
		}
		f.After = &c
	}
	if err := checkCursorKind(f); err != nil {
		return req, invalid(FieldError{Pointer: "/cursor", Detail: "the cursor belongs to a selection with other filters"})
	}
	if len(f.Statuses) == 0 {
		if action == engine.BulkRetry {
			f.Statuses = []string{string(domain.TaskError)}
		} else {
			f.Statuses = []string{string(domain.TaskPending), string(domain.TaskInProgress), string(domain.TaskError)}
		}
	}
	req.Filter = f
	return req, nil
}
