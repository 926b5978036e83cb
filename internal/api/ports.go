package api

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
)

// Engine is what the API asks of the engine: create tasks, the operator
// actions, its health and its templates. *engine.Engine implements it. The
// operations report engine.ErrNotFound, engine.ErrConflict and
// engine.ErrIdempotencyConflict, which the API maps to problem types
// (problemFor).
type Engine interface {
	CreateTask(ctx context.Context, req engine.CreateRequest) (engine.Created, error)
	CancelTask(ctx context.Context, id uuid.UUID, actor, reason string) error
	RetryTask(ctx context.Context, id uuid.UUID, actor, reason string) error
	ResolveStep(ctx context.Context, id uuid.UUID, step string, result json.RawMessage, actor, reason string) error
	// Callback and CompleteStep also report engine.ErrCallbackExpired and
	// engine.ErrInvalidResult (callbacks.go).
	Callback(ctx context.Context, token string, req engine.CallbackRequest) (engine.CallbackOutcome, error)
	CompleteStep(ctx context.Context, id uuid.UUID, step string, result json.RawMessage, actor string) (engine.CallbackOutcome, error)
	// Schedules lists every schedule with its next n fire times;
	// PauseSchedule pauses or resumes one (engine.ErrNotFound).
	Schedules(ctx context.Context, n int) ([]engine.ScheduleView, error)
	PauseSchedule(ctx context.Context, id int64, paused bool) (engine.ScheduleView, error)
	// TemplateSchedules lists one template version's schedules with their
	// state and next n fire times (GET /v1/templates/{namespace}/{name}).
	TemplateSchedules(ctx context.Context, tpl *template.Template, n int) ([]engine.ScheduleView, error)
	// Bulk cancels or retries the tasks a filter selects, in batches.
	Bulk(ctx context.Context, req engine.BulkRequest) (engine.BulkResult, error)
	Health() (engine.HealthState, int)
	InstanceID() string
	Templates() *template.Set
}

// Reader is the API's read model: the tasks, steps and counts it shows.
// *store.Store implements it. A missing task or step is an error wrapping
// store.ErrNotFound (GetStep also reports whether the task exists), which
// the API maps to a 404 (problemFor); any other error is a 500.
type Reader interface {
	Ping(ctx context.Context) error
	GetTask(ctx context.Context, id uuid.UUID) (store.TaskView, error)
	GetStep(ctx context.Context, taskID uuid.UUID, name string) (step store.StepView, transitions []store.TransitionView, taskFound bool, err error)
	ListTasks(ctx context.Context, f store.ListFilter) (tasks []store.TaskView, next *store.Cursor, err error)
	Status(ctx context.Context, since time.Time) (store.SystemStatus, error)
	TaskTransitions(ctx context.Context, id uuid.UUID, after int64, limit int) (trs []store.TaskTransition, more bool, err error)
	// ListMapInstances pages a map step's instances (docs/control-flow.md,
	// "Map"); it reports whether the task exists, like GetStep.
	ListMapInstances(ctx context.Context, taskID uuid.UUID, name string, f store.InstanceFilter) (page store.InstancePage, taskFound bool, err error)
}

// The production implementations.
var (
	_ Engine = (*engine.Engine)(nil)
	_ Reader = (*store.Store)(nil)
)
