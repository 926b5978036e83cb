package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
)

// Field limits of request bodies.
const (
	maxVersionLen   = 64
	maxShortText    = 255  // initiator, source_system
	maxReasonLen    = 1024 // reason
	maxTags         = 32
	maxTagLen       = 128
	maxIdemKeyLen   = 255
	maxResolveBytes = domain.MaxPayloadBytes // a resolved step's result, like a handler result
)

// List paging.
const (
	defaultListLimit = 20
	maxListLimit     = 100
)

func newID() string { return uuid.NewString() }

// writeJSON sends v as application/json with status.
func (s *server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		s.fail(w, r, fmt.Errorf("encode response: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// taskID parses the {id} path parameter.
func taskID(r *http.Request) (uuid.UUID, error) {
	raw := r.PathValue("id")
	id, err := uuid.Parse(raw)
	if err != nil || len(raw) != 36 {
		return uuid.Nil, badParam("id", "the task id must be a UUID like 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
	}
	return id, nil
}

// stepName parses the {step} path parameter.
func stepName(r *http.Request) (string, error) {
	name := r.PathValue("step")
	if !template.ValidName(name) {
		return "", badParam("step", "a step name is 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'")
	}
	return name, nil
}

// readStepName parses the {step} path parameter of the read route: a
// step's name or an instance of a map step, "<step>[<index>]"
// (docs/control-flow.md, "Map"; the brackets arrive URL-escaped or not).
// Only reads take instances: they are completed by their results, never
// resolved or completed by hand.
func readStepName(r *http.Request) (string, error) {
	name := r.PathValue("step")
	if base, idx, ok := strings.Cut(name, "["); ok && template.ValidName(base) && len(idx) >= 2 && len(idx) <= 11 &&
		strings.HasSuffix(idx, "]") && strings.Trim(idx[:len(idx)-1], "0123456789") == "" &&
		(idx == "0]" || idx[0] != '0') {
		return name, nil
	}
	if !template.ValidName(name) {
		return "", badParam("step", "a step name is 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-',"+
			" or a map instance like process[3]")
	}
	return name, nil
}

// query checks the query string: only the allowed parameters, each at
// most once (except the repeatable ones).
func query(r *http.Request, allowed []string, repeatable ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badParam("", "the query string is malformed")
	}
	for k, vs := range q {
		known := false
		for _, a := range allowed {
			known = known || a == k
		}
		if !known {
			return nil, badParam(k, fmt.Sprintf("unknown query parameter %q; allowed: %s", k, strings.Join(allowed, ", ")))
		}
		rep := false
		for _, a := range repeatable {
			rep = rep || a == k
		}
		if len(vs) > 1 && !rep {
			return nil, badParam(k, fmt.Sprintf("query parameter %q is given more than once", k))
		}
	}
	return q, nil
}

// decodeCreate reads the body of POST /v1/tasks.
func decodeCreate(r *http.Request) (engine.CreateRequest, error) {
	obj, err := readObject(r, false)
	if err != nil {
		return engine.CreateRequest{}, err
	}
	var req engine.CreateRequest
	req.Namespace = obj.required("namespace", 128)
	req.Name = obj.required("name", 128)
	req.Version = obj.str("version", maxVersionLen)
	if c := obj.value("context"); c != nil {
		if t := bytes.TrimSpace(c); t[0] != '{' {
			obj.fail("context", "must be a JSON object, not "+kindOf(c))
		} else {
			req.Context = t
		}
	}
	req.Initiator = obj.str("initiator", maxShortText)
	req.SourceSystem = obj.str("source_system", maxShortText)
	req.Reason = obj.str("reason", maxReasonLen)
	req.Tags = obj.strings("tags", maxTags, maxTagLen)
	n := len(obj.errs)
	req.IdempotencyKey = obj.str("idempotency_key", maxIdemKeyLen)
	if raw := obj.value("idempotency_key"); raw != nil && len(obj.errs) == n && !domain.Printable(req.IdempotencyKey) {
		obj.fail("idempotency_key", "must be non-blank printable text")
	}
	for _, f := range []struct{ field, v string }{{"namespace", req.Namespace}, {"name", req.Name}} {
		if f.v != "" && !template.ValidName(f.v) {
			obj.fail(f.field, "must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'")
		}
	}
	if err := obj.finish(); err != nil {
		return engine.CreateRequest{}, err
	}
	// The Idempotency-Key header stands in for a body without a key.
	if hk := r.Header.Get("Idempotency-Key"); hk != "" {
		switch {
		case len(r.Header.Values("Idempotency-Key")) > 1 || len(hk) > maxIdemKeyLen || !domain.Printable(hk):
			p := newProblem(http.StatusBadRequest, TypeInvalidParameter, "the Idempotency-Key header must be one printable value of at most 255 characters")
			p.Errors = []FieldError{{Header: "Idempotency-Key", Detail: p.Detail}}
			return engine.CreateRequest{}, p
		case req.IdempotencyKey == "":
			req.IdempotencyKey = hk
		case req.IdempotencyKey != hk:
			return engine.CreateRequest{}, invalid(FieldError{Pointer: "/idempotency_key", Detail: "differs from the Idempotency-Key header"})
		}
	}
	return req, nil
}

// POST /v1/tasks
func (s *server) createTask(w http.ResponseWriter, r *http.Request) {
	req, err := decodeCreate(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := s.tpls.Get(req.Namespace, req.Name, req.Version); err != nil {
		s.fail(w, r, s.unknownTemplate(req, err))
		return
	}
	req.CorrelationID = correlationFrom(r.Context())
	req.Actor = actor(r.Context())
	req.IdempotencyScope = s.idempotencyScope(r.Context())
	created, err := s.eng.CreateTask(r.Context(), req)
	if errors.Is(err, template.ErrNotFound) {
		err = s.unknownTemplate(req, err)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	t, err := s.readTask(r.Context(), created.TaskID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/tasks/"+t.ID)
	status := http.StatusOK
	if created.Created {
		status = http.StatusCreated
	}
	s.writeTask(w, r, status, t, nil)
}

// idempotencyScope is the scope of the caller's idempotency keys
// (docs/security.md, "Idempotency keys"): "sub:<subject>" for an
// authenticated caller, "" (the whole deployment) when auth is off.
func (s *server) idempotencyScope(ctx context.Context) string {
	if s.auth == nil {
		return ""
	}
	sub := ""
	if p := principalFrom(ctx); p != nil {
		sub = p.Subject
	}
	return "sub:" + sub
}

// unknownTemplate is a 422 pointing at the field that named nothing
// (template.ErrNotFound; GraphQL answers the same detail in its shape).
func (s *server) unknownTemplate(req engine.CreateRequest, err error) error {
	detail, missing, ok := template.NotFoundDetail(err, req.Namespace, req.Name)
	switch {
	case !ok:
		return err
	case missing:
		return invalid(FieldError{Pointer: "/name", Detail: detail + "; see GET /v1/templates"})
	}
	return invalid(FieldError{Pointer: "/version", Detail: detail})
}

// listParams are the query parameters of GET /v1/tasks that filter; the
// bulk actions take the same ones in their body's filter.
var listParams = []string{"namespace", "name", "status", "tag", "correlation_id",
	"created_from", "created_to", "updated_from", "updated_to"}

// GET /v1/tasks
func (s *server) listTasks(w http.ResponseWriter, r *http.Request) {
	q, err := query(r, append([]string{"limit", "cursor", "fields"}, listParams...), "status", "tag")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	fields, err := parseFields(q.Get("fields"), q.Has("fields"), taskListFields)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f, err := parseListFilter(q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f.Limit, f.MaxBytes, f.OmitContext = defaultListLimit, s.maxResponse-listEnvelope, !fields.has("context")
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > maxListLimit {
			s.fail(w, r, badParam("limit", fmt.Sprintf("limit must be an integer from 1 to %d", maxListLimit)))
			return
		}
		f.Limit = n
	}
	if q.Has("cursor") {
		c, ok := store.ParseCursor(q.Get("cursor"))
		if !ok {
			s.fail(w, r, badParam("cursor", "the cursor is not one this API returned"))
			return
		}
		f.After = &c
	}
	if err := checkCursorKind(f); err != nil {
		s.fail(w, r, err)
		return
	}
	tasks, next, err := s.store.ListTasks(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	views := make([]Task, len(tasks))
	for i, t := range tasks {
		views[i] = taskView(t, false)
	}
	var nc *string
	if next != nil {
		c := next.Encode()
		nc = &c
	}
	body, err := s.encodeTaskList(views, nc, fields, func(i int) string {
		c := store.Cursor{CreatedAt: tasks[i].CreatedAt, ID: tasks[i].ID}
		if listedByUpdate(f) {
			at := tasks[i].UpdatedAt
			c.UpdatedAt = &at
		}
		return c.Encode()
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeBody(w, http.StatusOK, body)
}

// taskStatusList is every task status, for error messages.
var taskStatusList = func() string {
	names := make([]string, len(domain.AllTaskStatuses))
	for i, s := range domain.AllTaskStatuses {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}()

// GET /v1/tasks/{id}
func (s *server) getTask(w http.ResponseWriter, r *http.Request) {
	id, err := taskID(r)
	var fields fieldSet
	if err == nil {
		var q url.Values
		if q, err = query(r, []string{"fields"}); err == nil {
			fields, err = parseFields(q.Get("fields"), q.Has("fields"), taskDetailFields)
		}
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	t, err := s.readTask(r.Context(), id)
	if err != nil {
		s.fail(w, r, taskErr(id, err))
		return
	}
	if fields != nil && fields["context"] {
		fields["context_error"] = true // says why the context is a reference
	}
	s.writeTask(w, r, http.StatusOK, t, fields)
}

func taskErr(id uuid.UUID, err error) error {
	if isNotFound(err) {
		return notFound("no task " + id.String())
	}
	return err
}

// operatorBody reads the optional {reason} (and, for resolve, {result}) body.
func operatorBody(r *http.Request, withResult bool) (reason string, result json.RawMessage, err error) {
	obj, err := readObject(r, true)
	if err != nil {
		return "", nil, err
	}
	reason = obj.str("reason", maxReasonLen)
	if withResult {
		result = obj.value("result")
		if len(result) > maxResolveBytes {
			obj.fail("result", fmt.Sprintf("must be at most %d bytes of JSON", maxResolveBytes))
		}
	}
	return reason, result, obj.finish()
}

// POST /v1/tasks/{id}/cancel
func (s *server) cancelTask(w http.ResponseWriter, r *http.Request) {
	s.operate(w, r, func(id uuid.UUID, reason string) error {
		return s.eng.CancelTask(r.Context(), id, actor(r.Context()), reason)
	}, "is %s; only pending, in_progress or error tasks can be cancelled")
}

// POST /v1/tasks/{id}/retry
func (s *server) retryTask(w http.ResponseWriter, r *http.Request) {
	s.operate(w, r, func(id uuid.UUID, reason string) error {
		return s.eng.RetryTask(r.Context(), id, actor(r.Context()), reason)
	}, "is %s; only a task in error can be retried")
}

func (s *server) operate(w http.ResponseWriter, r *http.Request, do func(uuid.UUID, string) error, conflictFmt string) {
	id, err := taskID(r)
	if err == nil {
		_, err = query(r, nil)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	reason, _, err := operatorBody(r, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := do(id, reason); err != nil {
		if errors.Is(err, engine.ErrConflict) {
			err = s.taskConflict(r, id, conflictFmt)
		}
		s.fail(w, r, taskErr(id, err))
		return
	}
	t, err := s.readTask(r.Context(), id)
	if err != nil {
		s.fail(w, r, taskErr(id, err))
		return
	}
	s.writeTask(w, r, http.StatusOK, t, nil)
}

// taskConflict explains a 409 with the task's current status.
func (s *server) taskConflict(r *http.Request, id uuid.UUID, format string) error {
	t, err := s.store.GetTask(r.Context(), id)
	if err != nil {
		return taskErr(id, err)
	}
	return conflict("task " + id.String() + " " + fmt.Sprintf(format, t.Status))
}

// stepParams reads the {id} and {step} path parameters of a step route,
// which takes no query parameters.
func stepParams(r *http.Request) (uuid.UUID, string, error) {
	id, err := taskID(r)
	if err != nil {
		return uuid.Nil, "", err
	}
	name, err := stepName(r)
	if err != nil {
		return uuid.Nil, "", err
	}
	_, err = query(r, nil)
	return id, name, err
}

// GET /v1/tasks/{id}/steps/{step}
func (s *server) getStep(w http.ResponseWriter, r *http.Request) {
	id, err := taskID(r)
	var name string
	if err == nil {
		name, err = readStepName(r)
	}
	var fields fieldSet
	if err == nil {
		var q url.Values
		if q, err = query(r, []string{"fields"}); err == nil {
			fields, err = parseFields(q.Get("fields"), q.Has("fields"), stepDetailFields)
		}
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeStep(w, r, id, name, fields)
}

func (s *server) writeStep(w http.ResponseWriter, r *http.Request, id uuid.UUID, name string, fields fieldSet) {
	st, trs, taskFound, err := s.store.GetStep(r.Context(), id, name)
	if err != nil {
		if isNotFound(err) && taskFound {
			err = notFound(fmt.Sprintf("task %s has no step %q", id, name))
		}
		s.fail(w, r, taskErr(id, err))
		return
	}
	if fields != nil {
		fields["name"] = true // a step is named by its name, as a task by its id
		if fields["result"] {
			fields["result_error"] = true // says why the result is a reference
		}
	}
	var resErr string
	if st.Result, resErr, err = s.whole(r.Context(), "result of step "+st.Name, st.Result); err != nil {
		s.fail(w, r, err)
		return
	}
	detail := stepDetailView(st, trs)
	detail.ResultError = resErr
	body, err := encodeFields(detail, fields)
	if err != nil {
		s.fail(w, r, fmt.Errorf("encode step: %w", err))
		return
	}
	writeBody(w, http.StatusOK, body)
}

// POST /v1/tasks/{id}/steps/{step}/resolve
func (s *server) resolveStep(w http.ResponseWriter, r *http.Request) {
	id, name, err := stepParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	reason, result, err := operatorBody(r, true)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	err = s.eng.ResolveStep(r.Context(), id, name, result, actor(r.Context()), reason)
	if err != nil {
		s.fail(w, r, s.resolveErr(r, id, name, err))
		return
	}
	s.writeStep(w, r, id, name, nil)
}

// resolveErr explains why a step could not be resolved.
func (s *server) resolveErr(r *http.Request, id uuid.UUID, name string, err error) error {
	if !errors.Is(err, engine.ErrNotFound) && !errors.Is(err, engine.ErrConflict) {
		return err
	}
	t, gerr := s.store.GetTask(r.Context(), id)
	if gerr != nil {
		return taskErr(id, gerr)
	}
	for _, st := range t.Steps {
		if st.Name != name {
			continue
		}
		if st.State != domain.StepError {
			return conflict(fmt.Sprintf("step %q is %s; only a step in error can be resolved", name, st.State))
		}
		return conflict(fmt.Sprintf("task %s is %s; its steps can no longer be resolved", id, t.Status))
	}
	return notFound(fmt.Sprintf("task %s has no step %q", id, name))
}

// GET /v1/tasks/{id}/graph?format=json|mermaid|dot|svg
func (s *server) taskGraph(w http.ResponseWriter, r *http.Request) {
	id, err := taskID(r)
	var q url.Values
	if err == nil {
		q, err = query(r, []string{"format"})
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	format := q.Get("format")
	if format == "" {
		format = "json"
	}
	if !slices.Contains([]string{"json", "mermaid", "dot", "svg"}, format) {
		s.fail(w, r, badParam("format", "format must be one of json, mermaid, dot, svg"))
		return
	}
	t, err := s.store.GetTask(r.Context(), id)
	if err != nil {
		s.fail(w, r, taskErr(id, err))
		return
	}
	g := taskGraph(t)
	var body, ctype string
	switch format {
	case "json":
		s.writeJSON(w, r, http.StatusOK, taskGraphView(g))
		return
	case "mermaid":
		body, ctype = g.Mermaid(), "text/plain; charset=utf-8"
	case "dot":
		body, ctype = g.DOT(), "text/plain; charset=utf-8"
	case "svg":
		body, ctype = g.SVG(), "image/svg+xml"
		// The SVG is inert: no scripts may run even if opened directly.
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(body))
}
