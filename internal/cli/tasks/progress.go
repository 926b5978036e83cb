package tasks

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/wire"
)

// progress renders a watched task: a bar and one line per step, redrawn in
// place on a terminal, or appended lines (one per change) otherwise.
type progress struct {
	w      io.Writer
	tty    bool
	color  bool
	lines  int               // lines drawn last time (tty)
	seen   map[string]string // step -> last rendered "state/attempts" (plain)
	done   int               // scratch: steps reported done (plain)
	status string
	start  time.Time
}

func newProgress(w io.Writer, t wire.Task) *progress {
	tty := isTerminal(w)
	p := &progress{w: w, tty: tty, color: tty && os.Getenv("NO_COLOR") == "", seen: map[string]string{}, start: time.Now()}
	fmt.Fprintf(w, "Task %s  %s\n", t.ID, workflowOf(&t))
	return p
}

// isTerminal reports whether w is a character device (a terminal) and the
// terminal can move the cursor.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	return os.Getenv("TERM") != "dumb"
}

func (p *progress) update(t wire.Task) {
	if p.tty {
		p.redraw(t)
		return
	}
	// Plain output: one line per step change, counting done steps as
	// they are reported.
	width := 0
	for _, s := range t.Steps {
		width = max(width, len(s.Name))
		if stepDone(p.seenState(s.Name)) {
			p.done++
		}
	}
	done := p.done
	p.done = 0
	for _, s := range t.Steps {
		key := s.Status + "/" + strconv.Itoa(s.Attempts) + mapKey(s.Map)
		if s.BlockedReason != "" {
			key += "/held" // a ready step held back by flow control is news
		}
		prev := p.seen[s.Name]
		if prev == key {
			continue
		}
		p.seen[s.Name] = key
		if prev == "" && domain.StepState(s.Status) == domain.StepPending && s.BlockedReason == "" {
			continue // nothing to say yet
		}
		if stepDone(s.Status) && !stepDone(p.stateOf(prev)) {
			done++
		}
		fmt.Fprintf(p.w, "[%d/%d] %s\n", done, len(t.Steps), stepLine(s, true, width))
	}
	if t.Status != p.status {
		p.status = t.Status
		if domain.TaskStatus(t.Status).Live() {
			fmt.Fprintf(p.w, "[%d/%d] task %s\n", done, len(t.Steps), t.Status)
		}
	}
}

// seenState is the state last reported for step (plain output).
func (p *progress) seenState(step string) string { return p.stateOf(p.seen[step]) }

func (p *progress) stateOf(key string) string {
	state, _, _ := strings.Cut(key, "/")
	return state
}

func (p *progress) redraw(t wire.Task) {
	var b strings.Builder
	b.WriteString("\x1b[?7l") // no line wrap while drawing: a long line must not push the block down
	if p.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.lines) // back to the top of the block
	}
	done := 0
	width := 0
	for _, s := range t.Steps {
		if stepDone(s.Status) {
			done++
		}
		width = max(width, len(s.Name))
	}
	b.WriteString("\x1b[2K" + bar(done, len(t.Steps), 30) + fmt.Sprintf(" %d/%d steps  %s  %s\n", done, len(t.Steps),
		p.paint(t.Status, t.Status), fmtDuration(time.Since(p.start))))
	for _, s := range t.Steps {
		b.WriteString("\x1b[2K  " + p.stepLineTTY(s, width) + "\n")
	}
	b.WriteString("\x1b[?7h")
	p.lines = 1 + len(t.Steps)
	io.WriteString(p.w, b.String())
}

func bar(done, total, width int) string {
	if total <= 0 {
		return "[" + strings.Repeat("-", width) + "]"
	}
	n := done * width / total
	return "[" + strings.Repeat("#", n) + strings.Repeat("-", width-n) + "]"
}

// stepSymbol is a one-character picture of a step state.
func stepSymbol(state string) string {
	switch domain.StepState(state) {
	case domain.StepComplete, domain.StepResolvedManually:
		return "✓"
	case domain.StepError:
		return "✗"
	case domain.StepInProgress:
		return "▶"
	case domain.StepWaitingForRetry:
		return "↻"
	case domain.StepWaiting:
		return "⏸"
	case domain.StepSkipped:
		return "↷"
	case domain.StepCancelled:
		return "-"
	}
	return "·"
}

var stateColors = map[domain.StepState]string{
	domain.StepComplete: "32", domain.StepResolvedManually: "32", domain.StepError: "31", domain.StepCancelled: "90",
	domain.StepInProgress: "36", domain.StepWaitingForRetry: "33", domain.StepWaiting: "34", domain.StepSkipped: "90",
}

func (p *progress) paint(state, text string) string {
	if !p.color {
		return text
	}
	if c, ok := stateColors[domain.StepState(state)]; ok {
		return "\x1b[" + c + "m" + text + "\x1b[0m"
	}
	return text
}

