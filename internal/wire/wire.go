// Package wire holds the JSON shapes of the Tasker HTTP API: the bodies
// the server (internal/api) writes and the client (internal/apiclient)
// reads. It is a leaf: it imports only the standard library, so the CLI
// shares these definitions without depending on the server.
//
// Times are RFC 3339 in UTC; absent values are null, never omitted, except
// `steps`, which list items leave out.
//
// Import rules: standard library only; internal/api and internal/apiclient
// import it.
package wire

import "encoding/json"

// Task is a task as the API returns it.
type Task struct {
	ID        string          `json:"id"`
	Namespace string          `json:"namespace"`
	Name      string          `json:"name"`
	Version   string          `json:"version"`
	Status    string          `json:"status"`
	Context   json.RawMessage `json:"context"`
	// ContextError is set when the context is stored out of line and cannot
	// be read whole: Context is then the stored reference, and this says
	// what went wrong (docs/architecture.md, "Large payloads").
	ContextError   string   `json:"context_error,omitempty"`
	Initiator      string   `json:"initiator"`
	SourceSystem   string   `json:"source_system"`
	Reason         string   `json:"reason"`
	Tags           []string `json:"tags"`
	IdempotencyKey *string  `json:"idempotency_key"`
	CorrelationID  string   `json:"correlation_id"`
	CreatedAt      string   `json:"created_at"`
	UpdatedAt      string   `json:"updated_at"`
	CompletedAt    *string  `json:"completed_at"`
	Steps          []Step   `json:"steps,omitzero"`
	// ParentTaskID and ParentStep name the tasker.workflow step that started
	// the task (null otherwise); Children are the tasks its tasker.workflow
	// steps started. Set on the task route, left out of lists.
	ParentTaskID *string     `json:"parent_task_id,omitempty"`
	ParentStep   *string     `json:"parent_step,omitempty"`
	Children     []ChildTask `json:"children,omitzero"`
	// BlockedReason says why a pending task is not running: its template's
	// task concurrency holds it back, e.g. "task concurrency limit 2 for
	// key acme reached" (docs/control-flow.md, "Task concurrency").
	BlockedReason string `json:"blocked_reason,omitempty"`
}

// ChildTask is a child task of a task's tasker.workflow step.
type ChildTask struct {
	ID     string `json:"id"`
	Step   string `json:"step"`
	Status string `json:"status"`
}

// Step is one step of a task.
type Step struct {
	Name        string          `json:"name"`
	Status      string          `json:"status"`
	Handler     string          `json:"handler"`
	DependsOn   []string        `json:"depends_on"`
	Attempts    int             `json:"attempts"`
	MaxAttempts int             `json:"max_attempts"`
	Result      json.RawMessage `json:"result"`
	// ResultError is set when the result is stored out of line and cannot
	// be read whole: Result is then the stored reference, and this says
	// what went wrong.
	ResultError string          `json:"result_error,omitempty"`
	LastError   json.RawMessage `json:"last_error"`
	NextRetryAt *string         `json:"next_retry_at"`
	StartedAt   *string         `json:"started_at"`
	CompletedAt *string         `json:"completed_at"`
	// WaitingUntil and WaitKind are set while the step is waiting: when its
	// timer is due or its callback expires, and "timer" or "callback".
	WaitingUntil *string `json:"waiting_until,omitempty"`
	WaitKind     string  `json:"wait_kind,omitempty"`
	// TriggerRule, When and SkipReason: the step's control flow
	// (docs/architecture.md, "States"). When is nil without a condition;
	// SkipReason is nil unless the step was skipped.
	TriggerRule string  `json:"trigger_rule"`
	When        *string `json:"when"`
	SkipReason  *string `json:"skip_reason"`
	// BlockedReason says why a pending step whose parents are done is not
	// running yet (docs/control-flow.md, "Flow control"); "" otherwise.
	BlockedReason string `json:"blocked_reason,omitempty"`
	// Map is set for a map step that ran: its instances (named
	// "<step>[<index>]", read one with the step route) by state.
	Map *MapSummary `json:"map,omitempty"`
}

// MapSummary counts the instances of a map step (docs/control-flow.md,
// "Map").
type MapSummary struct {
	Items  int            `json:"items"`
	Counts map[string]int `json:"counts"`
}

