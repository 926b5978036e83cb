// Package store is Tasker's Postgres access: every query the engine and the
// API run, over a pgx pool. SQL lives in sql/ (embedded); this package only
// binds parameters and scans rows.
//
// Import rules: store imports only its generated queries (store/dbgen) and
// outside libraries (pgx, uuid). It never imports engine, template, api or
// adapters (docs/architecture.md, "Import rules").
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

	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/store/dbgen"
)

// Errors callers check with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// Store runs Tasker's queries.
type Store struct {
	pool *pgxpool.Pool
	// now is the clock of reads that depend on time (a rate limit's next
	// start in a step's blocked_reason); time.Now unless WithClock.
	now func() time.Time

	sweepMu     sync.Mutex
	sweepCursor uuid.UUID // where SweepScan's walk over live tasks resumes
}

// sweepScanFactor × the sweep limit is how many live tasks one SweepScan
// examines for ready steps nobody announced.
const sweepScanFactor = 10

// Option configures a Store.
type Option func(*Store)

// WithClock makes the store's time-dependent reads use now, the clock the
// engine passes to the scheduler (a test clock in tests).
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// New returns a Store over pool. Its queries are compiled into dbgen, so
// the error is always nil; it stays for callers.
func New(pool *pgxpool.Pool, opts ...Option) (*Store, error) {
	s := &Store{pool: pool, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Pool returns the underlying pool (health checks, pool statistics).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// NewTask is a task to create with its materialised steps.
type NewTask struct {
	ID           uuid.UUID
	Namespace    string
	Name         string
	Version      string
	Context      json.RawMessage
	Initiator    string
	SourceSystem string
	Reason       string
	Tags         []string
	// IdempotencyScope is who may replay IdempotencyKey (docs/security.md):
	// the key is unique within its scope only.
	IdempotencyScope string
	IdempotencyKey   string
	// RequestHash identifies the request the key is bound to; a replay of
	// the key with another hash is ErrIdempotencyConflict.
	RequestHash   string
	CorrelationID string
	// TraceParent is the W3C traceparent of the creating span; empty when
	// tracing is off.
	TraceParent string
	Actor       string
	Now         time.Time
	Steps       []NewStep
}

// NewStep is one step of a NewTask.
type NewStep struct {
	ID             uuid.UUID
	Name           string
	Handler        string
	Config         json.RawMessage
	RetryLimit     int
	BackoffBase    time.Duration
	MaxBackoff     time.Duration
	Jitter         float64
	TimeoutSeconds int
	// ConcurrencyKey is the step's identity ("namespace/name/step"), for a
	// keyed cap followed by ConcurrencyKeySep and the resolved key value.
	ConcurrencyKey   string
	ConcurrencyLimit int
	// RateKey, RatePerSecond and RateBurst are the step's rate limit
	// (RateKey "" for none): the step's identity, for a keyed limit
	// followed by ConcurrencyKeySep and the resolved key value.
	RateKey       string
	RatePerSecond float64
	RateBurst     int
	DependsOn     []string
	// TriggerRule is all_success (also when empty), all_done or one_failed;
	// When is the step's condition ("" for none): docs/architecture.md, "States".
	TriggerRule string
	When        string
}

// ErrIdempotencyConflict: the idempotency key was used in its scope with
// another request. It says nothing of the task that holds the key.
var ErrIdempotencyConflict = errors.New("this idempotency key was used with a different request")

// CreateTask inserts the task, steps, edges and first transition in one
// statement. With an idempotency key already used in its scope it returns
// the existing task's id and created=false when the request hashes match,
// else ErrIdempotencyConflict (and no id).
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
	rules := make([]string, n)
	whens := make([]*string, n)
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
		rules[i] = st.TriggerRule
		if rules[i] == "" {
			rules[i] = "all_success"
		}
		if st.When != "" {
			w := st.When
			whens[i] = &w
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
	var idem, hash *string
	if t.IdempotencyKey != "" {
		idem = &t.IdempotencyKey
		if t.RequestHash != "" {
			hash = &t.RequestHash
		}
	}
	tags := t.Tags
	if tags == nil {
		tags = []string{}
	}
	ctxJSON := t.Context
	if len(ctxJSON) == 0 {
		ctxJSON = json.RawMessage("{}")
	}
	arg := dbgen.CreateTaskParams{
		ID: t.ID, Namespace: t.Namespace, Name: t.Name, Version: t.Version, Context: ctxJSON,
		Initiator: t.Initiator, SourceSystem: t.SourceSystem, Reason: t.Reason, Tags: tags,
		IdempotencyScope: t.IdempotencyScope, IdempotencyKey: idem, RequestHash: hash,
		CorrelationID: t.CorrelationID, Now: t.Now, Actor: t.Actor,
		StepIds: ids, StepNames: names, Handlers: handlers, Configs: configs, RetryLimits: limits,
		BackoffBaseMs: bases, MaxBackoffMs: maxes, Jitters: jitters, Timeouts: timeouts,
		ConcurrencyKeys: ckeys, ConcurrencyLimits: climits, EdgeFrom: from, EdgeTo: to,
		TriggerRules: rules, WhenExprs: whens,
	}
	var rates dbgen.SetStepRateLimitsParams
	for _, st := range t.Steps {
		if st.RateKey != "" {
			rates.StepIds = append(rates.StepIds, st.ID)
			rates.RateKeys = append(rates.RateKeys, st.RateKey)
			rates.Rates = append(rates.Rates, st.RatePerSecond)
			rates.Bursts = append(rates.Bursts, int32(st.RateBurst))
		}
	}
	var r dbgen.CreateTaskRow
	var err error
	if t.TraceParent == "" && len(rates.StepIds) == 0 {
		r, err = dbq.CreateTask(ctx, s.pool, arg)
	} else {
		// One round trip and one implicit transaction; an existing task
		// (repeated idempotency key) has other ids and keeps its trace and
		// rate limits.
		var p pipeline
		p.queue(func(db dbgen.DBTX) (err error) {
			r, err = dbq.CreateTask(ctx, db, arg)
			return err
		})
		if len(rates.StepIds) > 0 {
			p.queue(func(db dbgen.DBTX) error { return dbq.SetStepRateLimits(ctx, db, rates) })
		}
		if t.TraceParent != "" {
			p.queue(func(db dbgen.DBTX) error {
				return dbq.SetTraceParent(ctx, db, dbgen.SetTraceParentParams{TraceParent: &t.TraceParent, ID: t.ID})
			})
		}
		err = p.send(ctx, s.pool)
	}
	if err != nil {
		return uuid.Nil, false, fmt.Errorf("create task: %w", err)
	}
	// A key recorded before requests were hashed (migration 0010) has no
	// hash: a replay of it is taken as the same request, as it was then.
	if !r.Created && r.RequestHash != "" && r.RequestHash != t.RequestHash {
		return uuid.Nil, false, ErrIdempotencyConflict
	}
	return r.TaskID, r.Created, nil
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
	// Skip records the attempt as skipped (its condition was false), with
	// Reason as the skip reason; OK, Result and Error are ignored.
	Skip bool
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
	From, To    domain.StepState
	NextRetryAt *time.Time
	Reason      string
	// CorrelationID and TraceParent are the task's (set by Process).
	CorrelationID string
	TraceParent   string
}

// TaskChange is a task status change made by a scheduler pass.
type TaskChange struct {
	TaskID        uuid.UUID
	From, To      domain.TaskStatus
	Namespace     string
	Workflow      string
	CorrelationID string
	TraceParent   string
	// ParentTaskID is the task whose tasker.workflow step started this one,
	// uuid.Nil for a task without a parent; set on a pass's finalized tasks,
	// whose parents the engine settles (docs/architecture.md, "Child workflows").
	ParentTaskID uuid.UUID
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
	From          domain.StepState
	TaskStarted   bool
	TraceParent   string
	// CallbackSecret is the secret of the attempt's callback token; the
	// database keeps only its SHA-256 (docs/architecture.md, "Callbacks").
	CallbackSecret []byte
	// OperatorRetries counts the operator retries of the step; the
	// idempotency key changes with it (docs/architecture.md, "Handler contract").
	OperatorRetries int
	// When is the step's condition, "" for none: the engine evaluates it
	// before dispatching and records a skip when it is false.
	When string
	// Map is {"index": i, "item": …} for an instance of a map step
	// (docs/architecture.md, "Map"), nil otherwise.
	Map json.RawMessage
}

// Wake asks for a wake-up of a task that flow control held back
// (docs/architecture.md, "Flow control"): a slot under its key was freed,
// or its rate limit's next token is due at At (nil: now).
type Wake struct {
	TaskID uuid.UUID
	At     *time.Time
	// Reason names the limit: concurrency, rate_limit or task_concurrency.
	Reason string
}

// Held is a ready step a scheduler pass held back under its concurrency key
// (a rate limit's holds are Wakes): counted for the metrics.
type Held struct {
	TaskID uuid.UUID
	StepID uuid.UUID
	// Reason names the limit: concurrency.
	Reason string
}

// ProcessOutput is what a scheduler pass changed and claimed.
type ProcessOutput struct {
	Recorded  []Transition
	Finalized []TaskChange
	Claims    []Claim
	Wakes     []Wake
	Held      []Held
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
	skips := make([]bool, n)
	for i, r := range in.Results {
		ids[i], attempts[i], oks[i], perm[i], reasons[i] = r.StepID, int32(r.Attempt), r.OK, r.Permanent, r.Reason
		skips[i] = r.Skip
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
	rows, err := dbq.SchedulerPass(ctx, s.pool, dbgen.SchedulerPassParams{
		Now: in.Now, Actor: in.Actor, TaskIds: in.TaskIDs,
		StepIds: ids, Attempts: attempts, Ok: oks, Results: results, Errors: errs, Permanent: perm,
		RetryAfterMs: after, Reasons: reasons, Skip: skips,
		ClaimLimit: int32(in.ClaimLimit), GlobalCap: int32(in.GlobalCap), GraceSeconds: int32(in.Grace / time.Second),
	})
	if err != nil {
		return ProcessOutput{}, fmt.Errorf("scheduler pass: %w", err)
	}
	for _, r := range rows {
		// Columns a kind of row leaves NULL are pointers; each kind sets
		// those it reads (tasker_scheduler_pass_row, migration 0009).
		trace := deref(r.TraceParent)
		switch r.Kind {
		case "recorded":
			out.Recorded = append(out.Recorded, Transition{
				TaskID: r.TaskID, StepID: *r.StepID, Step: *r.StepName, Attempt: int(*r.Attempt), From: domain.StepState(r.FromState),
				To: domain.StepState(r.ToState), NextRetryAt: r.NextRetryAt, Reason: *r.Reason, CorrelationID: r.CorrelationID,
				TraceParent: trace,
			})
		case "claimed":
			out.Claims = append(out.Claims, Claim{
				StepID: *r.StepID, TaskID: r.TaskID, Step: *r.StepName, Handler: *r.Handler, Attempt: int(*r.Attempt),
				MaxAttempts: int(*r.MaxAttempts), Deadline: *r.DeadlineAt, Config: r.Config, Context: r.Context,
				Namespace: r.Namespace, Workflow: r.Workflow, Version: r.Version, CorrelationID: r.CorrelationID,
				Results: r.Results, From: domain.StepState(r.FromState), TaskStarted: *r.TaskStarted, TraceParent: trace,
				CallbackSecret: r.CallbackSecret, OperatorRetries: operatorRetries(r.OperatorRetries),
				When: deref(r.WhenExpr), Map: r.Map,
			})
		case "finalized":
			tc := TaskChange{
				TaskID: r.TaskID, From: domain.TaskStatus(r.FromState), To: domain.TaskStatus(r.ToState), Namespace: r.Namespace, Workflow: r.Workflow,
				CorrelationID: r.CorrelationID, TraceParent: trace,
			}
			if r.ParentTaskID != nil {
				tc.ParentTaskID = *r.ParentTaskID
			}
			out.Finalized = append(out.Finalized, tc)
		case "wake":
			out.Wakes = append(out.Wakes, Wake{TaskID: r.TaskID, At: r.NextRetryAt, Reason: deref(r.Reason)})
		case "held":
			h := Held{TaskID: r.TaskID, Reason: deref(r.Reason)}
			if r.StepID != nil {
				h.StepID = *r.StepID
			}
			out.Held = append(out.Held, h)
		default:
			return ProcessOutput{}, fmt.Errorf("scheduler pass: unknown row kind %q", r.Kind)
		}
	}
	return out, nil
}

// deref returns *p, or "" for nil.
// operatorRetries reads the claimed row's count (NULL only in rows of
// other kinds).
func operatorRetries(p *int32) int {
	if p == nil {
		return 0
	}
	return int(*p)
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
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
	rows, err := dbq.ReleaseClaims(ctx, s.pool, dbgen.ReleaseClaimsParams{
		Now: now, StepIds: ids, Attempts: attempts, Reasons: reasons, DelayMs: int32(delay / time.Millisecond), Actor: actor,
	})
	if err != nil {
		return nil, fmt.Errorf("release claims: %w", err)
	}
	var out []Transition
	for _, r := range rows {
		out = append(out, Transition{
			TaskID: r.TaskID, StepID: r.StepID, Step: r.StepName, Attempt: int(r.Attempt),
			From: domain.StepInProgress, To: domain.StepWaitingForRetry, NextRetryAt: &r.NextRetryAt, Reason: "dispatch failed",
		})
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
	rows, err := dbq.SweepScan(ctx, s.pool, dbgen.SweepScanParams{
		Now: now, Lim: int32(limit), After: after, Scan: int32(limit * sweepScanFactor), Self: self, StaleBefore: staleBefore,
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("sweep scan: %w", err)
	}
	var next uuid.UUID
	for _, r := range rows {
		// Columns a kind of row leaves NULL are pointers
		// (tasker_sweep_scan_row, migration 0009).
		switch r.Kind {
		case "task":
			tasks = append(tasks, *r.TaskID)
			continue
		case "cursor":
			if r.TaskID != nil {
				next = *r.TaskID
			}
			continue
		}
		o := Overdue{TaskID: *r.TaskID, StepID: *r.StepID, Attempt: int(*r.Attempt), TimeoutSeconds: int(*r.TimeoutSeconds),
			ClaimedBy: deref(r.ClaimedBy)}
		if r.Kind == "expired" {
			expired = append(expired, o)
		} else {
			interrupted = append(interrupted, o)
		}
	}
	s.sweepMu.Lock()
	s.sweepCursor = next // uuid.Nil at the end: start over
	s.sweepMu.Unlock()
	return tasks, expired, interrupted, nil
}

// Heartbeat records that an engine instance is alive, and forgets instances
// silent since forgetBefore that hold no work.
func (s *Store) Heartbeat(ctx context.Context, instance string, local bool, now, forgetBefore time.Time) error {
	err := dbq.Heartbeat(ctx, s.pool, dbgen.HeartbeatParams{Instance: instance, Local: local, Now: now, ForgetBefore: forgetBefore})
	if err != nil {
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

// StepRef names one step of a task.
type StepRef struct {
	TaskID uuid.UUID
	Step   string
}

// StepResults returns the results of the named steps (nil for a step with
// none yet), keyed by task and step: the inputs of claimed steps beyond
// their direct parents (docs/templates.md, "Inputs"). Unknown steps are
// absent.
func (s *Store) StepResults(ctx context.Context, refs []StepRef) (map[StepRef]json.RawMessage, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	ids := make([]uuid.UUID, len(refs))
	names := make([]string, len(refs))
	for i, r := range refs {
		ids[i], names[i] = r.TaskID, r.Step
	}
	rows, err := dbq.StepResults(ctx, s.pool, dbgen.StepResultsParams{TaskIds: ids, Names: names})
	if err != nil {
		return nil, fmt.Errorf("step results: %w", err)
	}
	out := make(map[StepRef]json.RawMessage, len(rows))
	for _, r := range rows {
		out[StepRef{TaskID: r.TaskID, Step: r.Name}] = r.Result
	}
	return out, nil
}

// ConcurrencyKeySep separates a step's identity from the value of its
// concurrency key in tasker_steps.concurrency_key; reads show the part after
// it as the key (ReadTaskSteps' blocked_reason).
const ConcurrencyKeySep = "\x1f"

// PruneRateBuckets deletes up to limit token buckets that have refilled to
// their burst by now (docs/architecture.md, "Flow control"); a missing
// bucket is a full one, so this only bounds the table.
func (s *Store) PruneRateBuckets(ctx context.Context, now time.Time, limit int) (int64, error) {
	// In a transaction under IndexPlans: the delete walks the full_at index
	// whatever the statistics say (docs/architecture.md, "Cost follows the
	// work").
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) (err error) {
		if err := dbq.IndexPlans(ctx, tx); err != nil {
			return err
		}
		n, err = dbq.PruneRateBuckets(ctx, tx, dbgen.PruneRateBucketsParams{Now: now, MaxRows: int32(limit)})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune rate buckets: %w", err)
	}
	return n, nil
}
