package store

import (
	"context"
	"fmt"

	"github.com/taskerhq/tasker/internal/store/dbgen"
)

// MaxTemplateSchedules bounds ListTemplateSchedules: far more entries than
// a template has.
const MaxTemplateSchedules = 1000

// ListTemplateSchedules returns the schedules of one template (its
// namespace and name), in entry order.
func (s *Store) ListTemplateSchedules(ctx context.Context, namespace, name string) ([]Schedule, error) {
	rows, err := dbq.ListTemplateSchedules(ctx, s.pool, dbgen.ListTemplateSchedulesParams{Namespace: namespace, Name: name,
		Lim: MaxTemplateSchedules})
	if err != nil {
		return nil, fmt.Errorf("list schedules of %s/%s: %w", namespace, name, err)
	}
	out := make([]Schedule, len(rows))
	for i, r := range rows {
		out[i] = scheduleRow(dbgen.ListSchedulesRow(r))
	}
	return out, nil
}
