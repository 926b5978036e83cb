package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/store/dbgen"
)

// ScheduleKey names one schedule entry of a template (migration 0014).
type ScheduleKey struct {
	Namespace, Name string
	Index           int
}

// ScheduleSpec is a schedule of the loaded templates, with the fire time it
// starts from when it is new or its spec changed.
type ScheduleSpec struct {
	ScheduleKey
	Spec       string
	NextFireAt time.Time
}

// Schedule is a schedule's state (docs/control-flow.md, "Schedules").
type Schedule struct {
	ID int64
	ScheduleKey
	Spec        string
	NextFireAt  time.Time
	LastFiredAt *time.Time
	LastTaskID  *uuid.UUID
	Paused      bool
}

// MaxSchedules bounds ListSchedules.
const MaxSchedules = 10000

// SyncSchedules records the schedules of the loaded templates: new ones
// start at their NextFireAt, those whose spec changed start afresh, the
// others keep their state.
func (s *Store) SyncSchedules(ctx context.Context, now time.Time, specs []ScheduleSpec) error {
	if len(specs) == 0 {
		return nil
	}
	p := dbgen.SyncSchedulesParams{Now: now}
	for _, sp := range specs {
		p.Namespaces = append(p.Namespaces, sp.Namespace)
		p.Names = append(p.Names, sp.Name)
		p.Idxs = append(p.Idxs, int32(sp.Index))
		p.Specs = append(p.Specs, sp.Spec)
		p.NextFireAts = append(p.NextFireAts, sp.NextFireAt)
	}
	if err := dbq.SyncSchedules(ctx, s.pool, p); err != nil {
		return fmt.Errorf("sync schedules: %w", err)
	}
	return nil
}

// DueSchedules returns the unpaused schedules due at now, soonest first.
func (s *Store) DueSchedules(ctx context.Context, now time.Time, limit int) ([]Schedule, error) {
	rows, err := dbq.DueSchedules(ctx, s.pool, dbgen.DueSchedulesParams{Now: now, Lim: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("due schedules: %w", err)
	}
	out := make([]Schedule, len(rows))
	for i, r := range rows {
		out[i] = Schedule{ID: r.ID, ScheduleKey: ScheduleKey{r.Namespace, r.Name, int(r.Idx)}, Spec: r.Spec, NextFireAt: r.NextFireAt}
	}
	return out, nil
}

// ClaimScheduleFire moves a schedule from oldNext to next, recording the
// fire time and task (nil for a skipped fire time), if it still is at
// oldNext with spec and not paused; it reports whether this caller won.
func (s *Store) ClaimScheduleFire(ctx context.Context, now time.Time, id int64, spec string, oldNext, next time.Time,
	fired *time.Time, task *uuid.UUID) (bool, error) {
	ids, err := dbq.ClaimScheduleFire(ctx, s.pool, dbgen.ClaimScheduleFireParams{
		NextFireAt: next, LastFiredAt: fired, LastTaskID: task, Now: now, ID: id, OldNext: oldNext, Spec: spec})
	if err != nil {
		return false, fmt.Errorf("claim schedule %d: %w", id, err)
	}
	return len(ids) == 1, nil
}

// ListSchedules returns every schedule's state (at most MaxSchedules).
func (s *Store) ListSchedules(ctx context.Context) ([]Schedule, error) {
	rows, err := dbq.ListSchedules(ctx, s.pool, MaxSchedules)
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	out := make([]Schedule, len(rows))
	for i, r := range rows {
		out[i] = scheduleRow(r)
	}
	return out, nil
}

// ReadSchedule returns one schedule's state; ErrNotFound when none has id.
func (s *Store) ReadSchedule(ctx context.Context, id int64) (Schedule, error) {
	rows, err := dbq.ReadSchedule(ctx, s.pool, id)
	if err != nil {
		return Schedule{}, fmt.Errorf("read schedule %d: %w", id, err)
	}
	if len(rows) == 0 {
		return Schedule{}, fmt.Errorf("schedule %d: %w", id, ErrNotFound)
	}
	return scheduleRow(dbgen.ListSchedulesRow(rows[0])), nil
}

// SetSchedulePaused pauses or resumes a schedule; next, when not nil, is
// its new next fire time. ErrNotFound when no schedule has id.
func (s *Store) SetSchedulePaused(ctx context.Context, now time.Time, id int64, paused bool, next *time.Time) (Schedule, error) {
	rows, err := dbq.SetSchedulePaused(ctx, s.pool, dbgen.SetSchedulePausedParams{Paused: paused, NextFireAt: next, Now: now, ID: id})
	if err != nil {
		return Schedule{}, fmt.Errorf("pause schedule %d: %w", id, err)
	}
	if len(rows) == 0 {
		return Schedule{}, fmt.Errorf("schedule %d: %w", id, ErrNotFound)
	}
	return scheduleRow(dbgen.ListSchedulesRow(rows[0])), nil
}

func scheduleRow(r dbgen.ListSchedulesRow) Schedule {
	return Schedule{ID: r.ID, ScheduleKey: ScheduleKey{r.Namespace, r.Name, int(r.Idx)}, Spec: r.Spec,
		NextFireAt: r.NextFireAt, LastFiredAt: r.LastFiredAt, LastTaskID: r.LastTaskID, Paused: r.Paused}
}
