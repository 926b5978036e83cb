package engine

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/store"
)

// wakeFreed wakes the work flow control held back behind slots that an
// operator's cancel freed: the cancelled attempts that were in flight
// (step concurrency) and the cancelled tasks (task concurrency). The
// scheduler pass does the same for the slots it frees
// (docs/architecture.md, "Flow control"); a failure here is logged and left
// to the sweep.
func (e *Engine) wakeFreed(ctx context.Context, now time.Time, changed []store.OperatorResult) {
	var steps, tasks []uuid.UUID
	for _, r := range changed {
		if r.From == domain.TaskInProgress {
			tasks = append(tasks, r.Task.ID)
		}
		for _, s := range r.Steps {
			if s.From == domain.StepInProgress {
				steps = append(steps, s.StepID)
			}
		}
	}
	if len(steps) == 0 && len(tasks) == 0 {
		return
	}
	ws, err := e.store.FlowControlWakes(ctx, now, steps, tasks)
	if err != nil {
		e.log.WarnContext(ctx, "flow control wake-ups after a cancel failed; the sweep will find the work", "error", err)
		return
	}
	if len(ws) == 0 {
		return
	}
	wakes := make(map[uuid.UUID]time.Duration, len(ws))
	woken := map[string]int{}
	for _, w := range ws {
		wakes[w.TaskID] = 0
		woken[w.Reason]++
	}
	e.pub.Publish(ctx, []Event{{Name: TasksWoken, Time: now, Data: mustJSON(TasksWokenData{Woken: woken})}})
	e.wake(ctx, wakes, nil)
}