// CallbackAccepted answers an accepted callback (202): the step attempt it
// applied to, the step's state after it, and after a heartbeat when the
// wait now ends.
type CallbackAccepted struct {
	TaskID       string  `json:"task_id"`
	Step         string  `json:"step"`
	Attempt      int     `json:"attempt"`
	Status       string  `json:"status"`
	WaitingUntil *string `json:"waiting_until,omitempty"`
}

// StepDetail is a step with its transition history, oldest first.
type StepDetail struct {
	Step
	Transitions []Transition `json:"transitions"`
}

// Transition is one recorded state change of a step.
type Transition struct {
	From     *string         `json:"from"`
	To       string          `json:"to"`
	Attempt  *int            `json:"attempt"`
	Reason   string          `json:"reason"`
	Actor    string          `json:"actor"`
	Metadata json.RawMessage `json:"metadata"`
	At       string          `json:"at"`
}

// TaskList is a page of tasks.
type TaskList struct {
	Tasks      []Task  `json:"tasks"`
	NextCursor *string `json:"next_cursor"`
}

// TaskGraph is the JSON form of a task's DAG.
type TaskGraph struct {
	Nodes []TaskGraphNode `json:"nodes"`
	Edges []GraphEdge     `json:"edges"`
}

// TaskGraphNode is one step of a task graph.
type TaskGraphNode struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Level    int    `json:"level"`
	Attempts int    `json:"attempts"`
}

// GraphEdge runs from a parent step to a dependent one.
type GraphEdge struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// TemplateSummary is one workflow in the template list: its highest
// version, described.
type TemplateSummary struct {
	Namespace   string   `json:"namespace"`
	Name        string   `json:"name"`
	Version     string   `json:"version"`
	Versions    []string `json:"versions"`
	Description string   `json:"description"`
	StepCount   int      `json:"step_count"`
}

// TemplateList is the template list.
type TemplateList struct {
	Templates []TemplateSummary `json:"templates"`
}

// TemplateDetail is one version of a workflow with its graph.
type TemplateDetail struct {
	Namespace     string          `json:"namespace"`
	Name          string          `json:"name"`
	Version       string          `json:"version"`
	Versions      []string        `json:"versions"`
	Description   string          `json:"description"`
	ContextSchema json.RawMessage `json:"context_schema"`
	Steps         []TemplateStep  `json:"steps"`
	Levels        [][]string      `json:"levels"`
	// Concurrency is the template's task concurrency (docs/control-flow.md,
	// "Task concurrency"); nil without one.
	Concurrency *TemplateConcurrency `json:"concurrency,omitempty"`
	Graph       TemplateGraph        `json:"graph"`
	// Schedules are the version's schedules: entries, in order
	// (docs/control-flow.md, "Schedules").
	Schedules []TemplateSchedule `json:"schedules"`
}

// TemplateSchedule is one schedules: entry of a template version with its
// state. Only the latest loaded version is scheduled; the entries of
// another version have Scheduled false, no ID and no fire times.
type TemplateSchedule struct {
	Index int `json:"index"`
	// ID is the schedule's id in GET /v1/schedules and its pause and
	// resume routes; null while the entry is not scheduled.
	ID       *int64 `json:"id"`
	Spec     string `json:"spec"`
	Cron     string `json:"cron,omitempty"`
	Timezone string `json:"timezone,omitempty"`
	Rate     string `json:"rate,omitempty"`
	CatchUp  string `json:"catch_up"`
	// Scheduled says the entry fires (this is the latest loaded version).
	Scheduled bool `json:"scheduled"`
	Paused    bool `json:"paused"`
	// NextFires are its next fire times; empty while paused or not
	// scheduled.
	NextFires []string `json:"next_fire_times"`
}

// TemplateConcurrency caps the running tasks of a template: Limit in all,
// or per value of Key (its ${context.x} placeholders, as written).
type TemplateConcurrency struct {
	Limit int    `json:"limit"`
	Key   string `json:"key,omitempty"`
}

