// Package store is Tasker's Postgres access: every query the engine and the
// API run, over a pgx pool. SQL lives in sql/ (embedded); this package only
// binds parameters and scans rows.
//
// Import rules: store imports contract-free leaf packages only (pgx, uuid,
// tasksql). It never imports engine, api or adapters.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors callers check with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// Store runs Tasker's queries.
type Store struct {
	pool *pgxpool.Pool
	q    queries

	sweepMu     sync.Mutex
	sweepCursor uuid.UUID // where SweepScan's walk over live tasks resumes
}

// sweepScanFactor × the sweep limit is how many live tasks one SweepScan
// examines for ready steps nobody announced.
const sweepScanFactor = 10

var required = []string{
	"scheduler_pass", "release_claims", "sweep_scan", "heartbeat",
	"create_task", "set_trace_parent",
}

// New returns a Store over pool.
func New(pool *pgxpool.Pool) (*Store, error) {
	q, err := loadQueries()
	if err != nil {
		return nil, fmt.Errorf("store: load queries: %w", err)
	}
	for _, name := range required {
		if _, ok := q[name]; !ok {
			return nil, fmt.Errorf("store: query %q missing from sql/queries", name)
		}
	}
	return &Store{pool: pool, q: q}, nil
}

// Pool returns the underlying pool (health checks, pool statistics).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// NewTask is a task to create with its materialised steps.
type NewTask struct {
	ID             uuid.UUID
	Namespace      string
	Name           string
	Version        string
	Context        json.RawMessage
	Initiator      string
	SourceSystem   string
	Reason         string
	Tags           []string
	IdempotencyKey string
	CorrelationID  string
	// TraceParent is the W3C traceparent of the creating span; empty when
	// tracing is off.
	TraceParent string
	Actor       string
	Now         time.Time
	Steps       []NewStep
}

// NewStep is one step of a NewTask.
type NewStep struct {
	ID               uuid.UUID
	Name             string
	Handler          string
	Config           json.RawMessage
	RetryLimit       int
	BackoffBase      time.Duration
	MaxBackoff       time.Duration
	Jitter           float64
	TimeoutSeconds   int
	ConcurrencyKey   string
	ConcurrencyLimit int
	DependsOn        []string
}

// CreateTask inserts the task, steps, edges and first transition in one
// statement. With a repeated idempotency key it returns the existing task's
// id and created=false.
func (s *Store) CreateTask(ctx context.Context, t NewTask) (uuid.UUID, bool, error) {
	n := len(t.Steps)
	ids := make([]uuid.UUID, n)
	names := make([]string, n)
	handlers := make([]string, n)
	configs := make([]json.RawMessage, n)
	limits := make([]int32, n)
	bases := make([]int32, n)
	maxes := make([]int32, n)
	jitters := make([]float32, n)
	timeouts := make([]int32, n)
	ckeys := make([]*string, n)
	climits := make([]*int32, n)
	byName := make(map[string]uuid.UUID, n)
	for i, st := range t.Steps {
		ids[i], names[i], handlers[i] = st.ID, st.Name, st.Handler
		configs[i] = st.Config
		if len(configs[i]) == 0 {
			configs[i] = json.RawMessage("{}")
		}
		limits[i] = int32(st.RetryLimit)
		bases[i] = int32(st.BackoffBase / time.Millisecond)
		maxes[i] = int32(st.MaxBackoff / time.Millisecond)
		jitters[i] = float32(st.Jitter)
		timeouts[i] = int32(st.TimeoutSeconds)
		if st.ConcurrencyLimit > 0 {
			k, l := st.ConcurrencyKey, int32(st.ConcurrencyLimit)
			ckeys[i], climits[i] = &k, &l
		}
		byName[st.Name] = st.ID
	}
	var from, to []uuid.UUID
	for _, st := range t.Steps {
		for _, d := range st.DependsOn {
			p, ok := byName[d]
			if !ok {
				return uuid.Nil, false, fmt.Errorf("step %q depends on unknown step %q", st.Name, d)
			}
			from, to = append(from, p), append(to, st.ID)
		}
	}
	var idem *string
	if t.IdempotencyKey != "" {
		idem = &t.IdempotencyKey
	}
	tags := t.Tags
	if tags == nil {
		tags = []string{}
	}
	ctxJSON := t.Context
	if len(ctxJSON) == 0 {
		ctxJSON = json.RawMessage("{}")
	}
	var id uuid.UUID
	var created bool
	args := []any{t.ID, t.Namespace, t.Name, t.Version, ctxJSON, t.Initiator, t.SourceSystem, t.Reason, tags,
		idem, t.CorrelationID, t.Now, t.Actor,
		ids, names, handlers, configs, limits, bases, maxes, jitters, timeouts, ckeys, climits, from, to}
	var err error
	if t.TraceParent == "" {
		err = s.pool.QueryRow(ctx, s.q.get("create_task"), args...).Scan(&id, &created)
	} else {
		// One round trip and one implicit transaction; an existing task
		// (repeated idempotency key) has another id and keeps its trace.
		b := &pgx.Batch{}
		b.Queue(s.q.get("create_task"), args...).QueryRow(func(row pgx.Row) error { return row.Scan(&id, &created) })
		b.Queue(s.q.get("set_trace_parent"), t.ID, t.TraceParent)
		err = s.pool.SendBatch(ctx, b).Close()
	}
	if err != nil {
		return uuid.Nil, false, fmt.Errorf("create task: %w", err)
	}
	return id, created, nil
}

