package store

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/store/dbgen"
)

// Paging a map step's instances (docs/architecture.md, "Map"): in index
// order, from tasker_steps_map_instances (migration 0013), so a page costs
// its rows whatever the map's size.
const (
	// MaxInstancePage bounds InstanceFilter.Limit.
	MaxInstancePage = 500
	// InstanceScanLimit bounds the instances one page examines when it
	// filters by state: a page of a rare state among 100,000 instances
	// stops there, shorter than asked, with a cursor to go on from.
	InstanceScanLimit = 2000
	// InstanceInlineResult is the largest result (bytes of JSON text) a
	// page carries; a larger one is left out
	// (InstanceView.ResultOmitted): read the instance for it.
	InstanceInlineResult = 4096
)

// InstanceFilter selects a page of a map step's instances.
type InstanceFilter struct {
	// State keeps the instances in this state; "" keeps all.
	State domain.StepState
	// After continues after this index (exclusive); -1 starts at 0.
	After int
	// Limit is the page size, 1..MaxInstancePage.
	Limit int
}

// InstanceView is one instance of a map step; its StepView has no
// DependsOn, trigger rule or map counts (an instance has none).
type InstanceView struct {
	Index int
	StepView
	// ResultOmitted says the instance has a result larger than
	// InstanceInlineResult, left out of the page.
	ResultOmitted bool
}

// InstancePage is one page of instances.
type InstancePage struct {
	Instances []InstanceView
	// Next is the index to continue after, nil on the last page.
	Next *int
	// Expanded is false while the step has no instances made: it is not a
	// map step, or it has not run yet, or its list was empty.
	Expanded bool
	// The task's workflow, to tell a map step that has not run from a
	// step that is none.
	Namespace, Workflow, Version string
}

// EncodeInstanceCursor makes the opaque cursor of a page that continues
// after index: base64url of "m1|<index>".
func EncodeInstanceCursor(index int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("m1|" + strconv.Itoa(index)))
}

// ParseInstanceCursor reads a cursor made by EncodeInstanceCursor.
func ParseInstanceCursor(s string) (int, bool) {
	if len(s) > 40 {
		return 0, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, false
	}
	n, ok := strings.CutPrefix(string(raw), "m1|")
	if !ok {
		return 0, false
	}
	i, err := strconv.ParseInt(n, 10, 32)
	if err != nil || i < 0 || strconv.FormatInt(i, 10) != n {
		return 0, false
	}
	return int(i), true
}

// ListMapInstances returns one page of the instances of the map step name
// of a task, in index order, in one snapshot. A missing task or step is
// ErrNotFound; taskFound tells which.
func (s *Store) ListMapInstances(ctx context.Context, taskID uuid.UUID, name string, f InstanceFilter) (page InstancePage, taskFound bool, err error) {
	if f.Limit < 1 || f.Limit > MaxInstancePage {
		return InstancePage{}, false, fmt.Errorf("list map instances: limit %d out of range 1..%d", f.Limit, MaxInstancePage)
	}
	if f.After < -1 {
		return InstancePage{}, false, fmt.Errorf("list map instances: after %d is below -1", f.After)
	}
	// Without a filter the walk is the page and one more (which says
	// whether there is a next page); with one it goes on to the scan limit.
	scan := f.Limit + 1
	var state *string
	if f.State != "" {
		st := string(f.State)
		state, scan = &st, max(InstanceScanLimit, f.Limit+1)
	}
	var step []dbgen.ReadMapStepRow
	var rows []dbgen.ListMapInstancesRow
	var scanned dbgen.MapInstancesScannedRow
	err = s.snapshot(ctx, func(p *pipeline) {
		p.queue(func(db dbgen.DBTX) (err error) {
			step, err = dbq.ReadMapStep(ctx, db, dbgen.ReadMapStepParams{TaskID: taskID, Name: name})
			return err
		})
		p.queue(func(db dbgen.DBTX) (err error) {
			rows, err = dbq.ListMapInstances(ctx, db, dbgen.ListMapInstancesParams{InlineMax: InstanceInlineResult,
				AfterIndex: int32(f.After), ScanLimit: int32(scan), TaskID: taskID, Name: name, State: state, PageLimit: int32(f.Limit + 1)})
			return err
		})
		if state != nil {
			p.queue(func(db dbgen.DBTX) (err error) {
				scanned, err = dbq.MapInstancesScanned(ctx, db, dbgen.MapInstancesScannedParams{AfterIndex: int32(f.After),
					ScanLimit: int32(scan), TaskID: taskID, Name: name})
				return err
			})
		}
	})
	if err != nil {
		return InstancePage{}, false, fmt.Errorf("list map instances: %w", err)
	}
	if len(step) == 0 {
		return InstancePage{}, false, fmt.Errorf("task %s: %w", taskID, ErrNotFound)
	}
	if !step[0].StepFound {
		return InstancePage{}, true, fmt.Errorf("step %q of task %s: %w", name, taskID, ErrNotFound)
	}
	page = InstancePage{Expanded: step[0].Expanded, Namespace: step[0].Namespace, Workflow: step[0].Name,
		Version: step[0].Version, Instances: make([]InstanceView, 0, min(len(rows), f.Limit))}
	for i, r := range rows {
		if i == f.Limit {
			next := page.Instances[i-1].Index
			page.Next = &next
			break
		}
		v := InstanceView{Index: int(r.MapIndex), ResultOmitted: r.ResultOmitted, StepView: StepView{
			Name: r.Name, State: domain.StepState(r.State), DependsOn: []string{}, Attempts: int(r.Attempts),
			MaxAttempts: int(r.MaxAttempts), Result: r.Result, LastError: r.LastError, NextRetryAt: r.NextRetryAt,
			StartedAt: r.StartedAt, CompletedAt: r.CompletedAt,
		}}
		if v.State == domain.StepWaiting {
			v.WaitingUntil, v.WaitKind = r.WakeAt, deref(r.WaitKind)
		}
		page.Instances = append(page.Instances, v)
	}
	// A filtered walk that stopped at its limit goes on after the last
	// instance it examined, even with a short (or empty) page.
	if page.Next == nil && state != nil && int(scanned.Scanned) == scan {
		next := int(scanned.LastIndex)
		page.Next = &next
	}
	return page, true, nil
}
