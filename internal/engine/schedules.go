package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/store"
	"github.com/taskerhq/tasker/internal/template"
)

// ScheduleScope is the idempotency scope of the tasks schedules start; no
// API caller's scope is ever this one.
const ScheduleScope = "schedule"

// MaxCatchUp bounds the fire times one schedule fires in one sweep under
// catch_up: all; the next sweep fires the rest.
const MaxCatchUp = 100

// CatchUpGrace is how late a fire time may be found and still fire under
// catch_up: none. It covers the sweep's interval (a minute on AWS) with
// room for a slow sweep; a fire time older than this was missed.
const CatchUpGrace = 5 * time.Minute

// scheduleLimit bounds the due schedules one sweep fires.
const scheduleLimit = 100

// ScheduleView is a schedule of the loaded templates with its state
// (GET /v1/schedules).
type ScheduleView struct {
	store.Schedule
	Cron, Timezone, Rate, CatchUp string
	// Next lists the next fire times (up to the count asked for), empty
	// while paused.
	Next []time.Time
	// Loaded is false for a schedule whose template (or entry) is no longer
	// loaded, or changed since the row was written: it never fires.
	Loaded bool
}

// ScheduleFiredData is the data of a schedule.fired event.
type ScheduleFiredData struct {
	ScheduleID int64     `json:"schedule_id"`
	Index      int       `json:"index"`
	FireTime   time.Time `json:"fire_time"`
	Created    bool      `json:"created"`
}

// scheduled returns the loaded schedule of key with the latest version of
// its template, or nil.
func (e *Engine) scheduled(k store.ScheduleKey) (*template.Template, *template.Schedule) {
	tpl, err := e.cfg.Templates.Get(k.Namespace, k.Name, "")
	if err != nil || k.Index >= len(tpl.Schedules) {
		return nil, nil
	}
	return tpl, &tpl.Schedules[k.Index]
}

// syncSchedules records the schedules of the latest version of every
// loaded template; a new one starts at its next fire time after now.
func (e *Engine) syncSchedules(ctx context.Context, now time.Time) error {
	var specs []store.ScheduleSpec
	seen := map[[2]string]bool{}
	for _, t := range e.cfg.Templates.List() {
		k := [2]string{t.Namespace, t.Name}
		if seen[k] {
			continue
		}
		seen[k] = true
		latest, _ := e.cfg.Templates.Get(t.Namespace, t.Name, "")
		if latest == nil {
			continue
		}
		for i := range latest.Schedules {
			s := &latest.Schedules[i]
			specs = append(specs, store.ScheduleSpec{ScheduleKey: store.ScheduleKey{Namespace: t.Namespace, Name: t.Name, Index: i},
				Spec: s.Spec, NextFireAt: s.Next(now)})
		}
	}
	return e.store.SyncSchedules(ctx, now, specs)
}

// fireTimes returns the fire times to fire now of a schedule due at next,
// by its catch-up mode, and the next fire time after them
// (docs/control-flow.md, "Schedules").
func fireTimes(s *template.Schedule, next, now time.Time) (fire []time.Time, after time.Time) {
	t := next
	if s.CatchUp != template.CatchUpAll {
		// Only the latest missed fire time matters: after a long outage,
		// start from a recent one instead of stepping through every fire
		// time since (a minute's cron over a year is half a million).
		for _, back := range []time.Duration{time.Hour, 24 * time.Hour, 32 * 24 * time.Hour, 367 * 24 * time.Hour} {
			if now.Sub(t) <= back {
				break
			}
			if c := s.Next(now.Add(-back)); !c.IsZero() && !c.After(now) {
				t = c
				break
			}
		}
	}
	for !t.IsZero() && !t.After(now) {
		switch s.CatchUp {
		case template.CatchUpAll:
			if len(fire) == MaxCatchUp {
				return fire, t
			}
			fire = append(fire, t)
		case template.CatchUpNone:
			if now.Sub(t) <= CatchUpGrace {
				fire = append(fire[:0], t)
			}
		default: // latest
			fire = append(fire[:0], t)
		}
		t = s.Next(t)
	}
	return fire, t
}

