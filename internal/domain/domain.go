// Package domain owns the engine's vocabulary: the task and step states,
// the transitions allowed between them (docs/architecture.md, "States"),
// and the payload limit. It is a leaf: it imports nothing of the module, so
// every layer, from the store to the CLI, may share it.
//
// The states are the values of the CHECK constraints on tasker_tasks.status
// and tasker_steps.state; a test compares the two on a migrated database.
package domain

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxPayloadBytes is the payload limit: the largest invocation payload, step
// result or resolved result Tasker accepts (Lambda's asynchronous
// invocation limit, 256 KiB).
const MaxPayloadBytes = 256 << 10

// TaskStatus is the status of a task (tasker_tasks.status).
type TaskStatus string

// The task statuses.
const (
	TaskPending          TaskStatus = "pending"
	TaskInProgress       TaskStatus = "in_progress"
	TaskComplete         TaskStatus = "complete"
	TaskError            TaskStatus = "error"
	TaskCancelled        TaskStatus = "cancelled"
	TaskResolvedManually TaskStatus = "resolved_manually"
)

// AllTaskStatuses are every task status, in lifecycle order.
var AllTaskStatuses = []TaskStatus{TaskPending, TaskInProgress, TaskComplete, TaskError, TaskCancelled, TaskResolvedManually}

// TaskTransitions are the allowed changes of a task's status: the scheduler
// starts a task when it claims its first step and finishes it when no step is
// in flight, waiting or ready (a task whose steps need nothing may finish
// while pending); an operator cancels a live or failed task, and retrying or
// resolving a step of a failed task puts it back in progress.
var TaskTransitions = map[TaskStatus][]TaskStatus{
	TaskPending:          {TaskInProgress, TaskComplete, TaskError, TaskCancelled, TaskResolvedManually},
	TaskInProgress:       {TaskComplete, TaskError, TaskCancelled, TaskResolvedManually},
	TaskError:            {TaskInProgress, TaskCancelled},
	TaskComplete:         nil,
	TaskCancelled:        nil,
	TaskResolvedManually: nil,
}

// String returns the status as stored.
func (s TaskStatus) String() string { return string(s) }

// Valid reports whether s is a task status.
func (s TaskStatus) Valid() bool { return slices.Contains(AllTaskStatuses, s) }

// Live reports whether the task may still run steps (pending or in progress).
func (s TaskStatus) Live() bool { return s == TaskPending || s == TaskInProgress }

// Terminal reports whether the task is finished: complete, error, cancelled
// or resolved manually. An operator may still retry a step of a task in
// error (TaskTransitions).
func (s TaskStatus) Terminal() bool { return s.Valid() && !s.Live() }

// Succeeded reports whether the task finished well: complete or resolved
// manually.
func (s TaskStatus) Succeeded() bool { return s == TaskComplete || s == TaskResolvedManually }

// CanTransition reports whether a task may go from s to to.
func (s TaskStatus) CanTransition(to TaskStatus) bool {
	return slices.Contains(TaskTransitions[s], to)
}

// StepState is the state of a step (tasker_steps.state).
type StepState string

// The step states.
const (
	StepPending          StepState = "pending"
	StepInProgress       StepState = "in_progress"
	StepWaitingForRetry  StepState = "waiting_for_retry"
	StepWaiting          StepState = "waiting" // parked on a timer or a callback; not in flight
	StepComplete         StepState = "complete"
	StepSkipped          StepState = "skipped" // its condition was false or its trigger rule cannot hold
	StepError            StepState = "error"
	StepCancelled        StepState = "cancelled"
	StepResolvedManually StepState = "resolved_manually"
)

// AllStepStates are every step state, in lifecycle order.
var AllStepStates = []StepState{StepPending, StepInProgress, StepWaitingForRetry, StepWaiting, StepComplete,
	StepSkipped, StepError, StepCancelled, StepResolvedManually}

// LiveStepStates are the states of steps that may still run.
var LiveStepStates = []StepState{StepPending, StepInProgress, StepWaitingForRetry, StepWaiting}

// StepTransitions are the allowed changes of a step's state: the scheduler
// claims a pending or due step; a result completes it, schedules a retry or
// fails it (a dispatch failure also schedules a retry); a control-flow step
// parks in waiting or is skipped (a pending step whose trigger rule cannot
// hold, a claimed one whose condition was false); an operator cancels a live
// step, resolves a failed one or retries it (back to pending), which puts
// the steps skipped below it back to pending too.
var StepTransitions = map[StepState][]StepState{
	StepPending:          {StepInProgress, StepSkipped, StepCancelled},
	StepInProgress:       {StepComplete, StepWaitingForRetry, StepError, StepWaiting, StepSkipped, StepCancelled},
	StepWaitingForRetry:  {StepInProgress, StepCancelled},
	StepWaiting:          {StepComplete, StepWaitingForRetry, StepError, StepCancelled},
	StepError:            {StepResolvedManually, StepPending},
	StepComplete:         nil,
	StepSkipped:          {StepPending},
	StepCancelled:        nil,
	StepResolvedManually: nil,
}

// String returns the state as stored.
func (s StepState) String() string { return string(s) }

// Valid reports whether s is a step state.
func (s StepState) Valid() bool { return slices.Contains(AllStepStates, s) }

// Live reports whether the step may still run: pending, in progress,
// waiting for a retry or waiting.
func (s StepState) Live() bool { return slices.Contains(LiveStepStates, s) }

// Terminal reports whether the step is finished: complete, skipped, error,
// cancelled or resolved manually. An operator may still retry or resolve a
// step in error (StepTransitions).
func (s StepState) Terminal() bool { return s.Valid() && !s.Live() }

// Satisfies reports whether a step in state s lets its dependents run:
// complete, resolved manually or skipped.
func (s StepState) Satisfies() bool {
	return s == StepComplete || s == StepResolvedManually || s == StepSkipped
}

// CanTransition reports whether a step may go from s to to.
func (s StepState) CanTransition(to StepState) bool {
	return slices.Contains(StepTransitions[s], to)
}

// Printable reports whether s is non-blank, valid UTF-8 and printable
// throughout: the rule for the identifiers callers choose (idempotency
// keys, correlation ids), whichever API they come through.
func Printable(s string) bool {
	if strings.TrimSpace(s) == "" || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