// TemplateStep is one step of a template. Its config is not shown: it may
// hold endpoints and headers that are none of a reader's business.
type TemplateStep struct {
	Name           string      `json:"name"`
	Description    string      `json:"description"`
	Handler        string      `json:"handler"`
	DependsOn      []string    `json:"depends_on"`
	Retry          RetryPolicy `json:"retry"`
	TimeoutSeconds int         `json:"timeout_seconds"`
	Concurrency    *int        `json:"concurrency"`
	// RateLimit caps the step's starts (docs/control-flow.md, "Rate
	// limits"); nil when it has none.
	RateLimit *TemplateRateLimit `json:"rate_limit,omitempty"`
	// When is the step's condition (nil without one) and TriggerRule how
	// its parents must have ended (docs/control-flow.md).
	When        *string `json:"when"`
	TriggerRule string  `json:"trigger_rule"`
}

// TemplateRateLimit is a template step's rate limit: Burst tokens refilled
// at PerSecond, per value of Key ("" for one bucket for the step).
type TemplateRateLimit struct {
	PerSecond float64 `json:"per_second"`
	Burst     int     `json:"burst"`
	Key       string  `json:"key,omitempty"`
}

// RetryPolicy of a template step.
type RetryPolicy struct {
	MaxAttempts        int     `json:"max_attempts"`
	BackoffBaseSeconds float64 `json:"backoff_base_seconds"`
	MaxBackoffSeconds  float64 `json:"max_backoff_seconds"`
	Jitter             float64 `json:"jitter"`
}

// TemplateGraph is the dependency graph of a template.
type TemplateGraph struct {
	Nodes []TemplateGraphNode `json:"nodes"`
	Edges []GraphEdge         `json:"edges"`
}

// TemplateGraphNode is one step of a template graph.
type TemplateGraphNode struct {
	ID      string `json:"id"`
	Level   int    `json:"level"`
	Handler string `json:"handler"`
}

// Health is the body of the live and ready probes.
type Health struct {
	Status string `json:"status"`
}

// SystemStatus is the body of GET /v1/health/status.
type SystemStatus struct {
	// Status is "ok", or "degraded" while the engine throttles itself.
	Status string `json:"status"`
	Time   string `json:"time"`
	// Tasks counts every task by status.
	Tasks map[string]int64 `json:"tasks"`
	// Steps counts live steps by state (pending, in_progress, waiting_for_retry).
	Steps    map[string]int64 `json:"steps"`
	InFlight InFlight         `json:"in_flight"`
	// Recent are step attempt outcomes across the system in the last window.
	Recent Recent `json:"recent"`
	// Engine is this instance's own view (engine.Health()).
	Engine    EngineHealth `json:"engine"`
	Templates int          `json:"templates"`
}

// InFlight is the number of step attempts in progress and the effective cap.
type InFlight struct {
	Current int64 `json:"current"`
	// Cap is the effective in-flight cap of this instance; null when uncapped.
	Cap *int `json:"cap"`
	// Max is the configured cap (TASKER_MAX_IN_FLIGHT); null when uncapped.
	Max *int `json:"max,omitempty"`
	// Reason is why Cap is what it is: healthy, recovering, pressure or
	// fixed; Detail names the pressure seen (adaptive concurrency).
	Reason string `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Recent counts step attempt outcomes in a window.
type Recent struct {
	WindowSeconds int     `json:"window_seconds"`
	Completed     int64   `json:"completed"`
	Retried       int64   `json:"retried"`
	Failed        int64   `json:"failed"`
	ErrorRate     float64 `json:"error_rate"`
}

// EngineHealth is engine.HealthState with the instance id.
type EngineHealth struct {
	InstanceID     string  `json:"instance_id"`
	RecentResults  int     `json:"recent_results"`
	RecentFailures int     `json:"recent_failures"`
	ErrorRate      float64 `json:"error_rate"`
	PoolPressure   float64 `json:"pool_pressure"`
	CapFactor      float64 `json:"cap_factor"`
	// The database pressure last read by adaptive concurrency, over every
	// scheduler instance.
	Instances      int     `json:"instances,omitempty"`
	Connections    int     `json:"connections,omitempty"`
	MaxConnections int     `json:"max_connections,omitempty"`
	CommitMS       float64 `json:"commit_ms,omitempty"`
	PoolWaitMS     float64 `json:"pool_wait_ms,omitempty"`
	Throttles      int64   `json:"throttles,omitempty"`
}

// Problem is an RFC 9457 problem detail. Errors lists field-level
// problems: Pointer (RFC 6901) into the request body, or the name of the
// query Parameter or Header at fault.
type Problem struct {
	Type          string       `json:"type"`
	Title         string       `json:"title"`
	Status        int          `json:"status"`
	Detail        string       `json:"detail,omitempty"`
	Instance      string       `json:"instance,omitempty"`
	CorrelationID string       `json:"correlation_id,omitempty"`
	Permission    string       `json:"permission,omitempty"`
	Errors        []FieldError `json:"errors,omitempty"`
}

// FieldError is one field-level problem.
type FieldError struct {
	Pointer   string `json:"pointer,omitempty"`
	Parameter string `json:"parameter,omitempty"`
	Header    string `json:"header,omitempty"`
	Detail    string `json:"detail"`
}

// Schedule is one entry of a template's schedules with its state
// (GET /v1/schedules; docs/control-flow.md, "Schedules").
type Schedule struct {
	ID        int64  `json:"id"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Index     int    `json:"index"`
	Spec      string `json:"spec"`
	Cron      string `json:"cron,omitempty"`
	Timezone  string `json:"timezone,omitempty"`
	Rate      string `json:"rate,omitempty"`
	CatchUp   string `json:"catch_up,omitempty"`
	Paused    bool   `json:"paused"`
	// Loaded is false for a schedule no loaded template defines any more
	// (or one that changed): it never fires.
	Loaded      bool     `json:"loaded"`
	NextFireAt  string   `json:"next_fire_at"`
	NextFires   []string `json:"next_fire_times"`
	LastFiredAt *string  `json:"last_fired_at"`
	LastTaskID  *string  `json:"last_task_id"`
}

