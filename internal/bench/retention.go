package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker/internal/store"
)

// #8 retention (docs/benchmarks.md, docs/operating.md "Retention"): the
// scheduler pass cost (readiness, claims, records, finalisation: the pass
// is where readiness is evaluated) over fresh live tasks, measured on a
// database holding the finished history, first alone, then while a
// pruner deletes that history as fast as it can in batches of 100 tasks
// (the sweep deletes one batch per run; this is the worst case). Each pass
// takes 8 tasks of the 4-step linear workflow and records the previous
// claims while claiming the next steps.

const (
	retentionBatch  = 100 // tasks per prune transaction, the sweep's default
	retentionPassOf = 8   // tasks per measured pass
)

// retentionHistory is the finished steps #8 prunes over.
func (o *Options) retentionHistory() int64 {
	if o.RetentionHistory > 0 {
		return o.RetentionHistory
	}
	if o.Quick {
		return 100_000
	}
	return 1_000_000
}

func (e *env) retention(ctx context.Context, seed *seeder) ([]Row, error) {
	want := e.opts.retentionHistory()
	if have := seed.seeded().History; have < want {
		if err := seed.history(ctx, want-have); err != nil {
			return nil, err
		}
	}
	if err := seed.settle(ctx); err != nil {
		return nil, err
	}
	pool, err := pgxpool.New(ctx, e.db.url)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	st, err := store.New(pool)
	if err != nil {
		return nil, err
	}
	rows, err := tableRows(ctx, pool)
	if err != nil {
		return nil, err
	}
	e.note("#8: the database held %s before pruning: finished tasks are deleted with their steps, edges and transitions", rows)
	tasks := e.opts.n(2000, 200)
	measure := func(label string) ([]time.Duration, error) {
		ids, err := e.precreate(ctx, st, wfLinear, tasks)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(e.progress, "bench: #8 %s: %d passes\n", label, (len(ids)+retentionPassOf-1)/retentionPassOf*5)
		return passes(ctx, st, ids)
	}
	if _, err := measure("warm-up"); err != nil {
		return nil, err
	}
	base, err := measure("passes, no pruning")
	if err != nil {
		return nil, err
	}

	// The pruner: history is 90 days old, retention 30 days. pace is the
	// pause between batches: 0 is the worst case (back to back); the sweep
	// prunes one batch per run (every 2 s locally, every minute on AWS).
	prune := func(label string, pace time.Duration) (with, pruneDur []time.Duration, n int64, elapsed time.Duration, err error) {
		pctx, stop := context.WithCancel(ctx)
		var pruned atomic.Int64
		var pruneErr error
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pctx.Err() == nil {
				t0 := time.Now()
				ids, err := st.Prune(pctx, time.Now().Add(-30*24*time.Hour), retentionBatch, nil)
				if err != nil {
					if pctx.Err() == nil {
						pruneErr = err
					}
					return
				}
				pruneDur = append(pruneDur, time.Since(t0))
				pruned.Add(int64(len(ids)))
				if len(ids) == 0 {
					return // all pruned: the rest of the passes run without it
				}
				select {
				case <-pctx.Done():
				case <-time.After(pace):
				}
			}
		}()
		began := time.Now()
		with, err = measure(label)
		elapsed = time.Since(began)
		stop()
		wg.Wait()
		if err == nil && pruneErr != nil {
			err = fmt.Errorf("prune: %w", pruneErr)
		}
		return with, pruneDur, pruned.Load(), elapsed, err
	}
	const pace = 250 * time.Millisecond
	paced, _, np, elapsedP, err := prune("passes while pruning a batch every 250 ms", pace)
	if err != nil {
		return nil, err
	}
	e.note("#8: %d finished tasks pruned during the %.1f s of passes with a batch every %s", np, elapsedP.Seconds(), pace)
	with, pruneDur, n, elapsed, err := prune("passes while pruning back to back", 0)
	if err != nil {
		return nil, err
	}
	e.note("#8: %d finished tasks (%d steps) pruned during the %.1f s of passes, back to back, in %d batches of up to %d",
		n, n*10, elapsed.Seconds(), len(pruneDur), retentionBatch)
	after, err := tableRows(ctx, pool)
	if err != nil {
		return nil, err
	}
	e.note("#8: after pruning: %s", after)
	hist := short(want)
	return []Row{
		{ID: "8", Name: fmt.Sprintf("scheduler pass (8 tasks), %s finished steps of history, no pruning", hist),
			N: len(base), P50: percentile(base, 50), P99: percentile(base, 99)},
		{ID: "8", Name: fmt.Sprintf("scheduler pass (8 tasks), while pruning the %s a batch every %s (8x the local sweep's pace)", hist, pace),
			N: len(paced), P50: percentile(paced, 50), P99: percentile(paced, 99),
			Target:  "p50, p99 within 1.5x of no pruning",
			Verdict: verdict(percentile(paced, 50) <= percentile(base, 50)*3/2 && percentile(paced, 99) <= percentile(base, 99)*3/2)},
		{ID: "8", Name: fmt.Sprintf("scheduler pass (8 tasks), while pruning the %s back to back (worst case)", hist),
			N: len(with), P50: percentile(with, 50), P99: percentile(with, 99), Verdict: "info"},
		{ID: "8", Name: fmt.Sprintf("prune transaction (%d finished 10-step tasks, with their rows)", retentionBatch),
			N: len(pruneDur), P50: percentile(pruneDur, 50), P99: percentile(pruneDur, 99),
			Throughput: rate(perSec(int(n), elapsed), "tasks")},
	}, nil
}

// passes runs scheduler passes over ids, retentionPassOf tasks at a time:
// each group is passed until its tasks finish (the previous claims recorded
// as successes, the next steps claimed), and every pass is timed.
func passes(ctx context.Context, st *store.Store, ids []uuid.UUID) ([]time.Duration, error) {
	var out []time.Duration
	for lo := 0; lo < len(ids); lo += retentionPassOf {
		group := ids[lo:min(lo+retentionPassOf, len(ids))]
		var results []store.StepResult
		for round := 0; round < 10; round++ {
			t0 := time.Now()
			res, err := st.Process(ctx, store.ProcessInput{Now: time.Now(), Actor: "bench-8", TaskIDs: group,
				Results: results, ClaimLimit: 100, Grace: 30 * time.Second})
			if err != nil {
				return nil, err
			}
			out = append(out, time.Since(t0))
			results = results[:0]
			for _, c := range res.Claims {
				results = append(results, store.StepResult{StepID: c.StepID, Attempt: c.Attempt, OK: true,
					Result: json.RawMessage(`{}`), Reason: "succeeded"})
			}
			if len(results) == 0 {
				break
			}
		}
	}
	return out, nil
}

// tableRows counts the rows of the big tables (exact: a few seconds).
func tableRows(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var s string
	var total int64
	for _, t := range []string{"tasker_tasks", "tasker_steps", "tasker_step_edges", "tasker_transitions"} {
		var n int64
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+t).Scan(&n); err != nil {
			return "", err
		}
		total += n
		s += fmt.Sprintf("%s %s, ", t, thousands(float64(n)))
	}
	return s + fmt.Sprintf("%s rows in all", thousands(float64(total))), nil
}
