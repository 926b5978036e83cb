package events_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/events"
	"github.com/taskerhq/tasker/internal/telemetry"
	"github.com/taskerhq/tasker/sdk"
)

// docs/observability.md documents every event, field and metric.
func TestDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "observability.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	var names []string
	for _, c := range engine.Catalogue {
		names = append(names, string(c.Name))
	}
	for _, f := range events.Fields {
		names = append(names, f.Name)
	}
	names = append(names, events.MetricTasksCreated, events.MetricTasksCompleted, events.MetricTasksFailed,
		events.MetricStepAttempts, events.MetricStepDuration, events.MetricDispatchLatency, events.MetricDispatchFailures,
		events.MetricQueueLag, events.MetricBatchDuration, events.MetricStepsInFlight, events.MetricStepsSkipped, events.MetricSchedulesFired, events.MetricFlowControlHeld,
		telemetry.MetricExecutions, telemetry.MetricDuration,
		engine.SpanTaskCreate, engine.SpanTaskEvaluate, engine.SpanStepDispatch, engine.SpanSchedulerBatch,
		engine.SpanSchedulerSweep, sdk.SpanStepExecute)
	for _, n := range names {
		if !strings.Contains(doc, "`"+n+"`") && !strings.Contains(doc, n+" ") {
			t.Errorf("docs/observability.md does not mention %s", n)
		}
	}
}
