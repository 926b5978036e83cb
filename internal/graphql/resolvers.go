package graphql

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
)

// Input limits, the same as the REST API's request bodies.
const (
	maxNameLen      = 128
	maxVersionLen   = 64
	maxShortText    = 255 // initiator, sourceSystem
	maxReasonLen    = 1024
	maxTags         = 32
	maxTagLen       = 128
	maxIdemKeyLen   = 255
	maxResolveBytes = domain.MaxPayloadBytes
)

// resolver implements the generated ResolverRoot over the engine and the
// read model. Permissions were checked before it runs (guard).
type resolver struct {
	eng         Engine
	rd          Reader
	tpls        *template.Set
	maxResponse int
}

func (r *resolver) Query() QueryResolver       { return (*queryResolver)(r) }
func (r *resolver) Mutation() MutationResolver { return (*mutationResolver)(r) }
func (r *resolver) Task() TaskResolver         { return (*taskResolver)(r) }

type (
	queryResolver    resolver
	mutationResolver resolver
	taskResolver     resolver
)

func caller(ctx context.Context) Caller {
	c, _ := callerFrom(ctx) // guard refused requests without one
	return c
}

// parseID parses a task id argument.
func parseID(arg, raw string) (uuid.UUID, error) {
	id, err := uuid.Parse(raw)
	if err != nil || len(raw) != 36 {
		return uuid.Nil, coded(CodeInvalidParameter, "%s: the task id must be a UUID like 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", arg)
	}
	return id, nil
}

func checkName(arg, v string) error {
	if !template.ValidName(v) {
		return coded(CodeInvalidParameter, "%s: must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'", arg)
	}
	return nil
}

func (r *queryResolver) Task(ctx context.Context, id string) (*Task, error) {
	tid, err := parseID("id", id)
	if err != nil {
		return nil, err
	}
	return (*resolver)(r).task(ctx, tid)
}

func (r *resolver) task(ctx context.Context, id uuid.UUID) (*Task, error) {
	t, err := r.rd.GetTask(ctx, id)
	if err != nil {
		return nil, taskErr(id, err)
	}
	return taskOf(t), nil
}

func taskErr(id uuid.UUID, err error) error {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, engine.ErrNotFound) {
		return coded(CodeNotFound, "no task %s", id)
	}
	return err
}

func (r *queryResolver) Tasks(ctx context.Context, namespace, name *string, status []TaskStatus, limit *int, cursor *string) (*TaskPage, error) {
	// Like GET /v1/tasks without fields=context, a page whose query does
	// not select the context neither reads it nor counts it in the budget.
	f := store.ListFilter{Limit: defaultListLimit, MaxBytes: r.maxResponse, OmitContext: !selects(ctx, "tasks", "context")}
	for _, p := range []struct {
		arg string
		v   *string
		to  *string
	}{{"namespace", namespace, &f.Namespace}, {"name", name, &f.Name}} {
		if p.v == nil {
			continue
		}
		if err := checkName(p.arg, *p.v); err != nil {
			return nil, err
		}
		*p.to = *p.v
	}
	for _, s := range status {
		if !slices.Contains(f.Statuses, string(s)) {
			f.Statuses = append(f.Statuses, string(s))
		}
	}
	if limit != nil {
		if *limit < 1 || *limit > maxListLimit {
			return nil, coded(CodeInvalidParameter, "limit: must be from 1 to %d", maxListLimit)
		}
		f.Limit = *limit
	}
	if cursor != nil {
		c, ok := store.ParseCursor(*cursor)
		if !ok {
			return nil, coded(CodeInvalidParameter, "cursor: not one this API returned")
		}
		f.After = &c
	}
	tasks, next, err := r.rd.ListTasks(ctx, f)
	if err != nil {
		return nil, err
	}
	page := &TaskPage{Tasks: make([]Task, len(tasks))}
	for i, t := range tasks {
		page.Tasks[i] = *taskOf(t)
	}
	if next != nil {
		c := next.Encode()
		page.NextCursor = &c
	}
	return page, nil
}

// selects reports whether the current field's selection reaches path
// (through any alias or fragment).
func selects(ctx context.Context, path ...string) bool {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil {
		return true
	}
	return selectsIn(graphql.GetOperationContext(ctx), fc.Field.Selections, path)
}

func selectsIn(opCtx *graphql.OperationContext, set ast.SelectionSet, path []string) bool {
	for _, f := range graphql.CollectFields(opCtx, set, nil) {
		if f.Name != path[0] {
			continue
		}
		if len(path) == 1 || selectsIn(opCtx, f.Selections, path[1:]) {
			return true
		}
	}
	return false
}

