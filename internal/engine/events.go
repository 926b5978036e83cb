package engine

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// EventName is a lifecycle event name. The catalogue below is the only place
// names are defined; documentation and publishers read it.
type EventName string

// The lifecycle event catalogue.
const (
	TaskCreated        EventName = "task.created"
	TaskStarted        EventName = "task.started"
	TaskCompleted      EventName = "task.completed"
	TaskFailed         EventName = "task.failed"
	TaskCancelled      EventName = "task.cancelled"
	TaskRetryRequested EventName = "task.retry_requested"
	TaskResolved       EventName = "task.resolved"

	StepClaimed          EventName = "step.claimed"
	StepDispatched       EventName = "step.dispatched"
	StepDispatchFailed   EventName = "step.dispatch_failed"
	StepCompleted        EventName = "step.completed"
	StepFailed           EventName = "step.failed"
	StepRetryScheduled   EventName = "step.retry_scheduled"
	StepRetriesExhausted EventName = "step.retries_exhausted"
	StepTimedOut         EventName = "step.timed_out"
	StepResolved         EventName = "step.resolved"
	StepCancelled        EventName = "step.cancelled"
	StepRetryRequested   EventName = "step.retry_requested"
	StepWaiting          EventName = "step.waiting"
	StepCallbackReceived EventName = "step.callback_received"
	StepCallbackTimedOut EventName = "step.callback_timed_out"
	StepSkipped          EventName = "step.skipped"
	StepChildStarted     EventName = "step.child_started"

	ScheduleFired EventName = "schedule.fired"

	BatchProcessed     EventName = "scheduler.batch_processed"
	SweepCompleted     EventName = "scheduler.sweep_completed"
	PassFailed         EventName = "scheduler.pass_failed"
	ConcurrencyChanged EventName = "scheduler.concurrency_changed"
	StepsHeld          EventName = "scheduler.steps_held"

	WebhookDead EventName = "webhook.dead"
)

// Catalogue lists every lifecycle event with what it means.
var Catalogue = []struct {
	Name        EventName
	Description string
}{
	{TaskCreated, "a task was created from a template"},
	{TaskStarted, "the first step of a task was claimed"},
	{TaskCompleted, "every step of a task completed"},
	{TaskFailed, "a task can make no more progress because a step failed"},
	{TaskCancelled, "a task was cancelled"},
	{TaskRetryRequested, "an operator asked to retry the failed steps of a task"},
	{TaskResolved, "a task finished with at least one step resolved by an operator"},
	{StepClaimed, "a ready step was claimed for an attempt"},
	{StepDispatched, "a step attempt was handed to its handler"},
	{StepDispatchFailed, "a step attempt could not be handed to its handler; the claim was undone"},
	{StepCompleted, "a step attempt succeeded"},
	{StepFailed, "a step attempt failed permanently"},
	{StepRetryScheduled, "a step attempt failed and a retry is scheduled"},
	{StepRetriesExhausted, "a step attempt failed and no attempts remain"},
	{StepTimedOut, "a step attempt passed its deadline without a result"},
	{StepResolved, "an operator resolved a failed step"},
	{StepCancelled, "a step was cancelled with its task"},
	{StepRetryRequested, "an operator retry reset a failed step to pending"},
	{StepWaiting, "a step attempt was parked in waiting: a tasker.wait timer, a tasker.callback, or a handler that answered tasker_pending"},
	{StepCallbackReceived, "a callback (or an operator's steps/complete) completed or failed a step attempt"},
	{StepCallbackTimedOut, "a callback wait expired; the attempt failed as retryable with code callback_timeout"},
	{StepRetryRequested, "an operator retry reset a failed step to pending; or a step skipped below a retried or resolved step went back to pending (from skipped)"},
	{StepSkipped, "a step was skipped without running: its when was false (from in_progress), or its trigger rule cannot hold (from pending); reason says which"},
	{StepChildStarted, "a tasker.workflow step started (or, after a crash, found) its child task and waits for it; data {child_task_id}"},
	{ScheduleFired, "a schedule fired: the sweep started (or, with created false, found already started) the task of one fire time; data {schedule_id, index, fire_time, created}"},
	{BatchProcessed, "the scheduler processed a batch of messages"},
	{SweepCompleted, "the scheduler finished a sweep"},
	{PassFailed, "a scheduler pass failed (the database refused or was unreachable); its messages are retried"},
	{ConcurrencyChanged, "the adaptive in-flight limit changed; data has the new limit and the reason"},
	{StepsHeld, "a scheduler pass held back ready steps under their flow control (they stay pending, costing no attempt); data {rate_limit: n, concurrency: n}, one event per pass that held any"},
	{WebhookDead, "a webhook delivery failed its subscription's last attempt and was given up"},
}

// InCatalogue reports whether n is a lifecycle event of the catalogue.
func InCatalogue(n EventName) bool {
	for _, c := range Catalogue {
		if c.Name == n {
			return true
		}
	}
	return false
}

// Event is one lifecycle event.
type Event struct {
	Name          EventName `json:"name"`
	Time          time.Time `json:"time"`
	TaskID        uuid.UUID `json:"task_id,omitzero"`
	Namespace     string    `json:"namespace,omitempty"`
	Workflow      string    `json:"workflow,omitempty"`
	CorrelationID string    `json:"correlation_id,omitempty"`
	Step          string    `json:"step,omitempty"`
	StepID        uuid.UUID `json:"step_id,omitzero"`
	Attempt       int       `json:"attempt,omitempty"`
	Handler       string    `json:"handler,omitempty"`
	From          string    `json:"from,omitempty"`
	To            string    `json:"to,omitempty"`
	Reason        string    `json:"reason,omitempty"`
	// DurationMS is, on step.dispatched and step.dispatch_failed, how long
	// the invoker took to accept (or refuse) the attempt; on
	// scheduler.batch_processed, how long the pass took.
	DurationMS float64         `json:"duration_ms,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
	// Custom marks an event a handler published with its result
	// (contract.EventsKey); its name is the handler's, not the catalogue's.
	Custom bool `json:"custom,omitempty"`
}
