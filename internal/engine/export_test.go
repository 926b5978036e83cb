package engine

import (
	"context"

	"github.com/taskerhq/tasker/internal/store"
)

// SkipResultCheck turns off the Go check of handler results, so tests can
// reach the database fallback that isolates a refused result.
func SkipResultCheck(e *Engine) { e.skipResultCheck = true }

// StartChildren runs the child-workflow start of claims as a duplicate or
// redelivered claim would (docs/architecture.md, "Child workflows").
func StartChildren(ctx context.Context, e *Engine, claims []store.Claim) error {
	_, _, _, err := e.children(ctx, claims, nil)
	return err
}