func (r *queryResolver) Step(ctx context.Context, taskID, name string) (*StepDetail, error) {
	id, err := parseID("taskId", taskID)
	if err != nil {
		return nil, err
	}
	if err := checkName("name", name); err != nil {
		return nil, err
	}
	return (*resolver)(r).step(ctx, id, name)
}

func (r *taskResolver) Step(ctx context.Context, obj *Task, name string) (*StepDetail, error) {
	id, err := parseID("id", obj.ID)
	if err != nil {
		return nil, err
	}
	if err := checkName("name", name); err != nil {
		return nil, err
	}
	return (*resolver)(r).step(ctx, id, name)
}

func (r *resolver) step(ctx context.Context, id uuid.UUID, name string) (*StepDetail, error) {
	st, trs, taskFound, err := r.rd.GetStep(ctx, id, name)
	if err != nil {
		if (errors.Is(err, store.ErrNotFound) || errors.Is(err, engine.ErrNotFound)) && taskFound {
			return nil, coded(CodeNotFound, "task %s has no step %q", id, name)
		}
		return nil, taskErr(id, err)
	}
	out := &StepDetail{Step: stepOf(st), Transitions: make([]Transition, len(trs))}
	for i, tr := range trs {
		out.Transitions[i] = Transition{From: tr.From, To: tr.To, Attempt: tr.Attempt, Reason: tr.Reason, Actor: tr.Actor,
			Metadata: JSON(tr.Metadata), At: tr.At}
	}
	return out, nil
}

func (r *queryResolver) Templates(_ context.Context, namespace *string) ([]TemplateSummary, error) {
	if namespace != nil {
		if err := checkName("namespace", *namespace); err != nil {
			return nil, err
		}
	}
	out := []TemplateSummary{}
	seen := map[string]bool{}
	for _, t := range r.tpls.List() {
		key := t.Namespace + "/" + t.Name
		if seen[key] || (namespace != nil && t.Namespace != *namespace) {
			continue
		}
		seen[key] = true
		latest, err := r.tpls.Get(t.Namespace, t.Name, "")
		if err != nil {
			return nil, err
		}
		out = append(out, TemplateSummary{Namespace: latest.Namespace, Name: latest.Name, Version: latest.Version,
			Versions: versionsOf(r.tpls, t.Namespace, t.Name), Description: latest.Description, StepCount: len(latest.Steps)})
	}
	return out, nil
}

func (r *queryResolver) Template(_ context.Context, namespace, name string, version *string) (*Template, error) {
	for _, p := range []struct{ arg, v string }{{"namespace", namespace}, {"name", name}} {
		if err := checkName(p.arg, p.v); err != nil {
			return nil, err
		}
	}
	v := ""
	if version != nil {
		v = *version
	}
	if len(v) > maxVersionLen {
		return nil, coded(CodeInvalidParameter, "version: at most %d characters", maxVersionLen)
	}
	t, err := r.tpls.Get(namespace, name, v)
	if err != nil {
		return nil, err // template.ErrNotFound: not-found with its detail (known)
	}
	out := &Template{Namespace: t.Namespace, Name: t.Name, Version: t.Version, Versions: versionsOf(r.tpls, namespace, name),
		Description: t.Description, ContextSchema: JSON(t.ContextSchema), Steps: make([]TemplateStep, len(t.Steps))}
	for i, s := range t.Steps {
		deps := s.DependsOn
		if deps == nil {
			deps = []string{}
		}
		out.Steps[i] = TemplateStep{Name: s.Name, Description: s.Description, Handler: s.Handler, DependsOn: deps,
			MaxAttempts: s.Retry.MaxAttempts, Skippable: s.Skippable}
	}
	return out, nil
}

func versionsOf(set *template.Set, ns, name string) []string {
	vs := set.Versions(ns, name)
	out := make([]string, len(vs))
	for i, t := range vs {
		out[i] = t.Version
	}
	return out
}

