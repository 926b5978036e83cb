// Package tasks holds the tasker commands that work on tasks through the
// API: run, tasks, show, graph, cancel, retry and resolve. They talk to the
// server only through internal/apiclient.
package tasks

import (
	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/wire"
)

func workflowOf(t *wire.Task) string {
	return t.Namespace + "/" + t.Name + "@" + t.Version
}

// Task statuses that end a task (error may be retried by an operator, but
// nothing moves it on by itself).
func taskFinished(status string) bool { return domain.TaskStatus(status).Terminal() }

func taskSucceeded(status string) bool { return domain.TaskStatus(status).Succeeded() }

// stepDone reports whether a step counts as done for the progress bar:
// complete, resolved or skipped (it lets its dependents run).
func stepDone(status string) bool { return domain.StepState(status).Satisfies() }