// ScheduleList is the schedule list.
type ScheduleList struct {
	Schedules []Schedule `json:"schedules"`
}

// TaskTransition is one row of a task's audit (GET
// /v1/tasks/{id}/transitions): a change of the task's status (step empty)
// or of one of its steps.
type TaskTransition struct {
	Seq  int64  `json:"seq"`
	Step string `json:"step,omitempty"`
	Transition
}

// TaskTransitionList is a page of a task's audit, oldest first.
type TaskTransitionList struct {
	Transitions []TaskTransition `json:"transitions"`
	NextCursor  *string          `json:"next_cursor"`
}

// BulkRequest is the body of POST /v1/tasks/bulk/cancel and /bulk/retry.
// Filter takes the filters of GET /v1/tasks by the same names, each a
// string or an array of strings.
type BulkRequest struct {
	Filter   map[string]any `json:"filter"`
	DryRun   bool           `json:"dry_run,omitempty"`
	Reason   string         `json:"reason,omitempty"`
	MaxTasks int            `json:"max_tasks,omitempty"`
	Cursor   string         `json:"cursor,omitempty"`
}

// BulkResult sums up a bulk action.
type BulkResult struct {
	Action     string  `json:"action"`
	DryRun     bool    `json:"dry_run"`
	Matched    int     `json:"matched"`
	Changed    int     `json:"changed"`
	Skipped    int     `json:"skipped"`
	Batches    int     `json:"batches"`
	Capped     bool    `json:"capped"`
	NextCursor *string `json:"next_cursor"`
}

// MapInstance is one instance of a map step in a page of
// GET /v1/tasks/{id}/steps/{step}/instances (docs/control-flow.md, "Map").
type MapInstance struct {
	Index       int    `json:"index"`
	Name        string `json:"name"`
	Status      string `json:"status"`
	Attempts    int    `json:"attempts"`
	MaxAttempts int    `json:"max_attempts"`
	// Result is null when there is none, or when it is larger than a page
	// carries (ResultOmitted): read the instance with the step route.
	Result        json.RawMessage `json:"result"`
	ResultOmitted bool            `json:"result_omitted,omitempty"`
	LastError     json.RawMessage `json:"last_error"`
	NextRetryAt   *string         `json:"next_retry_at"`
	StartedAt     *string         `json:"started_at"`
	CompletedAt   *string         `json:"completed_at"`
	WaitingUntil  *string         `json:"waiting_until,omitempty"`
	WaitKind      string          `json:"wait_kind,omitempty"`
}

// MapInstanceList is one page of a map step's instances, in index order.
type MapInstanceList struct {
	Instances []MapInstance `json:"instances"`
	// NextCursor continues the walk; null on the last page. A page
	// filtered by state may be short, even empty, and still have one.
	NextCursor *string `json:"next_cursor"`
}