// CreateTask is POST /v1/tasks: the same checks, the same idempotency
// scope (so a key replays across both APIs), the same engine call.
func (r *mutationResolver) CreateTask(ctx context.Context, in CreateTaskInput) (*CreateTaskPayload, error) {
	c := caller(ctx)
	req := engine.CreateRequest{Namespace: in.Namespace, Name: in.Name, Tags: in.Tags,
		IdempotencyScope: c.IdempotencyScope, CorrelationID: c.CorrelationID, Actor: c.Actor}
	var errs []fieldError
	bad := func(field, detail string) { errs = append(errs, fieldError{Field: "input." + field, Detail: detail}) }
	for _, f := range []struct{ field, v string }{{"namespace", in.Namespace}, {"name", in.Name}} {
		if !template.ValidName(f.v) {
			bad(f.field, "must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'")
		}
	}
	opt := func(field string, v *string, maxLen int, to *string) {
		if v == nil {
			return
		}
		if utf8.RuneCountInString(*v) > maxLen {
			bad(field, fmt.Sprintf("must be at most %d characters", maxLen))
		}
		*to = *v
	}
	opt("version", in.Version, maxVersionLen, &req.Version)
	opt("initiator", in.Initiator, maxShortText, &req.Initiator)
	opt("sourceSystem", in.SourceSystem, maxShortText, &req.SourceSystem)
	opt("reason", in.Reason, maxReasonLen, &req.Reason)
	opt("idempotencyKey", in.IdempotencyKey, maxIdemKeyLen, &req.IdempotencyKey)
	if in.IdempotencyKey != nil && !domain.Printable(*in.IdempotencyKey) {
		bad("idempotencyKey", "must be non-blank printable text")
	}
	if len(in.Tags) > maxTags {
		bad("tags", fmt.Sprintf("at most %d tags", maxTags))
	}
	for i, t := range in.Tags {
		if utf8.RuneCountInString(t) > maxTagLen {
			bad(fmt.Sprintf("tags[%d]", i), fmt.Sprintf("must be at most %d characters", maxTagLen))
		}
	}
	if in.Context != nil {
		if t := bytes.TrimSpace(in.Context); len(t) == 0 || t[0] != '{' {
			bad("context", "must be a JSON object")
		} else {
			req.Context = []byte(t)
		}
	}
	if len(errs) > 0 {
		return nil, invalidInput(errs...)
	}
	if _, err := r.tpls.Get(req.Namespace, req.Name, req.Version); err != nil {
		return nil, r.unknownTemplate(req, err)
	}
	created, err := r.eng.CreateTask(ctx, req)
	if err != nil {
		if errors.Is(err, template.ErrNotFound) {
			return nil, r.unknownTemplate(req, err)
		}
		return nil, err
	}
	t, err := (*resolver)(r).task(ctx, created.TaskID)
	if err != nil {
		return nil, err
	}
	return &CreateTaskPayload{Created: created.Created, Task: t}, nil
}

// unknownTemplate is an invalid input naming the field that named nothing
// (template.ErrNotFound; REST answers the same detail in its shape).
func (r *mutationResolver) unknownTemplate(req engine.CreateRequest, err error) error {
	detail, missing, ok := template.NotFoundDetail(err, req.Namespace, req.Name)
	switch {
	case !ok:
		return err
	case missing:
		return invalidInput(fieldError{Field: "input.name", Detail: detail + "; see the templates query"})
	}
	return invalidInput(fieldError{Field: "input.version", Detail: detail})
}

func reasonOf(reason *string) (string, error) {
	if reason == nil {
		return "", nil
	}
	if utf8.RuneCountInString(*reason) > maxReasonLen {
		return "", invalidInput(fieldError{Field: "reason", Detail: fmt.Sprintf("must be at most %d characters", maxReasonLen)})
	}
	return *reason, nil
}

func (r *mutationResolver) CancelTask(ctx context.Context, id string, reason *string) (*Task, error) {
	return r.operate(ctx, id, reason, r.eng.CancelTask, "is %s; only pending, in_progress or error tasks can be cancelled")
}

func (r *mutationResolver) RetryTask(ctx context.Context, id string, reason *string) (*Task, error) {
	return r.operate(ctx, id, reason, r.eng.RetryTask, "is %s; only a task in error can be retried")
}

func (r *mutationResolver) operate(ctx context.Context, rawID string, reason *string,
	do func(context.Context, uuid.UUID, string, string) error, conflictFmt string) (*Task, error) {
	id, err := parseID("id", rawID)
	if err != nil {
		return nil, err
	}
	why, err := reasonOf(reason)
	if err != nil {
		return nil, err
	}
	if err := do(ctx, id, caller(ctx).Actor, why); err != nil {
		if errors.Is(err, engine.ErrConflict) {
			t, gerr := r.rd.GetTask(ctx, id)
			if gerr != nil {
				return nil, taskErr(id, gerr)
			}
			return nil, coded(CodeConflict, "task %s "+conflictFmt, id, t.Status)
		}
		return nil, taskErr(id, err)
	}
	return (*resolver)(r).task(ctx, id)
}

