package api

import (
	"time"

	"github.com/taskerhq/tasker/internal/graph"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
	"github.com/taskerhq/tasker/internal/wire"
)

// Response shapes (docs/architecture.md, "HTTP API"). They are defined once, in internal/wire, which
// the CLI's client shares; the names here are aliases of them.
type (
	Task               = wire.Task
	Step               = wire.Step
	StepDetail         = wire.StepDetail
	Transition         = wire.Transition
	TaskTransition     = wire.TaskTransition
	TaskTransitionList = wire.TaskTransitionList
	BulkResult         = wire.BulkResult
	TaskList           = wire.TaskList
	TaskGraph          = wire.TaskGraph
	TaskGraphNode      = wire.TaskGraphNode
	GraphEdge          = wire.GraphEdge
	TemplateSummary    = wire.TemplateSummary
	TemplateList       = wire.TemplateList
	TemplateDetail     = wire.TemplateDetail
	TemplateStep       = wire.TemplateStep
	RetryPolicy        = wire.RetryPolicy
	TemplateGraph      = wire.TemplateGraph
	TemplateGraphNode  = wire.TemplateGraphNode
	Health             = wire.Health
	SystemStatus       = wire.SystemStatus
	InFlight           = wire.InFlight
	Recent             = wire.Recent
	EngineHealth       = wire.EngineHealth
	FieldError         = wire.FieldError
	Schedule           = wire.Schedule
	ScheduleList       = wire.ScheduleList
)

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
		ID: t.ID.String(), Namespace: t.Namespace, Name: t.Name, Version: t.Version, Status: string(t.Status),
		Context: t.Context, Initiator: t.Initiator, SourceSystem: t.SourceSystem, Reason: t.Reason, Tags: tags,
		IdempotencyKey: t.IdempotencyKey, CorrelationID: t.CorrelationID,
		CreatedAt: ts(t.CreatedAt), UpdatedAt: ts(t.UpdatedAt), CompletedAt: tsp(t.CompletedAt),
	}
	if withSteps {
		out.Steps = make([]Step, len(t.Steps))
		for i, s := range t.Steps {
			out.Steps[i] = stepView(s)
		}
		if t.ParentTaskID != nil {
			id, step := t.ParentTaskID.String(), t.ParentStep
			out.ParentTaskID, out.ParentStep = &id, &step
		}
		out.Children = make([]wire.ChildTask, len(t.Children))
		for i, c := range t.Children {
			out.Children[i] = wire.ChildTask{ID: c.ID.String(), Step: c.Step, Status: string(c.Status)}
		}
	}
	return out
}

func stepView(s store.StepView) Step {
	deps := s.DependsOn
	if deps == nil {
		deps = []string{}
	}
	out := Step{
		Name: s.Name, Status: string(s.State), Handler: s.Handler, DependsOn: deps, Attempts: s.Attempts,
		MaxAttempts: s.MaxAttempts, Result: s.Result, LastError: s.LastError, NextRetryAt: tsp(s.NextRetryAt),
		StartedAt: tsp(s.StartedAt), CompletedAt: tsp(s.CompletedAt),
		WaitingUntil: tsp(s.WaitingUntil), WaitKind: s.WaitKind,
		TriggerRule: s.TriggerRule, When: nonEmpty(s.When), SkipReason: nonEmpty(s.SkipReason),
		BlockedReason: s.BlockedReason,
	}
	if s.MapCounts != nil {
		m := &wire.MapSummary{Counts: s.MapCounts}
		for _, n := range s.MapCounts {
			m.Items += n
		}
		out.Map = m
	}
	return out
}

// nonEmpty is nil for "", else a pointer to s (a JSON null or a string).
func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func stepDetailView(s store.StepView, trs []store.TransitionView) StepDetail {
	out := StepDetail{Step: stepView(s), Transitions: make([]Transition, len(trs))}
	for i, tr := range trs {
		out.Transitions[i] = Transition{From: tr.From, To: tr.To, Attempt: tr.Attempt, Reason: tr.Reason,
			Actor: tr.Actor, Metadata: tr.Metadata, At: ts(tr.At)}
	}
	return out
}

func taskGraph(t store.TaskView) *graph.Graph {
	steps := make([]graph.Step, len(t.Steps))
	for i, s := range t.Steps {
		steps[i] = graph.Step{Name: s.Name, DependsOn: s.DependsOn, State: string(s.State), Handler: s.Handler,
			Attempts: s.Attempts, MaxAttempts: s.MaxAttempts, TriggerRule: s.TriggerRule, When: s.When, Note: stepNote(s),
			Map: s.MapCounts != nil, MapCounts: s.MapCounts}
	}
	return graph.New(t.Namespace+"/"+t.Name+"@"+t.Version+" · "+t.ID.String(), steps)
}

// stepNote is what a graph tooltip adds to a step's state: when a waiting
// step moves on by itself, why a skipped one was skipped.
func stepNote(s store.StepView) string {
	switch {
	case s.WaitingUntil != nil && s.WaitKind == "timer":
		return "timer due " + ts(*s.WaitingUntil)
	case s.WaitingUntil != nil:
		return "callback expires " + ts(*s.WaitingUntil)
	case s.SkipReason != "":
		return "skipped: " + s.SkipReason
	}
	return ""
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
		if rl := s.RateLimit; rl != nil {
			ts.RateLimit = &wire.TemplateRateLimit{PerSecond: rl.PerSecond, Burst: rl.Burst, Key: rl.Key}
		}
		ts.TriggerRule = s.TriggerRule
		if ts.TriggerRule == "" {
			ts.TriggerRule = template.TriggerAllSuccess
		}
		when := ""
		if s.When != nil {
			when = s.When.Expr
			ts.When = &when
		}
		out.Steps[i] = ts
		gsteps[i] = graph.Step{Name: s.Name, DependsOn: s.DependsOn, Handler: s.Handler, TriggerRule: s.TriggerRule, When: when,
			Map: s.Map != nil}
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
