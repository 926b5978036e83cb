package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// clock is a manual test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// recQueue records sent messages; the test decides when they arrive.
type recQueue struct {
	mu   sync.Mutex
	msgs []engine.Message
}

func (q *recQueue) Send(_ context.Context, msgs []engine.Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.msgs = append(q.msgs, msgs...)
	return nil
}

func (q *recQueue) take() []engine.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.msgs
	q.msgs = nil
	return out
}

// recInvoker records invocations; fail, when set, decides dispatch errors.
type recInvoker struct {
	mu    sync.Mutex
	invs  []engine.Invocation
	total int
	fail  func(engine.Invocation) error
}

func (i *recInvoker) Invoke(_ context.Context, inv engine.Invocation) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.fail != nil {
		if err := i.fail(inv); err != nil {
			return err
		}
	}
	i.invs = append(i.invs, inv)
	i.total++
	return nil
}

func (i *recInvoker) take() []engine.Invocation {
	i.mu.Lock()
	defer i.mu.Unlock()
	out := i.invs
	i.invs = nil
	return out
}

// recPublisher collects lifecycle events.
type recPublisher struct {
	mu     sync.Mutex
	events []engine.Event
}

func (p *recPublisher) Publish(_ context.Context, evs []engine.Event) {
	p.mu.Lock()
	p.events = append(p.events, evs...)
	p.mu.Unlock()
}

func (p *recPublisher) count(name engine.EventName) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, e := range p.events {
		if e.Name == name {
			n++
		}
	}
	return n
}

type harness struct {
	t     *testing.T
	url   string
	ctx   context.Context
	pool  *pgxpool.Pool
	store *store.Store
	eng   *engine.Engine
	clock *clock
	queue *recQueue
	inv   *recInvoker
	pub   *recPublisher
	tpls  *template.Set
	// delayed holds wake-ups drain did not deliver.
	delayed []engine.Message
}

func mustSet(t *testing.T, yamls ...string) *template.Set {
	t.Helper()
	var ts []*template.Template
	for i, y := range yamls {
		tpl, err := template.Parse(fmt.Sprintf("test%d.yaml", i), []byte(y), template.Options{})
		if err != nil {
			t.Fatalf("parse template: %v", err)
		}
		ts = append(ts, tpl)
	}
	set, err := template.NewSet(ts...)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func newHarness(t *testing.T, cfg engine.Config, yamls ...string) *harness {
	t.Helper()
	url := pgtest.URL(t)
	pool := newPool(t, url)
	st, err := store.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, url: url, ctx: context.Background(), pool: pool, store: st, clock: newClock(),
		queue: &recQueue{}, inv: &recInvoker{}, pub: &recPublisher{}, tpls: mustSet(t, yamls...)}
	cfg.Store, cfg.Templates, cfg.Queue, cfg.Invoker, cfg.Publisher = st, h.tpls, h.queue, h.inv, h.pub
	if cfg.Clock == nil {
		cfg.Clock = h.clock
	}
	h.eng, err = engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) create(name string, ctxJSON string) uuid.UUID {
	h.t.Helper()
	c, err := h.eng.CreateTask(h.ctx, engine.CreateRequest{Namespace: "test", Name: name, Context: json.RawMessage(ctxJSON)})
	if err != nil {
		h.t.Fatalf("create task: %v", err)
	}
	return c.TaskID
}

// outcome is what a test handler returns for one invocation.
type outcome struct {
	result any
	err    *contract.HandlerError
	crash  bool // unhandled Lambda error
	drop   bool // the result is lost
}

type handlerFunc func(p contract.Payload) outcome

func ok(v any) outcome { return outcome{result: v} }