func (r *mutationResolver) ResolveStep(ctx context.Context, taskID, step string, result JSON, reason *string) (*StepDetail, error) {
	id, err := parseID("taskId", taskID)
	if err != nil {
		return nil, err
	}
	if err := checkName("step", step); err != nil {
		return nil, err
	}
	why, err := reasonOf(reason)
	if err != nil {
		return nil, err
	}
	if len(result) > maxResolveBytes {
		return nil, invalidInput(fieldError{Field: "result", Detail: fmt.Sprintf("must be at most %d bytes of JSON", maxResolveBytes)})
	}
	if err := r.eng.ResolveStep(ctx, id, step, []byte(result), caller(ctx).Actor, why); err != nil {
		return nil, r.resolveErr(ctx, id, step, err)
	}
	return (*resolver)(r).step(ctx, id, step)
}

// resolveErr explains why a step could not be resolved, as REST does.
func (r *mutationResolver) resolveErr(ctx context.Context, id uuid.UUID, name string, err error) error {
	if !errors.Is(err, engine.ErrNotFound) && !errors.Is(err, engine.ErrConflict) {
		return err
	}
	t, gerr := r.rd.GetTask(ctx, id)
	if gerr != nil {
		return taskErr(id, gerr)
	}
	for _, st := range t.Steps {
		if st.Name != name {
			continue
		}
		if st.State != domain.StepError {
			return coded(CodeConflict, "step %q is %s; only a step in error can be resolved", name, st.State)
		}
		return coded(CodeConflict, "task %s is %s; its steps can no longer be resolved", id, t.Status)
	}
	return coded(CodeNotFound, "task %s has no step %q", id, name)
}

func (r *mutationResolver) CompleteStep(ctx context.Context, taskID, step string, result JSON) (*StepDetail, error) {
	id, err := parseID("taskId", taskID)
	if err != nil {
		return nil, err
	}
	if err := checkName("step", step); err != nil {
		return nil, err
	}
	res := []byte(result)
	if len(res) == 0 {
		res = []byte("null")
	}
	if _, err := r.eng.CompleteStep(ctx, id, step, res, caller(ctx).Actor); err != nil {
		switch {
		case errors.Is(err, engine.ErrNotFound):
			if _, gerr := r.rd.GetTask(ctx, id); gerr != nil {
				return nil, coded(CodeNotFound, "no task %s", id)
			}
			return nil, coded(CodeNotFound, "task %s has no step %q", id, step)
		case errors.Is(err, engine.ErrConflict):
			return nil, coded(CodeConflict, "%s; only a waiting step can be completed", err.Error())
		}
		return nil, err
	}
	return (*resolver)(r).step(ctx, id, step)
}

func taskOf(t store.TaskView) *Task {
	tags := t.Tags
	if tags == nil {
		tags = []string{}
	}
	out := &Task{ID: t.ID.String(), Namespace: t.Namespace, Name: t.Name, Version: t.Version, Status: string(t.Status),
		Context: JSON(t.Context), Initiator: t.Initiator, SourceSystem: t.SourceSystem, Reason: t.Reason, Tags: tags,
		IdempotencyKey: t.IdempotencyKey, CorrelationID: t.CorrelationID, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
		StartedAt: t.StartedAt, CompletedAt: t.CompletedAt, Steps: make([]Step, len(t.Steps))}
	for i, s := range t.Steps {
		out.Steps[i] = *stepOf(s)
	}
	return out
}

func stepOf(s store.StepView) *Step {
	out := &Step{ID: s.ID.String(), Name: s.Name, State: string(s.State), Handler: s.Handler, DependsOn: s.DependsOn,
		Attempts: s.Attempts, MaxAttempts: s.MaxAttempts, Result: JSON(s.Result), LastError: JSON(s.LastError),
		NextRetryAt: s.NextRetryAt, DeadlineAt: s.DeadlineAt, StartedAt: s.StartedAt, CompletedAt: s.CompletedAt,
		TimeoutSeconds: s.TimeoutSeconds, WaitingUntil: s.WaitingUntil}
	if out.DependsOn == nil {
		out.DependsOn = []string{}
	}
	if s.WaitKind != "" {
		k := s.WaitKind
		out.WaitKind = &k
	}
	return out
}