// StepResult is one step outcome to record.
type StepResult struct {
	StepID     uuid.UUID
	Attempt    int
	OK         bool
	Result     json.RawMessage
	Error      json.RawMessage
	Permanent  bool
	RetryAfter *time.Duration
	Reason     string
}

// ProcessInput is one scheduler pass over a set of tasks.
type ProcessInput struct {
	Now        time.Time
	Actor      string // instance id, recorded on transitions and claims
	TaskIDs    []uuid.UUID
	Results    []StepResult
	ClaimLimit int
	GlobalCap  int
	Grace      time.Duration
}

// Transition is a step state change made by a scheduler pass.
type Transition struct {
	TaskID      uuid.UUID
	StepID      uuid.UUID
	Step        string
	Attempt     int
	From, To    string
	NextRetryAt *time.Time
	Reason      string
	// CorrelationID and TraceParent are the task's (set by Process).
	CorrelationID string
	TraceParent   string
}

// TaskChange is a task status change made by a scheduler pass.
type TaskChange struct {
	TaskID        uuid.UUID
	From, To      string
	Namespace     string
	Workflow      string
	CorrelationID string
	TraceParent   string
}

// Claim is a step attempt claimed for dispatch, with what its payload needs.
type Claim struct {
	StepID        uuid.UUID
	TaskID        uuid.UUID
	Step          string
	Handler       string
	Attempt       int
	MaxAttempts   int
	Deadline      time.Time
	Config        json.RawMessage
	Context       json.RawMessage
	Namespace     string
	Workflow      string
	Version       string
	CorrelationID string
	Results       json.RawMessage
	From          string
	TaskStarted   bool
	TraceParent   string
}

// ProcessOutput is what a scheduler pass changed and claimed.
type ProcessOutput struct {
	Recorded  []Transition
	Finalized []TaskChange
	Claims    []Claim
}

