package engine_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/enginetest"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/telemetry"
)

// stmtCounter is a pgx tracer that counts the statements a pool sends
// whose text calls a given SQL function: one per round trip, as the
// bench's pg_stat_statements counts top-level statements.
type stmtCounter struct {
	mu   sync.Mutex
	sqls []string
}

func (c *stmtCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.mu.Lock()
	c.sqls = append(c.sqls, d.SQL)
	c.mu.Unlock()
	return ctx
}

func (c *stmtCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// calls counts the statements since the last reset that call fn.
func (c *stmtCounter) calls(fn string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.sqls {
		if strings.Contains(s, fn+"(") {
			n++
		}
	}
	return n
}

func (c *stmtCounter) reset() {
	c.mu.Lock()
	c.sqls = nil
	c.mu.Unlock()
}

// newCountingHarness is newHarness with an engine whose pool counts its
// statements.
func newCountingHarness(t *testing.T, yamls ...string) (*harness, *stmtCounter) {
	t.Helper()
	h := newHarness(t, engine.Config{}, yamls...)
	cfg, err := pgxpool.ParseConfig(h.url)
	if err != nil {
		t.Fatal(err)
	}
	counter := &stmtCounter{}
	cfg.ConnConfig.Tracer = counter
	pool, err := pgxpool.NewWithConfig(h.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	st, err := store.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	h.store = st
	h.eng, err = engine.New(engine.Config{Store: st, Templates: h.tpls, Queue: h.queue, Invoker: h.inv,
		Publisher: h.pub, Clock: h.clock})
	if err != nil {
		t.Fatal(err)
	}
	return h, counter
}

const settleFn = "tasker_settle_children"

// A pass that finalizes tasks without a parent runs no settle statement;
// one that finalizes a child runs one.
func TestSettleOnlyForChildren(t *testing.T) {
	t.Parallel()
	h, counter := newCountingHarness(t, childParentYAML, childYAML)
	ids := []uuid.UUID{h.create("child", `{"order": "alone"}`), h.create("child", `{"order": "alone too"}`)}
	h.drain(func(contract.Payload) outcome { return ok(map[string]any{}) })
	for _, id := range ids {
		mustStatus(t, h, id, "complete")
	}
	finalized := 0
	for _, ev := range h.pub.Events() {
		if ev.Name == engine.TaskCompleted {
			finalized++
		}
	}
	if finalized != len(ids) {
		t.Fatalf("%d task.completed events, want %d", finalized, len(ids))
	}
	if n := counter.calls(settleFn); n != 0 {
		t.Fatalf("%d %s statements for passes that finalized only parentless tasks, want 0", n, settleFn)
	}
	if n := counter.calls("tasker_scheduler_pass"); n == 0 {
		t.Fatal("the counter saw no scheduler pass: it counts nothing")
	}

	// Starting a child settles nothing either (the child has not ended);
	// its end settles its parent, in one statement.
	counter.reset()
	parent := h.create("parent", `{"order": "o-9"}`)
	var packs []contract.Payload
	h.drain(func(p contract.Payload) outcome {
		if p.Tasker.Step == "pack" {
			packs = append(packs, p)
			return outcome{drop: true}
		}
		return ok(map[string]any{})
	})
	if len(packs) != 1 {
		t.Fatalf("%d pack invocations, want 1", len(packs))
	}
	if n := counter.calls(settleFn); n != 0 || counter.calls("tasker_park_children") != 1 {
		t.Fatalf("%d %s statements and %d parks for starting a child, want 0 and 1", n, settleFn, counter.calls("tasker_park_children"))
	}
	counter.reset()
	deliver(t, h, packs)
	if n := counter.calls(settleFn); n != 1 {
		t.Fatalf("%d %s statements for a pass that finalized a child, want 1", n, settleFn)
	}
	if s := h.step(parent, "ship"); s.State != "complete" {
		t.Fatalf("ship = %s, want complete", s.State)
	}
}

// A batch that finalizes several children of different parents settles
// every parent in one statement.
func TestSettleChildrenOfManyParentsInOneStatement(t *testing.T) {
	t.Parallel()
	h, counter := newCountingHarness(t, childParentYAML, childYAML)
	parents := make([]uuid.UUID, 3)
	for i := range parents {
		parents[i] = h.create("parent", `{"order": "o-`+string(rune('a'+i))+`"}`)
	}
	var packs []contract.Payload
	h.drain(func(p contract.Payload) outcome {
		if p.Tasker.Step == "pack" {
			packs = append(packs, p)
			return outcome{drop: true} // the children stay in flight
		}
		return ok(map[string]any{})
	})
	if len(packs) != len(parents) {
		t.Fatalf("%d pack invocations, want %d", len(packs), len(parents))
	}
	for _, p := range parents {
		if s := h.step(p, "ship"); s.State != "waiting" {
			t.Fatalf("ship of %s = %s, want waiting", p, s.State)
		}
	}
	counter.reset()
	// One batch of the three children's results: one pass finalizes them.
	deliver(t, h, packs)
	if n := counter.calls(settleFn); n != 1 {
		t.Fatalf("%d %s statements for one pass finalizing %d children, want 1", n, settleFn, len(packs))
	}
	for _, p := range parents {
		if s := h.step(p, "ship"); s.State != "complete" || !strings.Contains(string(s.Result), `"pack"`) {
			t.Errorf("ship of %s = %s %s, want complete with the child's results", p, s.State, s.Result)
		}
	}
	h.drain(func(contract.Payload) outcome { return ok(map[string]any{}) })
	for _, p := range parents {
		mustStatus(t, h, p, "complete")
	}
}

// deliver hands the results of the given invocations (ok) to the engine in
// one batch, then runs what they made ready.
func deliver(t *testing.T, h *harness, ps []contract.Payload) {
	t.Helper()
	in := make([]engine.InMessage, len(ps))
	for i, p := range ps {
		body, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		rec := enginetest.Record(t, engine.Invocation{Payload: body}, enginetest.Outcome{Result: map[string]int{"box": i}})
		in[i] = engine.InMessage{ID: uuid.NewString(), Body: rec}
	}
	failed, err := h.eng.HandleMessages(h.ctx, in)
	if err != nil || len(failed) > 0 {
		t.Fatalf("handle messages: %v (failed %v)", err, failed)
	}
}

// The child task joins its parent's trace: its task.create span is a child
// of the step.dispatch span of the parent's tasker.workflow attempt, and
// every span of the child (its passes, its steps' dispatches) is in the
// parent's trace.
func TestChildWorkflowJoinsParentTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := telemetry.NewTracerProvider(nil, nil, sdktrace.WithSyncer(exp))
	h := newHarness(t, engine.Config{TracerProvider: tp}, childParentYAML, childYAML)
	rootCtx, root := tp.Tracer("test").Start(context.Background(), "POST /v1/tasks", trace.WithSpanKind(trace.SpanKindServer))
	created, err := h.eng.CreateTask(rootCtx, engine.CreateRequest{Namespace: "test", Name: "parent",
		Context: json.RawMessage(`{"order": "o-5"}`)})
	if err != nil {
		t.Fatal(err)
	}
	root.End()
	parent := created.TaskID
	h.drain(func(contract.Payload) outcome { return ok(map[string]any{}) })
	mustStatus(t, h, parent, "complete")
	kids := h.children(parent)
	if len(kids) != 1 {
		t.Fatalf("children = %v", kids)
	}
	kid := kids[0].String()

	spans := exp.GetSpans()
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = s
	}
	traceID := root.SpanContext().TraceID()
	var shipDispatch, childCreate *tracetest.SpanStub
	childSpans := map[string]int{}
	for i, s := range spans {
		if isScheduler(s.Name) || s.Name == "POST /v1/tasks" {
			continue
		}
		if s.SpanContext.TraceID() != traceID {
			t.Errorf("span %s of task %s is in trace %s, want the parent's trace %s", s.Name,
				attr(s, engine.AttrTaskID).AsString(), s.SpanContext.TraceID(), traceID)
		}
		if attr(s, engine.AttrTaskID).AsString() == kid {
			childSpans[s.Name]++
		}
		switch {
		case s.Name == engine.SpanStepDispatch && attr(s, engine.AttrStep).AsString() == "ship":
			shipDispatch = &spans[i]
		case s.Name == engine.SpanTaskCreate && attr(s, engine.AttrTaskID).AsString() == kid:
			childCreate = &spans[i]
		}
	}
	if shipDispatch == nil || childCreate == nil {
		t.Fatalf("no step.dispatch span of ship (%v) or task.create span of the child (%v)", shipDispatch, childCreate)
	}
	if attr(*shipDispatch, engine.AttrTaskID).AsString() != parent.String() ||
		attr(*shipDispatch, engine.AttrHandler).AsString() != "tasker.workflow" ||
		attr(*shipDispatch, engine.AttrChildTaskID).AsString() != kid || !hasEvent(*shipDispatch, engine.StepChildStarted) {
		t.Errorf("ship's step.dispatch: attributes %v events %v", shipDispatch.Attributes, shipDispatch.Events)
	}
	if p := byID[shipDispatch.Parent.SpanID()]; p.Name != engine.SpanTaskEvaluate || attr(p, engine.AttrTaskID).AsString() != parent.String() {
		t.Errorf("ship's step.dispatch parent = %s of task %s, want the parent's task.evaluate", p.Name, attr(p, engine.AttrTaskID).AsString())
	}
	if childCreate.Parent.SpanID() != shipDispatch.SpanContext.SpanID() {
		t.Errorf("child's task.create parent = %v, want ship's step.dispatch %v", childCreate.Parent.SpanID(), shipDispatch.SpanContext.SpanID())
	}
	// The child's passes hang under its own task.create.
	for _, s := range spans {
		if s.Name == engine.SpanTaskEvaluate && attr(s, engine.AttrTaskID).AsString() == kid &&
			s.Parent.SpanID() != childCreate.SpanContext.SpanID() {
			t.Errorf("child's task.evaluate parent = %q, want its task.create", byID[s.Parent.SpanID()].Name)
		}
	}
	if childSpans[engine.SpanTaskEvaluate] == 0 || childSpans[engine.SpanStepDispatch] != 1 {
		t.Errorf("child's spans %v, want task.evaluate and one step.dispatch (pack)", childSpans)
	}
}

