package engine

import (
	"errors"

	"github.com/taskerhq/tasker/internal/store"
)

// Errors the engine's operations return; check them with errors.Is. The
// store's error values never leave the engine: fromStore turns them into
// these, keeping the message and dropping the store's value from the chain.
var (
	// ErrNotFound: no task, or no step of that name in the task.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the task or step is not in a state that allows the
	// operation (cancel a finished task, retry a task not in error,
	// resolve a step not in error).
	ErrConflict = errors.New("conflict")
	// ErrIdempotencyConflict: the idempotency key was already used in its
	// scope with a different request. It names no task.
	ErrIdempotencyConflict = errors.New("this idempotency key was used with a different request")
)

// Error is an engine error value (Kind) with the message of its cause.
type Error struct {
	Kind  error
	cause error
}

func (e *Error) Error() string { return e.cause.Error() }

// Is reports whether target is e's Kind.
func (e *Error) Is(target error) bool { return target == e.Kind }

// fromStore turns the store's error values into the engine's; other errors
// are returned unchanged.
func fromStore(err error) error {
	for _, m := range []struct{ from, to error }{
		{store.ErrNotFound, ErrNotFound},
		{store.ErrConflict, ErrConflict},
		{store.ErrIdempotencyConflict, ErrIdempotencyConflict},
	} {
		if errors.Is(err, m.from) {
			return &Error{Kind: m.to, cause: err}
		}
	}
	return err
}
