package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
)

// Large payloads (docs/architecture.md, "Large payloads"): a context or
// result stored out of line is kept in its row as a reference; reads of
// one task or step return the whole value. Lists keep the reference (their
// byte budget is counted in the database): read the task for the value. A
// value no longer stored (expired), or one that cannot be read, is returned
// as its reference, with context_error or result_error saying why.

// resolver is implemented by an Engine that stores large values out of
// line (engine.Engine.Resolve).
type resolver interface {
	Resolve(ctx context.Context, v json.RawMessage) (json.RawMessage, error)
}

// contextLimiter is implemented by an Engine that accepts contexts larger
// than DefaultMaxBodyBytes (engine.Engine.MaxContextBytes).
type contextLimiter interface {
	MaxContextBytes() int
}

// bodySlack is the room a create request needs beside its context.
const bodySlack = 64 << 10

// whole returns v, or the value its reference names. A value it cannot
// return whole is returned as its reference, with a sentence naming the
// reference and what went wrong (the context_error and result_error
// members): a task or step stays readable with one of its large values
// lost or corrupted. Only the request's own end (cancelled, timed out) is
// an error.
func (s *server) whole(ctx context.Context, what string, v json.RawMessage) (json.RawMessage, string, error) {
	rs, ok := s.eng.(resolver)
	if !ok || len(v) == 0 {
		return v, "", nil
	}
	out, err := rs.Resolve(ctx, v)
	if err == nil {
		return out, "", nil
	}
	if ctx.Err() != nil {
		return nil, "", err
	}
	uri := "its reference"
	if ref, ok, _ := contract.AsRef(v); ok {
		uri = ref.URI
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Expired (S3 lifecycle) or deleted: the reference is what is left.
		return v, fmt.Sprintf("the %s was stored out of line at %s and is no longer there (expired or deleted)", what, uri), nil
	case errors.Is(err, engine.ErrPayloadMismatch):
		return v, fmt.Sprintf("the %s stored out of line at %s cannot be read: %v", what, uri, engine.ErrPayloadMismatch), nil
	}
	s.log.ErrorContext(ctx, "read large value", "error", err, "uri", uri)
	return v, fmt.Sprintf("the %s stored out of line at %s cannot be read: the payload store did not return it"+
		" (the server log has the cause; quote correlation id %s)", what, uri, correlationFrom(ctx)), nil
}

// readTask reads a task with its context and step results whole, as the
// API shows it.
func (s *server) readTask(ctx context.Context, id uuid.UUID) (Task, error) {
	t, err := s.store.GetTask(ctx, id)
	if err != nil {
		return Task{}, err
	}
	var ctxErr string
	if t.Context, ctxErr, err = s.whole(ctx, "context", t.Context); err != nil {
		return Task{}, err
	}
	resErrs := make([]string, len(t.Steps))
	for i := range t.Steps {
		if t.Steps[i].Result, resErrs[i], err = s.whole(ctx, "result of step "+t.Steps[i].Name, t.Steps[i].Result); err != nil {
			return Task{}, err
		}
	}
	out := taskView(t, true)
	out.ContextError = ctxErr
	for i := range out.Steps {
		out.Steps[i].ResultError = resErrs[i]
	}
	return out, nil
}