// Process runs one scheduler pass as one statement (tasker_scheduler_pass)
// in one transaction: lock the tasks, record results, claim ready steps,
// and finalise tasks that can make no more progress.
func (s *Store) Process(ctx context.Context, in ProcessInput) (ProcessOutput, error) {
	var out ProcessOutput
	if len(in.TaskIDs) == 0 {
		return out, nil
	}
	n := len(in.Results)
	ids := make([]uuid.UUID, n)
	attempts := make([]int32, n)
	oks := make([]bool, n)
	results := make([]json.RawMessage, n)
	errs := make([]json.RawMessage, n)
	perm := make([]bool, n)
	after := make([]*int64, n)
	reasons := make([]string, n)
	for i, r := range in.Results {
		ids[i], attempts[i], oks[i], perm[i], reasons[i] = r.StepID, int32(r.Attempt), r.OK, r.Permanent, r.Reason
		if r.OK {
			results[i] = r.Result
		} else {
			errs[i] = r.Error
		}
		if r.RetryAfter != nil {
			ms := r.RetryAfter.Milliseconds()
			after[i] = &ms
		}
	}
	rows, err := s.pool.Query(ctx, s.q.get("scheduler_pass"), in.Now, in.Actor, in.TaskIDs,
		ids, attempts, oks, results, errs, perm, after, reasons,
		int32(in.ClaimLimit), int32(in.GlobalCap), int32(in.Grace/time.Second))
	if err != nil {
		return ProcessOutput{}, fmt.Errorf("scheduler pass: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			r                              passRow
			stepID                         *uuid.UUID
			step, handler, reason          *string
			attempt, maxAttempts           *int32
			deadline                       *time.Time
			config, context, parentResults []byte
			started                        *bool
		)
		if err := rows.Scan(&r.kind, &r.taskID, &stepID, &step, &attempt, &r.from, &r.to, &r.nextRetryAt, &reason,
			&r.namespace, &r.workflow, &r.version, &r.correlationID, &r.traceParent,
			&handler, &maxAttempts, &deadline, &config, &context, &parentResults, &started); err != nil {
			return ProcessOutput{}, fmt.Errorf("scheduler pass: %w", err)
		}
		switch r.kind {
		case "recorded":
			out.Recorded = append(out.Recorded, Transition{
				TaskID: r.taskID, StepID: *stepID, Step: *step, Attempt: int(*attempt), From: r.from, To: r.to,
				NextRetryAt: r.nextRetryAt, Reason: *reason, CorrelationID: r.correlationID, TraceParent: r.trace(),
			})
		case "claimed":
			out.Claims = append(out.Claims, Claim{
				StepID: *stepID, TaskID: r.taskID, Step: *step, Handler: *handler, Attempt: int(*attempt),
				MaxAttempts: int(*maxAttempts), Deadline: *deadline, Config: config, Context: context,
				Namespace: r.namespace, Workflow: r.workflow, Version: r.version, CorrelationID: r.correlationID,
				Results: parentResults, From: r.from, TaskStarted: *started, TraceParent: r.trace(),
			})
		case "finalized":
			out.Finalized = append(out.Finalized, TaskChange{
				TaskID: r.taskID, From: r.from, To: r.to, Namespace: r.namespace, Workflow: r.workflow,
				CorrelationID: r.correlationID, TraceParent: r.trace(),
			})
		default:
			return ProcessOutput{}, fmt.Errorf("scheduler pass: unknown row kind %q", r.kind)
		}
	}
	if err := rows.Err(); err != nil {
		return ProcessOutput{}, fmt.Errorf("scheduler pass: %w", err)
	}
	return out, nil
}

// passRow holds the columns every row of tasker_scheduler_pass has.
type passRow struct {
	kind, from, to                              string
	taskID                                      uuid.UUID
	nextRetryAt                                 *time.Time
	namespace, workflow, version, correlationID string
	traceParent                                 *string
}

func (r passRow) trace() string {
	if r.traceParent == nil {
		return ""
	}
	return *r.traceParent
}

// Release is a claim to undo because its dispatch failed.
type Release struct {
	StepID  uuid.UUID
	Attempt int
	Reason  string
}