func record(t *testing.T, inv engine.Invocation, o outcome) []byte {
	t.Helper()
	rec := contract.DestinationRecord{
		Version:         "1.0",
		Timestamp:       time.Now().UTC(),
		RequestContext:  contract.RequestContext{RequestID: uuid.NewString(), FunctionArn: "arn:aws:lambda:us-east-1:123456789012:function:h:$LATEST", Condition: contract.ConditionSuccess, ApproximateInvokeCount: 1},
		RequestPayload:  inv.Payload,
		ResponseContext: contract.ResponseContext{StatusCode: 200, ExecutedVersion: "$LATEST"},
	}
	var body any = o.result
	switch {
	case o.crash:
		rec.RequestContext.Condition = contract.ConditionRetriesExhausted
		rec.ResponseContext.FunctionError = "Unhandled"
		body = contract.LambdaError{ErrorMessage: "boom", ErrorType: "Runtime.ExitError"}
	case o.err != nil:
		body = contract.ErrorEnvelope{TaskerError: o.err}
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	rec.ResponsePayload = b
	out, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func payloadOf(t *testing.T, inv engine.Invocation) contract.Payload {
	t.Helper()
	var p contract.Payload
	if err := json.Unmarshal(inv.Payload, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// drain delivers immediate messages and runs invocations until nothing is
// left to do now; delayed wake-ups are dropped (the test advances the clock
// and sweeps instead). It returns the invocations it ran, in order.
func (h *harness) drain(fn handlerFunc) []contract.Payload {
	h.t.Helper()
	var ran []contract.Payload
	for round := 0; round < 10000; round++ {
		var in []engine.InMessage
		for _, m := range h.queue.take() {
			if m.Delay <= 0 {
				in = append(in, engine.InMessage{ID: uuid.NewString(), Body: m.Body})
			} else {
				h.delayed = append(h.delayed, m)
			}
		}
		for _, inv := range h.inv.take() {
			p := payloadOf(h.t, inv)
			ran = append(ran, p)
			o := fn(p)
			if o.drop {
				continue
			}
			in = append(in, engine.InMessage{ID: uuid.NewString(), Body: record(h.t, inv, o)})
		}
		if len(in) == 0 {
			return ran
		}
		failed, err := h.eng.HandleMessages(h.ctx, in)
		if err != nil {
			h.t.Fatalf("handle messages: %v", err)
		}
		if len(failed) > 0 {
			h.t.Fatalf("messages failed: %v", failed)
		}
	}
	h.t.Fatal("drain did not settle")
	return nil
}

func (h *harness) taskStatus(id uuid.UUID) string {
	h.t.Helper()
	var s string
	if err := h.pool.QueryRow(h.ctx, "SELECT status FROM tasker_tasks WHERE id = $1", id).Scan(&s); err != nil {
		h.t.Fatal(err)
	}
	return s
}

type stepRow struct {
	State       string
	Attempts    int
	NextRetryAt *time.Time
	Result      json.RawMessage
}

func (h *harness) step(id uuid.UUID, name string) stepRow {
	h.t.Helper()
	var s stepRow
	err := h.pool.QueryRow(h.ctx, "SELECT state, attempts, next_retry_at, result FROM tasker_steps WHERE task_id = $1 AND name = $2", id, name).
		Scan(&s.State, &s.Attempts, &s.NextRetryAt, &s.Result)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

func (h *harness) transitions(id uuid.UUID) int {
	h.t.Helper()
	var n int
	if err := h.pool.QueryRow(h.ctx, "SELECT count(*) FROM tasker_transitions WHERE task_id = $1", id).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

func mustStatus(t *testing.T, h *harness, id uuid.UUID, want string) {
	t.Helper()
	if got := h.taskStatus(id); got != want {
		t.Fatalf("task status = %s, want %s", got, want)
	}
}

var errThrottled = errors.New("throttled")

func newPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// peer returns a second engine on the same database with its own pool.
func (h *harness) peer(cfg engine.Config) *engine.Engine {
	h.t.Helper()
	st, err := store.New(newPool(h.t, h.url))
	if err != nil {
		h.t.Fatal(err)
	}
	cfg.Store, cfg.Templates, cfg.Queue, cfg.Invoker, cfg.Publisher = st, h.tpls, h.queue, h.inv, h.pub
	if cfg.Clock == nil {
		cfg.Clock = h.clock
	}
	e, err := engine.New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	return e
}
