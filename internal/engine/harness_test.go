package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/contract"
	"github.com/taskerhq/tasker/internal/engine"
	"github.com/taskerhq/tasker/internal/enginetest"
	"github.com/taskerhq/tasker/internal/pgtest"
	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type harness struct {
	t     *testing.T
	url   string
	ctx   context.Context
	pool  *pgxpool.Pool
	store *store.Store
	eng   *engine.Engine
	clock *enginetest.Clock
	queue *enginetest.Queue
	inv   *enginetest.Invoker
	pub   *enginetest.Publisher
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
	h := &harness{t: t, url: url, ctx: context.Background(), pool: pool, store: st, clock: enginetest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
		queue: &enginetest.Queue{}, inv: &enginetest.Invoker{}, pub: &enginetest.Publisher{}, tpls: mustSet(t, yamls...)}
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

// outcome is what a test handler does with one invocation.
type outcome struct {
	enginetest.Outcome
	drop bool // the result is lost
}

type handlerFunc func(p contract.Payload) outcome

func ok(v any) outcome { return outcome{Outcome: enginetest.Outcome{Result: v}} }

func fail(he *contract.HandlerError) outcome { return outcome{Outcome: enginetest.Outcome{Err: he}} }

func record(t *testing.T, inv engine.Invocation, o outcome) []byte {
	t.Helper()
	return enginetest.Record(t, inv, o.Outcome)
}

func payloadOf(t *testing.T, inv engine.Invocation) contract.Payload {
	t.Helper()
	return enginetest.Payload(t, inv)
}

// drain delivers immediate messages and runs invocations until nothing is
// left to do now; delayed wake-ups are dropped (the test advances the clock
// and sweeps instead). It returns the invocations it ran, in order.
func (h *harness) drain(fn handlerFunc) []contract.Payload {
	h.t.Helper()
	var ran []contract.Payload
	for round := 0; round < 10000; round++ {
		var in []engine.InMessage
		for _, m := range h.queue.Take() {
			if m.Delay <= 0 {
				in = append(in, engine.InMessage{ID: uuid.NewString(), Body: m.Body})
			} else {
				h.delayed = append(h.delayed, m)
			}
		}
		for _, inv := range h.inv.Take() {
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
	LastError   json.RawMessage
	SkipKind    string
	SkipReason  string
}

func (h *harness) step(id uuid.UUID, name string) stepRow {
	h.t.Helper()
	var s stepRow
	err := h.pool.QueryRow(h.ctx, `SELECT state, attempts, next_retry_at, result, last_error, coalesce(skip_kind, ''), coalesce(skip_reason, '')
		FROM tasker_steps WHERE task_id = $1 AND name = $2`, id, name).
		Scan(&s.State, &s.Attempts, &s.NextRetryAt, &s.Result, &s.LastError, &s.SkipKind, &s.SkipReason)
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
