package apiclient

import (
	"context"
	"net/url"
	"strconv"

	"github.com/taskerhq/tasker/internal/wire"
)

// Schedules lists every schedule with its next n fire times.
func (c *Client) Schedules(ctx context.Context, n int) (wire.ScheduleList, []byte, error) {
	var l wire.ScheduleList
	raw, err := c.Get(ctx, "/v1/schedules", url.Values{"next": {strconv.Itoa(n)}}, &l)
	return l, raw, err
}

// PauseSchedule pauses (action "pause") or resumes ("resume") schedule id.
func (c *Client) PauseSchedule(ctx context.Context, id, action string) (wire.Schedule, []byte, error) {
	var s wire.Schedule
	raw, _, err := c.Post(ctx, "/v1/schedules/"+url.PathEscape(id)+"/"+action, map[string]any{}, &s)
	return s, raw, err
}