// FireSchedules starts the tasks of the schedules due at now and moves
// them on; Sweep calls it. Each fire time's task is created with the
// idempotency key schedule:<namespace>/<name>:<index>:<fire time> before
// the schedule's fire claim (a guarded update of next_fire_at) commits, so a
// crash in between fires the time again into the same task, and two sweeps
// create one task and move the schedule once. It returns the number of
// tasks created.
func (e *Engine) FireSchedules(ctx context.Context) (int, error) {
	now := e.clock.Now()
	if err := e.syncSchedules(ctx, now); err != nil {
		return 0, err
	}
	due, err := e.store.DueSchedules(ctx, now, scheduleLimit)
	if err != nil {
		return 0, err
	}
	created := 0
	var errs []error
	for _, row := range due {
		tpl, s := e.scheduled(row.ScheduleKey)
		if s == nil || s.Spec != row.Spec {
			continue // not loaded here (another deployment's, or changed): never fired by this engine
		}
		fire, after := fireTimes(s, row.NextFireAt, now)
		var last *time.Time
		var lastTask *uuid.UUID
		var events []Event
		failed := false
		for _, ft := range fire {
			c, err := e.CreateTask(ctx, CreateRequest{
				Namespace: tpl.Namespace, Name: tpl.Name, Version: tpl.Version, Context: s.Context,
				Initiator: "tasker.schedule", SourceSystem: "schedule",
				Reason:           fmt.Sprintf("schedule %d (%s) at %s", row.ID, s.Spec, ft.Format(time.RFC3339)),
				IdempotencyKey:   ScheduleIdempotencyKey(row.ScheduleKey, ft),
				IdempotencyScope: ScheduleScope, Actor: "tasker.schedule",
			})
			if err != nil && !errors.Is(err, ErrIdempotencyConflict) {
				// A context the template refuses, or the database: this
				// schedule stays due and is tried at the next sweep.
				errs = append(errs, fmt.Errorf("schedule %d (%s/%s[%d]) at %s: %w", row.ID, row.Namespace, row.Name, row.Index, ft.Format(time.RFC3339), err))
				failed = true
				break
			}
			ft := ft
			last, lastTask = &ft, &c.TaskID
			if c.Created {
				created++
			}
			events = append(events, Event{Name: ScheduleFired, Time: now, TaskID: c.TaskID, Namespace: tpl.Namespace,
				Workflow: tpl.Name, Data: mustJSON(ScheduleFiredData{ScheduleID: row.ID, Index: row.Index, FireTime: ft, Created: c.Created})})
		}
		if failed {
			if last == nil {
				continue
			}
			after = s.Next(*last) // keep what fired; the rest next sweep
		}
		won, err := e.store.ClaimScheduleFire(ctx, now, row.ID, row.Spec, row.NextFireAt, after, last, lastTask)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if won {
			e.pub.Publish(ctx, events)
		}
	}
	return created, errors.Join(errs...)
}

// ScheduleIdempotencyKey is the idempotency key of the task a schedule
// starts at fire time ft (in scope ScheduleScope).
func ScheduleIdempotencyKey(k store.ScheduleKey, ft time.Time) string {
	return fmt.Sprintf("schedule:%s/%s:%d:%s", k.Namespace, k.Name, k.Index, ft.UTC().Format(time.RFC3339))
}

// Schedules lists every schedule with its next n fire times (n at most 100).
func (e *Engine) Schedules(ctx context.Context, n int) ([]ScheduleView, error) {
	now := e.clock.Now()
	if err := e.syncSchedules(ctx, now); err != nil {
		return nil, err
	}
	rows, err := e.store.ListSchedules(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ScheduleView, len(rows))
	for i, r := range rows {
		out[i] = e.scheduleView(r, n)
	}
	return out, nil
}

func (e *Engine) scheduleView(r store.Schedule, n int) ScheduleView {
	v := ScheduleView{Schedule: r, Next: []time.Time{}}
	_, s := e.scheduled(r.ScheduleKey)
	if s == nil || s.Spec != r.Spec {
		return v
	}
	v.Loaded, v.Cron, v.Timezone, v.CatchUp = true, s.Cron, s.Timezone, s.CatchUp
	if s.Rate > 0 {
		v.Rate = s.Rate.String()
	}
	if r.Paused {
		return v
	}
	n = min(max(n, 0), 100)
	for t := r.NextFireAt; len(v.Next) < n; t = s.Next(t) {
		v.Next = append(v.Next, t)
	}
	return v
}

// PauseSchedule pauses (or, with paused false, resumes) a schedule.
// Resuming starts from the next fire time after now: the pause's fire
// times are not caught up. ErrNotFound for an unknown id.
func (e *Engine) PauseSchedule(ctx context.Context, id int64, paused bool) (ScheduleView, error) {
	now := e.clock.Now()
	var next *time.Time
	if !paused {
		cur, err := e.store.ReadSchedule(ctx, id)
		if err != nil {
			return ScheduleView{}, fromStore(err)
		}
		if _, s := e.scheduled(cur.ScheduleKey); s != nil && cur.Paused {
			t := s.Next(now)
			next = &t
		}
	}
	r, err := e.store.SetSchedulePaused(ctx, now, id, paused, next)
	if err != nil {
		return ScheduleView{}, fromStore(err)
	}
	return e.scheduleView(r, 5), nil
}
