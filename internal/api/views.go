package api

import (
	"encoding/json"
	"time"

	"github.com/taskerhq/tasker/internal/graph"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
)

// Response shapes (docs/architecture.md, "HTTP API"; openapi.json).
// Times are RFC 3339 in UTC; absent values
// are null, never omitted, except `steps`, which list items leave out.

// Task is a task as the API returns it.
type Task struct {
	ID             string          `json:"id"`
	Namespace      string          `json:"namespace"`
	Name           string          `json:"name"`
	Version        string          `json:"version"`
	Status         string          `json:"status"`
	Context        json.RawMessage `json:"context"`
	Initiator      string          `json:"initiator"`
	SourceSystem   string          `json:"source_system"`
	Reason         string          `json:"reason"`
	Tags           []string        `json:"tags"`
	IdempotencyKey *string         `json:"idempotency_key"`
	CorrelationID  string          `json:"correlation_id"`
	CreatedAt      string          `json:"created_at"`
	UpdatedAt      string          `json:"updated_at"`
	CompletedAt    *string         `json:"completed_at"`
	Steps          []Step          `json:"steps,omitzero"`
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
	LastError   json.RawMessage `json:"last_error"`
	NextRetryAt *string         `json:"next_retry_at"`
	StartedAt   *string         `json:"started_at"`
	CompletedAt *string         `json:"completed_at"`
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

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func tsp(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := ts(*t)
	return &s
}

func taskView(t store.TaskView, withSteps bool) Task {
	tags := t.Tags
	if tags == nil {
		tags = []string{}
	}
	out := Task{
		ID: t.ID.String(), Namespace: t.Namespace, Name: t.Name, Version: t.Version, Status: t.Status,
		Context: t.Context, Initiator: t.Initiator, SourceSystem: t.SourceSystem, Reason: t.Reason, Tags: tags,
		IdempotencyKey: t.IdempotencyKey, CorrelationID: t.CorrelationID,
		CreatedAt: ts(t.CreatedAt), UpdatedAt: ts(t.UpdatedAt), CompletedAt: tsp(t.CompletedAt),
	}
	if withSteps {
		out.Steps = make([]Step, len(t.Steps))
		for i, s := range t.Steps {
			out.Steps[i] = stepView(s)
		}
	}
	return out
}

func stepView(s store.StepView) Step {
	deps := s.DependsOn
	if deps == nil {
		deps = []string{}
	}
	return Step{
		Name: s.Name, Status: s.State, Handler: s.Handler, DependsOn: deps, Attempts: s.Attempts,
		MaxAttempts: s.MaxAttempts, Result: s.Result, LastError: s.LastError, NextRetryAt: tsp(s.NextRetryAt),
		StartedAt: tsp(s.StartedAt), CompletedAt: tsp(s.CompletedAt),
	}
}

func stepDetailView(s store.StepView, trs []store.TransitionView) StepDetail {
	out := StepDetail{Step: stepView(s), Transitions: make([]Transition, len(trs))}
	for i, tr := range trs {
		out.Transitions[i] = Transition{From: tr.From, To: tr.To, Attempt: tr.Attempt, Reason: tr.Reason,
			Actor: tr.Actor, Metadata: tr.Metadata, At: ts(tr.At)}
	}
	return out
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

func taskGraph(t store.TaskView) *graph.Graph {
	steps := make([]graph.Step, len(t.Steps))
	for i, s := range t.Steps {
		steps[i] = graph.Step{Name: s.Name, DependsOn: s.DependsOn, State: s.State, Handler: s.Handler,
			Attempts: s.Attempts, MaxAttempts: s.MaxAttempts}
	}
	return graph.New(t.Namespace+"/"+t.Name+"@"+t.Version+" · "+t.ID.String(), steps)
}

func taskGraphView(g *graph.Graph) TaskGraph {
	out := TaskGraph{Nodes: make([]TaskGraphNode, len(g.Nodes)), Edges: edgesView(g)}
	for i, n := range g.Nodes {
		out.Nodes[i] = TaskGraphNode{ID: n.Name, State: n.State, Level: n.Level, Attempts: n.Attempts}
	}
	return out
}

func edgesView(g *graph.Graph) []GraphEdge {
	out := make([]GraphEdge, len(g.Edges))
	for i, e := range g.Edges {
		out[i] = GraphEdge{From: e.From, To: e.To}
	}
	return out
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
	Graph         TemplateGraph   `json:"graph"`
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

func versionsOf(set *template.Set, ns, name string) []string {
	vs := set.Versions(ns, name)
	out := make([]string, len(vs))
	for i, t := range vs {
		out[i] = t.Version
	}
	return out
}

func templateDetail(set *template.Set, t *template.Template) TemplateDetail {
	out := TemplateDetail{
		Namespace: t.Namespace, Name: t.Name, Version: t.Version, Versions: versionsOf(set, t.Namespace, t.Name),
		Description: t.Description, ContextSchema: t.ContextSchema, Levels: t.Levels(),
		Steps: make([]TemplateStep, len(t.Steps)),
	}
	gsteps := make([]graph.Step, len(t.Steps))
	for i, s := range t.Steps {
		deps := s.DependsOn
		if deps == nil {
			deps = []string{}
		}
		ts := TemplateStep{
			Name: s.Name, Description: s.Description, Handler: s.Handler, DependsOn: deps,
			Retry: RetryPolicy{
				MaxAttempts: s.Retry.MaxAttempts, BackoffBaseSeconds: s.Retry.BackoffBase.Seconds(),
				MaxBackoffSeconds: s.Retry.MaxBackoff.Seconds(), Jitter: s.Retry.Jitter,
			},
			TimeoutSeconds: s.TimeoutSeconds,
		}
		if s.Concurrency > 0 {
			c := s.Concurrency
			ts.Concurrency = &c
		}
		out.Steps[i] = ts
		gsteps[i] = graph.Step{Name: s.Name, DependsOn: s.DependsOn, Handler: s.Handler}
	}
	g := graph.New(t.Key(), gsteps)
	out.Graph = TemplateGraph{Nodes: make([]TemplateGraphNode, len(g.Nodes)), Edges: edgesView(g)}
	for i, n := range g.Nodes {
		out.Graph.Nodes[i] = TemplateGraphNode{ID: n.Name, Level: n.Level, Handler: n.Handler}
	}
	if out.Levels == nil {
		out.Levels = [][]string{}
	}
	return out
}
