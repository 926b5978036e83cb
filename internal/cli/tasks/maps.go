package tasks

import (
	"strconv"
	"strings"

	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/wire"
)

// mapStates orders a map step's instance counts for display, with the
// word each state reads as (docs/control-flow.md, "Map").
var mapStates = []struct {
	state domain.StepState
	label string
}{
	{domain.StepInProgress, "in progress"},
	{domain.StepWaitingForRetry, "retrying"},
	{domain.StepWaiting, "waiting"},
	{domain.StepPending, "pending"},
	{domain.StepError, "failed"},
	{domain.StepCancelled, "cancelled"},
	{domain.StepSkipped, "skipped"},
	{domain.StepResolvedManually, "resolved manually"},
}

// mapText summarises a map step's instances on one line:
// "map 37/100 complete, 10 in progress, 2 failed". A map step is listed
// once however many instances it has; read one with its instance name
// ("process[3]").
func mapText(m *wire.MapSummary) string {
	if m == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString("map " + strconv.Itoa(m.Counts[string(domain.StepComplete)]) + "/" + strconv.Itoa(m.Items) + " complete")
	known := map[string]bool{string(domain.StepComplete): true}
	for _, s := range mapStates {
		known[string(s.state)] = true
		if n := m.Counts[string(s.state)]; n > 0 {
			b.WriteString(", " + strconv.Itoa(n) + " " + s.label)
		}
	}
	for st, n := range m.Counts { // a state added later still shows
		if !known[st] && n > 0 {
			b.WriteString(", " + strconv.Itoa(n) + " " + strings.ReplaceAll(st, "_", " "))
		}
	}
	return b.String()
}

// mapKey is what changes when a map step's instances move on (plain
// --watch output prints a line per change).
func mapKey(m *wire.MapSummary) string {
	if m == nil {
		return ""
	}
	return "/" + mapText(m)
}