// A child that ends before its parent step is parked (the child's pass
// finalizes it while it names no parent yet, so that pass settles nothing)
// is settled when the step is parked.
func TestChildEndedBeforeParkIsSettledAtPark(t *testing.T) {
	t.Parallel()
	h, counter := newCountingHarness(t, childParentYAML, childYAML)
	id := h.create("parent", `{"order": "o-6"}`)
	var packs []contract.Payload
	h.drain(func(p contract.Payload) outcome {
		if p.Tasker.Step == "pack" {
			packs = append(packs, p)
			return outcome{drop: true}
		}
		return ok(map[string]any{})
	})
	kid := h.children(id)[0]
	// As before the park: the step in flight, the child not linked.
	if _, err := h.pool.Exec(h.ctx, `UPDATE tasker_steps SET state = 'in_progress', wait_kind = NULL
		WHERE task_id = $1 AND name = 'ship'`, id); err != nil {
		t.Fatal(err)
	}
	if _, err := h.pool.Exec(h.ctx, `UPDATE tasker_tasks SET parent_step_id = NULL, parent_task_id = NULL WHERE id = $1`, kid); err != nil {
		t.Fatal(err)
	}
	counter.reset()
	deliver(t, h, packs)
	mustStatus(t, h, kid, "complete")
	if n := counter.calls(settleFn); n != 0 {
		t.Fatalf("%d %s statements for a child not linked yet, want 0", n, settleFn)
	}
	c := store.Claim{TaskID: id, Step: "ship", Handler: "tasker.workflow", CorrelationID: "x"}
	if err := h.pool.QueryRow(h.ctx, `SELECT s.id, s.attempts, s.config, t.context FROM tasker_steps s
		JOIN tasker_tasks t ON t.id = s.task_id WHERE s.task_id = $1 AND s.name = 'ship'`, id).
		Scan(&c.StepID, &c.Attempt, &c.Config, &c.Context); err != nil {
		t.Fatal(err)
	}
	counter.reset()
	if err := engine.StartChildren(h.ctx, h.eng, []store.Claim{c}); err != nil {
		t.Fatal(err)
	}
	if n := counter.calls(settleFn); n != 1 {
		t.Fatalf("%d %s statements for a park that found its child ended, want 1", n, settleFn)
	}
	if s := h.step(id, "ship"); s.State != "complete" {
		t.Fatalf("ship = %s, want complete once parked on its ended child", s.State)
	}
	if got := h.children(id); len(got) != 1 || got[0] != kid {
		t.Fatalf("children = %v, want the one child %s", got, kid)
	}
	h.drain(func(contract.Payload) outcome { return ok(map[string]any{}) })
	mustStatus(t, h, id, "complete")
}