// ReleaseClaims undoes claims whose dispatch failed, without burning an
// attempt; the steps become due again after delay.
func (s *Store) ReleaseClaims(ctx context.Context, now time.Time, actor string, delay time.Duration, rs []Release) ([]Transition, error) {
	ids := make([]uuid.UUID, len(rs))
	attempts := make([]int32, len(rs))
	reasons := make([]string, len(rs))
	for i, r := range rs {
		ids[i], attempts[i], reasons[i] = r.StepID, int32(r.Attempt), r.Reason
	}
	rows, err := s.pool.Query(ctx, s.q.get("release_claims"), now, ids, attempts, reasons, int32(delay/time.Millisecond), actor)
	if err != nil {
		return nil, fmt.Errorf("release claims: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Transition, error) {
		t := Transition{From: "in_progress", To: "waiting_for_retry", Reason: "dispatch failed"}
		return t, r.Scan(&t.TaskID, &t.StepID, &t.Step, &t.Attempt, &t.NextRetryAt)
	})
	if err != nil {
		return nil, fmt.Errorf("release claims: %w", err)
	}
	return out, nil
}

// Overdue is an in-flight step attempt that should be failed by the sweep.
type Overdue struct {
	StepID         uuid.UUID
	TaskID         uuid.UUID
	Attempt        int
	TimeoutSeconds int
	ClaimedBy      string
}

// SweepScan finds work the sweep must move on: tasks to evaluate, attempts
// past their deadline, and attempts held by local instances that stopped
// heartbeating before staleBefore.
//
// Live tasks are examined a bounded slice at a time (sweepScanFactor × limit
// tasks after where the previous call stopped), so a sweep's cost does not
// grow with the number of live tasks; successive sweeps cover them all.
func (s *Store) SweepScan(ctx context.Context, now time.Time, self string, staleBefore time.Time, limit int) (tasks []uuid.UUID, expired, interrupted []Overdue, err error) {
	s.sweepMu.Lock()
	after := s.sweepCursor
	s.sweepMu.Unlock()
	rows, err := s.pool.Query(ctx, s.q.get("sweep_scan"), now, int32(limit), after, int32(limit*sweepScanFactor), self, staleBefore)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("sweep scan: %w", err)
	}
	defer rows.Close()
	var next uuid.UUID
	for rows.Next() {
		var (
			kind      string
			taskID    *uuid.UUID
			o         Overdue
			stepID    *uuid.UUID
			attempt   *int32
			timeout   *int32
			claimedBy *string
		)
		if err := rows.Scan(&kind, &taskID, &stepID, &attempt, &timeout, &claimedBy); err != nil {
			return nil, nil, nil, fmt.Errorf("sweep scan: %w", err)
		}
		switch kind {
		case "task":
			tasks = append(tasks, *taskID)
			continue
		case "cursor":
			if taskID != nil {
				next = *taskID
			}
			continue
		}
		o.TaskID, o.StepID, o.Attempt, o.TimeoutSeconds = *taskID, *stepID, int(*attempt), int(*timeout)
		if claimedBy != nil {
			o.ClaimedBy = *claimedBy
		}
		if kind == "expired" {
			expired = append(expired, o)
		} else {
			interrupted = append(interrupted, o)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, nil, fmt.Errorf("sweep scan: %w", err)
	}
	s.sweepMu.Lock()
	s.sweepCursor = next // uuid.Nil at the end: start over
	s.sweepMu.Unlock()
	return tasks, expired, interrupted, nil
}

// Heartbeat records that an engine instance is alive, and forgets instances
// silent since forgetBefore that hold no work.
func (s *Store) Heartbeat(ctx context.Context, instance string, local bool, now, forgetBefore time.Time) error {
	if _, err := s.pool.Exec(ctx, s.q.get("heartbeat"), instance, local, now, forgetBefore); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// InFlight counts step attempts in progress, up to StatusCountCap.
func (s *Store) InFlight(ctx context.Context) (int, error) {
	n, err := dbq.StatusInFlight(ctx, s.pool, StatusCountCap)
	if err != nil {
		return 0, fmt.Errorf("count in-flight steps: %w", err)
	}
	return int(n), nil
}
