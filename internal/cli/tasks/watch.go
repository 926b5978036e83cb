package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/taskerhq/tasker/internal/apiclient"
	"github.com/taskerhq/tasker/internal/cli"
	"github.com/taskerhq/tasker/internal/domain"
	"github.com/taskerhq/tasker/internal/wire"
)

// watchTask polls the task until it finishes, rendering progress on stdout,
// and returns the exit status: 0 when it completed, 1 otherwise.
func watchTask(ctx context.Context, c *apiclient.Client, task wire.Task, raw []byte, cmd string, interval time.Duration, asJSON bool,
	stdout, stderr io.Writer) int {
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	var pr *progress
	if !asJSON {
		pr = newProgress(stdout, task)
	}
	failures := 0
	for {
		if pr != nil {
			pr.update(task)
		}
		if taskFinished(task.Status) {
			break
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(stderr, "tasker %s: stopped watching; task %s is %s and carries on (tasker show %s)\n",
				cmd, task.ID, task.Status, task.ID)
			return 1
		case <-time.After(interval):
		}
		next, data, err := c.Task(ctx, task.ID)
		if err != nil {
			if ctx.Err() != nil {
				continue // reported above
			}
			var ce *apiclient.ConnError
			if errors.As(err, &ce) && failures < 20 { // e.g. the server restarting: keep trying for a while
				failures++
				continue
			}
			return cli.ReportError(stderr, cmd, err, asJSON)
		}
		failures = 0
		task, raw = next, data
	}
	if asJSON {
		cli.WriteRaw(stdout, raw)
	} else {
		printSummary(stdout, task)
	}
	if taskSucceeded(task.Status) {
		return 0
	}
	reportFailedSteps(stderr, cmd, task)
	return 1
}

// upstreamFailed starts the skip reason of a step that could not run
// because a parent failed (docs/control-flow.md, "Trigger rules").
const upstreamFailed = "trigger rule all_success cannot hold"

// reportFailedSteps names the failing steps of a task that did not complete.
func reportFailedSteps(stderr io.Writer, cmd string, task wire.Task) {
	fmt.Fprintf(stderr, "tasker %s: task %s ended %s\n", cmd, task.ID, task.Status)
	var notRun, skipped []string
	for _, s := range task.Steps {
		msg := errorText(s.LastError)
		switch st := domain.StepState(s.Status); {
		case st == domain.StepSkipped && (s.SkipReason == nil || strings.HasPrefix(*s.SkipReason, upstreamFailed)):
			notRun = append(notRun, s.Name) // skipped because of the failure reported above
		case st == domain.StepSkipped:
			skipped = append(skipped, s.Name+" ("+*s.SkipReason+")")
		case st == domain.StepError:
			if msg == "" {
				msg = "(no error recorded)"
			}
			fmt.Fprintf(stderr, "  step %s failed after %d/%d attempts: %s\n", s.Name, s.Attempts, s.MaxAttempts, msg)
		case st == domain.StepComplete || st == domain.StepResolvedManually:
		case msg != "":
			fmt.Fprintf(stderr, "  step %s %s after %d/%d attempts; last error: %s\n", s.Name, s.Status, s.Attempts, s.MaxAttempts, msg)
		default:
			notRun = append(notRun, s.Name)
		}
	}
	if len(skipped) > 0 {
		fmt.Fprintf(stderr, "  skipped: %s\n", strings.Join(skipped, ", "))
	}
	if len(notRun) > 0 {
		fmt.Fprintf(stderr, "  not run: %s\n", strings.Join(notRun, ", "))
	}
	if domain.TaskStatus(task.Status) == domain.TaskError {
		fmt.Fprintf(stderr, "  next: tasker retry %s, or tasker resolve %s STEP [--result JSON]\n", task.ID, task.ID)
	}
}

// errorText renders a step's last_error: the handler error envelope
// ({message, permanent, retry_after_seconds, code}) as "[code] message
// (permanent)", anything else as compact JSON.
func errorText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var he struct {
		Message   string `json:"message"`
		Code      string `json:"code"`
		Permanent bool   `json:"permanent"`
	}
	if json.Unmarshal(raw, &he) == nil && he.Message != "" {
		s := he.Message
		if he.Code != "" {
			s = "[" + he.Code + "] " + s
		}
		if he.Permanent {
			s += " (permanent)"
		}
		return s
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return compactJSON(raw, 200)
}

func compactJSON(raw json.RawMessage, max int) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		b.Reset()
		b.Write(raw)
	}
	return truncate(b.String(), max)
}

func truncate(s string, max int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if max > 0 && len([]rune(s)) > max {
		r := []rune(s)
		return string(r[:max-1]) + "…"
	}
	return s
}
