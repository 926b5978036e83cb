package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
)

// TestProblemFor: every error value the engine, the templates and the
// Reader return maps to a problem type, wrapped or not; the store's
// conflict and idempotency values, which the engine translates, and any
// other error map to nothing (a logged 500 with no detail).
func TestProblemFor(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		status int
		typ    string
	}{
		{"engine not found", engine.ErrNotFound, 404, TypeNotFound},
		{"engine conflict", engine.ErrConflict, 409, TypeConflict},
		{"engine idempotency conflict", engine.ErrIdempotencyConflict, 409, TypeConflict},
		{"reader not found", store.ErrNotFound, 404, TypeNotFound},
		{"template not found", fmt.Errorf("%w: a/b", template.ErrNotFound), 404, TypeNotFound},
		{"context invalid", &template.ContextError{}, 422, TypeValidation},
		{"body too large", &http.MaxBytesError{Limit: 10}, 413, TypeTooLarge},
		{"problem", badParam("x", "bad"), 400, TypeInvalidParameter},
		{"store conflict is not mapped", store.ErrConflict, 0, ""},
		{"store idempotency is not mapped", store.ErrIdempotencyConflict, 0, ""},
		{"other", errors.New("boom"), 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, err := range []error{c.err, fmt.Errorf("wrapped: %w", c.err)} {
				p := problemFor(err)
				if c.status == 0 {
					if p != nil {
						t.Errorf("problemFor(%v) = %+v, want nil", err, p)
					}
					continue
				}
				if p == nil || p.Status != c.status || p.Type != c.typ {
					t.Errorf("problemFor(%v) = %+v, want %d %s", err, p, c.status, c.typ)
				}
			}
		})
	}
	// Every row of the mapping is covered above.
	for _, m := range errorProblems {
		if p := problemFor(m.err); p == nil || p.Type == "" {
			t.Errorf("errorProblems row %v maps to %+v", m.err, p)
		}
	}
}

// TestFailAnswersProblems: fail answers every error with problem+json, the
// unknown ones with a 500 that says nothing of the cause.
func TestFailAnswersProblems(t *testing.T) {
	s := &server{log: slog.New(slog.DiscardHandler)}
	for _, err := range []error{
		engine.ErrNotFound, engine.ErrConflict, engine.ErrIdempotencyConflict, store.ErrNotFound,
		store.ErrConflict, errors.New("pq: relation tasker_tasks does not exist"),
	} {
		w := httptest.NewRecorder()
		r := httptest.NewRequestWithContext(context.Background(), "GET", "/v1/tasks", nil)
		s.fail(w, r, err)
		if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%v: Content-Type %q", err, ct)
		}
		if w.Code >= 500 && strings.Contains(w.Body.String(), err.Error()) {
			t.Errorf("%v: a 500 leaks its cause: %s", err, w.Body)
		}
	}
}
