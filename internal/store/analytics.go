package store

import (
	"context"
	"fmt"
	"time"

	"github.com/taskerhq/tasker/internal/store/dbgen"
)

// StepStats are one step's figures over a window (docs/operating.md,
// "Template analytics"). Percentiles are p50, p95 and p99 in milliseconds,
// empty when no attempt qualified.
type StepStats struct {
	Step        string
	Runs        int64 // attempts claimed
	Failures    int64 // attempts that failed (retryable or not)
	Retries     int64 // attempts after the first
	DurationMS  []float64
	QueueWaitMS []float64
}

// TemplateStats reads the per-step figures of a template's tasks created in
// [since, until), at most maxTasks of them (the newest), in one snapshot.
// It returns the tasks counted.
func (s *Store) TemplateStats(ctx context.Context, namespace, name string, since, until time.Time, maxTasks int) (int64, []StepStats, error) {
	var tasks int64
	var rows []dbgen.TemplateStepStatsRow
	err := s.snapshot(ctx, func(p *pipeline) {
		p.queue(func(db dbgen.DBTX) (err error) {
			tasks, err = dbq.TemplateTaskCount(ctx, db, dbgen.TemplateTaskCountParams{
				Namespace: namespace, Name: name, Since: since, Until: until, MaxTasks: int32(maxTasks)})
			return err
		})
		p.queue(func(db dbgen.DBTX) (err error) {
			rows, err = dbq.TemplateStepStats(ctx, db, dbgen.TemplateStepStatsParams{
				Namespace: namespace, Name: name, Since: since, Until: until, MaxTasks: int32(maxTasks)})
			return err
		})
	})
	if err != nil {
		return 0, nil, fmt.Errorf("template stats: %w", err)
	}
	out := make([]StepStats, 0, len(rows))
	for _, r := range rows {
		out = append(out, StepStats{Step: r.Step, Runs: r.Runs, Failures: r.Failures, Retries: r.Retries,
			DurationMS: r.DurationMs, QueueWaitMS: r.QueueWaitMs})
	}
	return tasks, out, nil
}
