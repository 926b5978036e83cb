package engine

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
)

// Reasons and codes of condition outcomes (docs/architecture.md, "States").
const (
	// reasonWhenFalse prefixes the skip reason of a step whose when was
	// false; the expression follows.
	reasonWhenFalse = "when was false: "
	// codeConditionError is the error code of a step whose when could not
	// be evaluated (a missing key, a non-boolean value, the cost limit).
	codeConditionError = "condition_error"
)

// conditions evaluates the `when` of the claimed steps that have one, over
// the claim's context and parent results, before anything is dispatched.
// It returns the claims to dispatch (no condition, or a true one) and, for
// the others, the results to record: a skip when the condition was false;
// a permanent failure naming the expression when it could not be
// evaluated, which fails that step only.
func (e *Engine) conditions(ctx context.Context, claims []store.Claim) (run []store.Claim, decided []store.StepResult, tasks []uuid.UUID) {
	seen := map[uuid.UUID]bool{}
	for _, c := range claims {
		if c.When == "" {
			run = append(run, c)
			continue
		}
		// The condition sees whole values; the claim dispatched keeps its
		// references (docs/architecture.md, "Large payloads").
		wc, err := e.wholeClaim(ctx, c)
		if err != nil {
			decided = append(decided, failure(c.StepID, c.Attempt,
				&contract.HandlerError{Message: err.Error(), Code: codePayloadUnavailable}, "failed: "+err.Error()))
			if !seen[c.TaskID] {
				seen[c.TaskID] = true
				tasks = append(tasks, c.TaskID)
			}
			continue
		}
		ok, err := e.evalCondition(wc)
		switch {
		case err != nil:
			msg := "when: " + err.Error()
			e.log.WarnContext(ctx, "step condition failed", "correlation_id", c.CorrelationID, "task_id", c.TaskID,
				"step", c.Step, "error", err)
			decided = append(decided, failure(c.StepID, c.Attempt,
				&contract.HandlerError{Message: msg, Permanent: true, Code: codeConditionError}, "failed: "+msg))
		case !ok:
			decided = append(decided, store.StepResult{StepID: c.StepID, Attempt: c.Attempt, Skip: true,
				Reason: truncate(reasonWhenFalse + c.When)})
		default:
			run = append(run, c)
			continue
		}
		if !seen[c.TaskID] {
			seen[c.TaskID] = true
			tasks = append(tasks, c.TaskID)
		}
	}
	return run, decided, tasks
}

// evalCondition evaluates a claim's condition with the program its
// template compiled when it loaded. A task keeps the expression it was
// created with: if the loaded template now says something else (or is
// gone), the task's own expression is compiled for this evaluation.
func (e *Engine) evalCondition(c store.Claim) (bool, error) {
	var cond *template.Condition
	if tpl, err := e.cfg.Templates.Get(c.Namespace, c.Workflow, c.Version); err == nil {
		if st, ok := tpl.Step(c.Step); ok && st.When != nil && st.When.Expr == c.When {
			cond = st.When
		}
	}
	if cond == nil {
		var err error
		if cond, err = template.CompileCondition(c.When); err != nil {
			return false, fmt.Errorf("condition %q: %w", c.When, err)
		}
	}
	return cond.Eval(c.Context, c.Results)
}
