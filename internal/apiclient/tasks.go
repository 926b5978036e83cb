package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/taskerhq/tasker/internal/wire"
)

// The task endpoints. Each returns the decoded answer and the raw body, so
// a caller can print the API's own JSON.

// TaskPath is the path of task id.
func TaskPath(id string) string { return "/v1/tasks/" + url.PathEscape(id) }

// CreateTask posts req (a JSON object) to /v1/tasks. The status tells a
// new task (201) from an idempotent replay (200).
func (c *Client) CreateTask(ctx context.Context, req any) (wire.Task, []byte, int, error) {
	var t wire.Task
	raw, code, err := c.Post(ctx, "/v1/tasks", req, &t)
	return t, raw, code, err
}

// Task fetches one task with its steps.
func (c *Client) Task(ctx context.Context, id string) (wire.Task, []byte, error) {
	var t wire.Task
	raw, err := c.Get(ctx, TaskPath(id), nil, &t)
	return t, raw, err
}

// ListTasks fetches one page of tasks; q holds the filters and the cursor.
func (c *Client) ListTasks(ctx context.Context, q url.Values) (wire.TaskList, []byte, error) {
	var l wire.TaskList
	raw, err := c.Get(ctx, "/v1/tasks", q, &l)
	return l, raw, err
}

// TaskGraph fetches a task's step graph in format (mermaid, dot, svg, json).
func (c *Client) TaskGraph(ctx context.Context, id, format string) ([]byte, error) {
	data, _, err := c.Do(ctx, http.MethodGet, TaskPath(id)+"/graph", url.Values{"format": {format}}, nil)
	return data, err
}

// CancelTask cancels a task; req is the optional body ({"reason": ...}).
func (c *Client) CancelTask(ctx context.Context, id string, req any) (wire.Task, []byte, error) {
	return c.taskAction(ctx, id, "cancel", req)
}

// RetryTask retries the failed steps of a task in error; req is the
// optional body ({"reason": ...}).
func (c *Client) RetryTask(ctx context.Context, id string, req any) (wire.Task, []byte, error) {
	return c.taskAction(ctx, id, "retry", req)
}

func (c *Client) taskAction(ctx context.Context, id, action string, req any) (wire.Task, []byte, error) {
	var t wire.Task
	raw, _, err := c.Post(ctx, TaskPath(id)+"/"+action, req, &t)
	return t, raw, err
}

// ResolveStep marks a failed step resolved; req is the optional body
// ({"result": ..., "reason": ...}).
func (c *Client) ResolveStep(ctx context.Context, id, step string, req any) (wire.Step, []byte, error) {
	var s wire.Step
	raw, _, err := c.Post(ctx, TaskPath(id)+"/steps/"+url.PathEscape(step)+"/resolve", req, &s)
	return s, raw, err
}

// BulkTasks runs POST /v1/tasks/bulk/{action} (cancel or retry).
func (c *Client) BulkTasks(ctx context.Context, action string, req wire.BulkRequest) (wire.BulkResult, []byte, error) {
	var r wire.BulkResult
	raw, _, err := c.Post(ctx, "/v1/tasks/bulk/"+url.PathEscape(action), req, &r)
	return r, raw, err
}

// TaskTransitions fetches one page of a task's audit; cursor "" starts at
// the beginning.
func (c *Client) TaskTransitions(ctx context.Context, id, cursor string) (wire.TaskTransitionList, []byte, error) {
	var l wire.TaskTransitionList
	q := url.Values{}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	raw, err := c.Get(ctx, TaskPath(id)+"/transitions", q, &l)
	return l, raw, err
}

// MapInstances fetches one page of a map step's instances, in index order
// (GET /v1/tasks/{id}/steps/{step}/instances): state "" keeps every state,
// cursor "" starts at index 0, limit 0 takes the server's default. A page
// filtered by state may be short and still have a NextCursor.
func (c *Client) MapInstances(ctx context.Context, id, step, state, cursor string, limit int) (wire.MapInstanceList, []byte, error) {
	var l wire.MapInstanceList
	q := url.Values{}
	for k, v := range map[string]string{"state": state, "cursor": cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	raw, err := c.Get(ctx, TaskPath(id)+"/steps/"+url.PathEscape(step)+"/instances", q, &l)
	return l, raw, err
}