func (p *progress) stepLineTTY(s wire.Step, width int) string {
	line := stepLine(s, true, width)
	return p.paint(s.Status, line)
}

// stepLine describes a step's state: symbol, name, state, attempts,
// duration, and the last error when it failed.
func stepLine(s wire.Step, padded bool, width int) string {
	name := s.Name
	if padded {
		name = fmt.Sprintf("%-*s", width, s.Name)
	}
	status := s.Status
	if padded {
		status = fmt.Sprintf("%-17s", s.Status)
	}
	parts := []string{stepSymbol(s.Status) + " " + name, status}
	if s.Map != nil {
		// One line for all instances: counts by state instead of the map
		// step's own attempts.
		parts = append(parts, mapText(s.Map))
	} else if s.Attempts > 0 {
		parts = append(parts, fmt.Sprintf("attempt %d/%d", s.Attempts, s.MaxAttempts))
	}
	if d := stepDuration(s); d != "" {
		parts = append(parts, d)
	}
	st := domain.StepState(s.Status)
	if st == domain.StepWaitingForRetry && s.NextRetryAt != nil {
		if at, err := time.Parse(time.RFC3339Nano, *s.NextRetryAt); err == nil {
			parts = append(parts, "retry in "+fmtDuration(time.Until(at)))
		}
	}
	if st == domain.StepWaiting {
		parts = append(parts, waitText(s, time.Now()))
	}
	if st == domain.StepSkipped && s.SkipReason != nil && *s.SkipReason != "" {
		parts = append(parts, "skipped: "+truncate(*s.SkipReason, 100))
	}
	if s.BlockedReason != "" {
		parts = append(parts, "held: "+truncate(s.BlockedReason, 100))
	}
	if st == domain.StepError || st == domain.StepWaitingForRetry {
		if e := errorText(s.LastError); e != "" {
			parts = append(parts, truncate(e, 100))
		}
	}
	out := strings.Join(parts, "  ")
	return strings.TrimRight(out, " ")
}

// waitText says what a waiting step waits for (a timer or a callback,
// docs/control-flow.md) and when it moves on by itself: the timer's due
// time or the callback's expiry, as a UTC time and from now.
func waitText(s wire.Step, now time.Time) string {
	callback := s.WaitKind == "callback" || (s.WaitKind == "" && s.Handler != "tasker.wait")
	what, due := "timer", "due"
	if callback {
		what, due = "callback", "expires"
	}
	if s.WaitingUntil == nil {
		return "waiting for " + what
	}
	at, err := time.Parse(time.RFC3339Nano, *s.WaitingUntil)
	if err != nil {
		return "waiting for " + what
	}
	when := at.UTC().Format("2006-01-02 15:04:05Z")
	if d := at.Sub(now); d > 0 {
		return fmt.Sprintf("%s: %s %s (in %s)", what, due, when, fmtDuration(d))
	}
	return fmt.Sprintf("%s: %s %s (now)", what, due, when)
}

// stepDuration is completed-started, or the time running so far.
func stepDuration(s wire.Step) string {
	if s.StartedAt == nil {
		return ""
	}
	start, err := time.Parse(time.RFC3339Nano, *s.StartedAt)
	if err != nil {
		return ""
	}
	end := time.Now()
	if s.CompletedAt != nil {
		if t, err := time.Parse(time.RFC3339Nano, *s.CompletedAt); err == nil {
			end = t
		}
	} else if domain.StepState(s.Status) != domain.StepInProgress {
		return ""
	}
	return fmtDuration(end.Sub(start))
}

func fmtDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Millisecond:
		return "0ms"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	default:
		return d.Round(time.Second).String()
	}
}

// printSummary ends a watch: the final status and the results of the last
// steps (those nothing depends on).
func printSummary(w io.Writer, t wire.Task) {
	took := ""
	if t.CompletedAt != nil {
		if a, err := time.Parse(time.RFC3339Nano, t.CreatedAt); err == nil {
			if b, err := time.Parse(time.RFC3339Nano, *t.CompletedAt); err == nil {
				took = " in " + fmtDuration(b.Sub(a))
			}
		}
	}
	fmt.Fprintf(w, "Task %s %s%s\n", t.ID, t.Status, took)
	if !taskSucceeded(t.Status) {
		return
	}
	parent := map[string]bool{}
	for _, s := range t.Steps {
		for _, d := range s.DependsOn {
			parent[d] = true
		}
	}
	var leaves []wire.Step
	for _, s := range t.Steps {
		if !parent[s.Name] && len(s.Result) > 0 && string(s.Result) != "null" {
			leaves = append(leaves, s)
		}
	}
	if len(leaves) == 0 {
		return
	}
	fmt.Fprintln(w, "Result:")
	for _, s := range leaves {
		fmt.Fprintf(w, "  %s: %s\n", s.Name, compactJSON(s.Result, 300))
	}
}
