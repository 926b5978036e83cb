package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/store"
)

// Large payloads (docs/architecture.md, "Large payloads"): a context or
// result stored out of line is kept in its row as a reference; reads of
// one task or step return the whole value. Lists keep the reference (their
// byte budget is counted in the database): read the task for the value. A
// value no longer stored (expired) is returned as its reference.

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

// whole returns v, or the value its reference names.
func (s *server) whole(ctx context.Context, v json.RawMessage) (json.RawMessage, error) {
	rs, ok := s.eng.(resolver)
	if !ok || len(v) == 0 {
		return v, nil
	}
	out, err := rs.Resolve(ctx, v)
	if errors.Is(err, fs.ErrNotExist) {
		// Expired (S3 lifecycle) or deleted: the reference is what is left.
		return v, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read large value: %w", err)
	}
	return out, nil
}

// readTask reads a task with its context and step results whole.
func (s *server) readTask(ctx context.Context, id uuid.UUID) (store.TaskView, error) {
	t, err := s.store.GetTask(ctx, id)
	if err != nil {
		return t, err
	}
	if t.Context, err = s.whole(ctx, t.Context); err != nil {
		return t, err
	}
	for i := range t.Steps {
		if t.Steps[i].Result, err = s.whole(ctx, t.Steps[i].Result); err != nil {
			return t, err
		}
	}
	return t, nil
}
