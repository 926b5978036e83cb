package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/template"
)

// Creator creates tasks; *engine.Engine is one.
type Creator interface {
	CreateTask(ctx context.Context, req engine.CreateRequest) (engine.Created, error)
}

// Handler is the trigger Lambda's logic: match an event, create a task per
// match. Events that match nothing and matches whose context the template
// rejects are logged and dropped (retrying cannot fix them); any other
// failure to create a task (the database) is returned, so that Lambda
// retries the event, which the idempotency keys make safe.
type Handler struct {
	Creator   Creator
	Templates *template.Set
	Logger    *slog.Logger
}

// Summary reports what one event did; it is the trigger Lambda's response.
type Summary struct {
	Kind     string      `json:"kind"` // "s3", "eventbridge" or "" (not a trigger event)
	Matched  int         `json:"matched"`
	Tasks    []Started   `json:"tasks"`
	Rejected []Rejection `json:"rejected"`
}

// Started is a task an event started (or found already started).
type Started struct {
	Namespace      string `json:"namespace"`
	Name           string `json:"name"`
	Version        string `json:"version"`
	TaskID         string `json:"task_id"`
	Created        bool   `json:"created"` // false: a redelivery; the task already existed
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// Handle processes one event.
func (h *Handler) Handle(ctx context.Context, event json.RawMessage) (Summary, error) {
	log := h.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sum := Summary{Tasks: []Started{}, Rejected: []Rejection{}}
	res, err := Match(h.Templates, event)
	if err != nil {
		log.WarnContext(ctx, "trigger event dropped: not a JSON object", "error", err)
		return sum, nil
	}
	sum.Kind = res.Kind
	sum.Matched = len(res.Requests) + len(res.Rejected)
	for _, r := range res.Rejected {
		log.ErrorContext(ctx, "trigger matched but its context mapping is broken; event dropped for this workflow",
			"namespace", r.Namespace, "workflow", r.Name, "version", r.Version, "error", r.Error)
	}
	sum.Rejected = append(sum.Rejected, res.Rejected...)
	if sum.Matched == 0 {
		log.InfoContext(ctx, "event matched no trigger; dropped", describe(res.Kind, event)...)
		return sum, nil
	}
	var errs []error
	for _, req := range res.Requests {
		created, err := h.Creator.CreateTask(ctx, req)
		var cerr *template.ContextError
		switch {
		case errors.As(err, &cerr), errors.Is(err, template.ErrNotFound), errors.Is(err, engine.ErrIdempotencyConflict):
			// A conflict: a redelivery of the event now maps to another
			// request (the trigger or the template changed); retrying
			// cannot succeed.
			log.ErrorContext(ctx, "trigger matched but the task was refused; event dropped for this workflow",
				"namespace", req.Namespace, "workflow", req.Name, "version", req.Version,
				"idempotency_key", req.IdempotencyKey, "error", err)
			sum.Rejected = append(sum.Rejected, Rejection{Namespace: req.Namespace, Name: req.Name, Version: req.Version, Error: err.Error()})
		case err != nil:
			errs = append(errs, fmt.Errorf("create %s/%s for %s: %w", req.Namespace, req.Name, req.IdempotencyKey, err))
		default:
			log.InfoContext(ctx, "trigger started a task", "task_id", created.TaskID.String(), "namespace", req.Namespace,
				"workflow", req.Name, "version", created.Version, "created", created.Created, "idempotency_key", req.IdempotencyKey,
				"source_system", req.SourceSystem)
			sum.Tasks = append(sum.Tasks, Started{
				Namespace: req.Namespace, Name: req.Name, Version: created.Version, TaskID: created.TaskID.String(),
				Created: created.Created, IdempotencyKey: req.IdempotencyKey,
			})
		}
	}
	if len(errs) > 0 {
		return sum, errors.Join(errs...)
	}
	return sum, nil
}

// describe returns log attributes identifying an unmatched event.
func describe(kind string, event json.RawMessage) []any {
	var probe struct {
		ID         string `json:"id"`
		Source     string `json:"source"`
		DetailType string `json:"detail-type"`
		Records    []struct {
			EventSource string `json:"eventSource"`
			EventName   string `json:"eventName"`
			S3          struct {
				Bucket struct {
					Name string `json:"name"`
				} `json:"bucket"`
				Object struct {
					Key string `json:"key"`
				} `json:"object"`
			} `json:"s3"`
		} `json:"Records"`
	}
	_ = json.Unmarshal(event, &probe) // best effort, for the log only
	attrs := []any{"kind", kind}
	switch {
	case probe.Source != "":
		attrs = append(attrs, "id", probe.ID, "source", probe.Source, "detail_type", probe.DetailType)
	case len(probe.Records) > 0:
		r := probe.Records[0]
		attrs = append(attrs, "records", len(probe.Records), "event_source", r.EventSource, "event_name", r.EventName,
			"bucket", r.S3.Bucket.Name, "key", r.S3.Object.Key)
	default:
		attrs = append(attrs, "bytes", len(event))
	}
	return attrs
}
